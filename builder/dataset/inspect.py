"""``builder inspect``: what a store holds, as lines of text (shapes and storage, split, banks and corpora,
per-key counts, label statistics, provenance)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from builder.dataset.store import (
    ENERGY_HISTOGRAM_EDGES,
    SEGMENT_ARRAYS,
    SIDES,
    array,
    attributes,
    disk_bytes,
    open_store,
    raw_bytes,
    side_group,
    stored_slice_widths,
)
from pianoscribe.constants import LOWEST_KEY, N_KEYS
from pianoscribe.keyboard import note_name
from pianoscribe.storage import StoreLocation


def describe_store(path: StoreLocation | Path | str) -> list[str]:
    """``builder inspect``: shapes and storage, split, banks and corpora, per-key counts, label statistics, as
    lines (with rich markup) for the CLI to print."""
    lines: list[str] = []
    root = open_store(path)
    attrs = attributes(root)
    params = attrs.get("params", {})
    frames = int(attrs["frames_per_segment"])
    on_disk = disk_bytes(path)
    uncompressed = raw_bytes(root)
    lines.append(
        f"[bold]{path}[/bold]  Zarr v3, format {attrs.get('format_version')}, complete; "
        f"{on_disk / 1e6:.1f} MB on disk, {uncompressed / 1e6:.1f} MB raw "
        f"(compression {uncompressed / max(on_disk, 1):.2f}x)"
    )
    lines.append(
        f"segments of {frames} consecutive buffers (hop {attrs.get('buffer_size')}, "
        f"{attrs.get('sample_rate')} Hz), window {params.get('window')}, seed {params.get('seed')}"
    )
    for side in SIDES:
        group = side_group(root, side)
        fft = array(group, "fft_magnitude")
        side_pieces = attrs.get("split", {}).get(side, [])
        lines.append(
            f"\n[bold]{side}[/bold]: {fft.shape[0]} rows = {array(group, 'piece_id').shape[0]} segments; "
            f"banks {', '.join(params.get(f'{side}_banks', []))}; {len(side_pieces)} pieces "
            f"({', '.join(side_pieces[:3])}{', ...' if len(side_pieces) > 3 else ''})"
        )
        for name in (*stored_slice_widths(group), *SEGMENT_ARRAYS):
            stored = array(group, name)
            dtype = "string" if stored.dtype.kind in "OTU" else str(stored.dtype)
            shards = f" shard {stored.shards[0]}" if stored.shards is not None else ""
            lines.append(
                f"  {name:18s} {stored.shape!s:14s} {dtype:7s} chunk {stored.chunks[0]}{shards} {_codec_name(stored)}"
            )
        statistics = attrs.get("statistics", {}).get(side)
        if statistics and statistics["rows"]:
            lines.extend(_statistics_lines(statistics))
    lines.append("\n[bold]provenance[/bold]")
    for kind in ("banks", "corpora"):
        for name, digest in attrs.get(kind, {}).items():
            lines.append(f"  {kind[:-1] if kind == 'banks' else 'corpus':6s} {name}: sha256 {digest[:16]}…")
    versions = attrs.get("versions", {})
    lines.append("  versions " + ", ".join(f"{name} {value}" for name, value in versions.items()))
    return lines


def _codec_name(array: zarr.Array) -> str:
    names = []
    for codec in array.compressors:
        if isinstance(codec, BloscCodec):
            names.append(f"blosc-{codec.cname.value if hasattr(codec.cname, 'value') else codec.cname}:{codec.clevel}")
        elif isinstance(codec, ZstdCodec):
            names.append(f"zstd:{codec.level}")
        else:
            names.append(type(codec).__name__)
    return "+".join(names) or "uncompressed"


def _statistics_lines(statistics: dict[str, Any]) -> list[str]:
    lines = []
    rows = statistics["rows"]
    active = np.asarray(statistics["active_per_key"])
    onsets = np.asarray(statistics["onset_per_key"])
    histogram = np.asarray(statistics["energy_histogram"])
    lines.append(
        f"  labels: {statistics['active_total'] / rows:.2f} active keys per row (polyphony), "
        f"{statistics['silent_rows'] / rows:.1%} silent rows, {onsets.sum() / rows:.3f} onsets per row, "
        f"{int((active > 0).sum())}/88 keys ever active"
    )
    if histogram.sum():
        cumulative = np.cumsum(histogram) / histogram.sum()
        quantiles = {
            q: ENERGY_HISTOGRAM_EDGES[min(int(np.searchsorted(cumulative, q)) + 1, len(ENERGY_HISTOGRAM_EDGES) - 1)]
            for q in (0.1, 0.5, 0.9)
        }
        lines.append(
            "  key_energy of active keys: "
            + ", ".join(f"p{int(q * 100)} <= {value:.2g}" for q, value in quantiles.items())
        )
    lines.append("  per key: rows active / onsets")
    per_line = 4
    for first in range(0, N_KEYS, per_line):
        cells = [
            f"{note_name(LOWEST_KEY + k):>3s} {active[k]:>7d}/{onsets[k]:<6d}"
            for k in range(first, min(first + per_line, N_KEYS))
        ]
        lines.append("   " + " ".join(cells))
    return lines
