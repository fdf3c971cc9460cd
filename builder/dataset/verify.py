"""``builder verify``: read every shard of a store and check it against what ``builder synth`` recorded.

``open_store`` checks the cheap things at every open (sealed, shapes, every shard file present); this reads
everything: each shard decodes, values are finite and in range, labels are 0/1, per-segment entries name the
store's own pieces and banks, row counts and per-key label counts match the attributes, and each shard's
sha256 matches the one recorded when it was written (``shards`` attribute).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from builder.dataset.store import (
    LONG_FFT,
    METADATA_ERRORS,
    SEGMENT_ARRAYS,
    SIDES,
    SLICE_WIDTHS,
    array,
    attributes,
    object_count,
    object_rows,
    open_store,
    side_group,
)
from pianoscribe.constants import N_KEYS
from pianoscribe.errors import UserError
from pianoscribe.storage import StoreLocation, store_location

CHECKED_ARRAYS = (*SLICE_WIDTHS, LONG_FFT, *SEGMENT_ARRAYS)  # a shard's record, in this order (those it has)


def checksum(values: np.ndarray) -> str:
    """sha256 of values as stored: the raw bytes of numbers, the NUL-joined UTF-8 of strings."""
    values = np.asarray(values)
    if values.dtype.kind in "OTU":
        return hashlib.sha256("\0".join(str(value) for value in values).encode("utf-8")).hexdigest()
    return hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()


def shard_checksums(arrays: dict[str, np.ndarray]) -> dict[str, str]:
    """The record of one shard: ``{array name: sha256}`` in a fixed order."""
    return {name: checksum(arrays[name]) for name in CHECKED_ARRAYS if name in arrays}


@dataclass
class Verification:
    """What ``builder verify`` found: every problem as one line, and what was read."""

    path: StoreLocation
    problems: list[str] = field(default_factory=list)
    shards_read: int = 0
    rows_read: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_store(path: StoreLocation | Path | str) -> Verification:
    """Read and check every shard of the store at ``path``, a folder or a URL (see the module docstring)."""
    path = store_location(path)
    result = Verification(path)
    try:
        root = open_store(path)
    except UserError as error:
        result.problems.append(str(error))
        return result
    attrs = attributes(root)
    for side in SIDES:
        try:
            _verify_side(root, side, attrs, result)
        except METADATA_ERRORS as error:  # attributes that do not say what this code expects
            result.problems.append(f"{path}/{side}: cannot be checked ({type(error).__name__}: {error})")
    return result


def _verify_side(root: zarr.Group, side: str, attrs: dict[str, Any], result: Verification) -> None:
    group = side_group(root, side)
    label = f"{result.path}/{side}"
    frames = int(attrs["frames_per_segment"])
    recorded = (attrs.get("shards") or {}).get(side)
    n_rows = array(group, "fft_magnitude").shape[0]
    if attrs.get("rows", {}).get(side, n_rows) != n_rows:
        result.problems.append(f"{label}: {n_rows} rows, the attributes say {attrs['rows'][side]}")
    shards = object_count(array(group, "fft_magnitude")) if n_rows else 0
    if recorded is not None and len(recorded) != shards:
        result.problems.append(f"{label}: {shards} shards, {len(recorded)} recorded when it was written")
    allowed = {"piece_id": set(attrs.get("split", {}).get(side, [])), "bank": set(attrs["params"][f"{side}_banks"])}
    active = np.zeros(N_KEYS, np.int64)
    onsets = np.zeros(N_KEYS, np.int64)
    for index in range(shards):
        first, stop = object_rows(array(group, "fft_magnitude"), index)
        values = _read_shard(group, index, first, stop, frames, label, result)
        if values is None:
            continue
        result.shards_read += 1
        result.rows_read += stop - first
        for problem in _value_problems(values, allowed):
            result.problems.append(f"{label} shard {index} (rows {first}..{stop - 1}): {problem}")
        if recorded is not None and index < len(recorded):
            for name, digest in shard_checksums(values).items():
                if recorded[index]["sha256"].get(name) not in (None, digest):
                    result.problems.append(f"{label}/{name} shard {index}: sha256 differs from the one recorded")
        active += values["key_active"].sum(axis=0, dtype=np.int64)
        onsets += values["key_onset"].sum(axis=0, dtype=np.int64)
    statistics = attrs.get("statistics", {}).get(side)
    if statistics and result.shards_read and statistics.get("rows") == n_rows:
        if not np.array_equal(active, statistics["active_per_key"]):
            result.problems.append(f"{label}: per-key active counts differ from the attributes' statistics")
        if not np.array_equal(onsets, statistics["onset_per_key"]):
            result.problems.append(f"{label}: per-key onset counts differ from the attributes' statistics")


def _read_shard(
    group: zarr.Group, index: int, first: int, stop: int, frames: int, label: str, result: Verification
) -> dict[str, np.ndarray] | None:
    """Every array's values of one shard, or None after recording which array could not be decoded."""
    values = {}
    for name in (name for name in CHECKED_ARRAYS if name in group):
        rows = slice(first // frames, stop // frames) if name in SEGMENT_ARRAYS else slice(first, stop)
        try:
            values[name] = np.asarray(array(group, name)[rows])
        except Exception as error:  # a damaged shard fails inside the codecs with many exception types
            result.problems.append(
                f"{label}/{name} shard {index} (rows {first}..{stop - 1}): cannot be decoded "
                f"({type(error).__name__}: {' '.join(str(error).split())[:160]})"
            )
            return None
    return values


def _value_problems(values: dict[str, np.ndarray], allowed: dict[str, set[str]]) -> list[str]:
    """What is wrong with one shard's values (empty: nothing)."""
    problems = []
    for name in (name for name in ("fft_magnitude", LONG_FFT, "key_energy") if name in values):
        data = values[name].astype(np.float32)
        if not np.isfinite(data).all():
            problems.append(f"{name} holds {int((~np.isfinite(data)).sum())} non-finite values")
        elif (data < 0).any():
            problems.append(f"{name} holds negative values")
    for name in ("key_active", "key_onset"):
        if values[name].max(initial=0) > 1:
            problems.append(f"{name} holds values other than 0 and 1")
    if (values["start_sample"] < 0).any():
        problems.append("start_sample holds negative positions")
    for name, known in allowed.items():
        unknown = sorted({str(value) for value in values[name]} - known)
        if unknown:
            problems.append(f"{name} names {unknown[0]!r}, which the store's attributes do not list")
    return problems
