"""One shard from its plan to the store: the unit of work of ``builder synth``, the same whether a thread of
one process (``synth``) or a Dask worker (``distributed``) does it.

A shard's content is a pure function of (settings, seed, side, shard index): its segments are drawn from
``numpy.random.default_rng([seed, side, shard])``, the engine writes each segment's rows from that segment's
plan only, and the shard is written whole by one writer, then its record (rows, checksums, label statistics)
goes under ``_progress/`` (``resume.record_shard``). So any number of threads or workers, in any order, with any
retries, writes the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from builder.banks import read_bank
from builder.dataset import store
from builder.dataset.plan import PieceTable, SegmentPlan, noise_table, plan_segments, release_samples
from builder.dataset.resume import ShardKey, record_shard
from builder.dataset.verify import shard_checksums
from builder.engine import load_bank_into, new_engine
from pianoscribe.constants import N_BINS, N_KEYS


@dataclass
class ShardBuffers:
    """Preallocated outputs of one shard (reused: at most two exist)."""

    fft_magnitude: np.ndarray
    key_energy: np.ndarray
    key_active: np.ndarray
    key_onset: np.ndarray
    fft_long_magnitude: np.ndarray | None = None  # only when synth.long_fft_bins > 0

    @classmethod
    def allocate(cls, rows: int, fft_dtype: str, long_fft_bins: int = 0) -> ShardBuffers:
        return cls(
            np.empty((rows, N_BINS), dtype=fft_dtype),
            np.empty((rows, N_KEYS), np.float32),
            np.empty((rows, N_KEYS), np.uint8),
            np.empty((rows, N_KEYS), np.uint8),
            np.empty((rows, long_fft_bins), dtype=fft_dtype) if long_fft_bins else None,
        )

    def rows(self, count: int) -> ShardBuffers:
        return ShardBuffers(
            self.fft_magnitude[:count],
            self.key_energy[:count],
            self.key_active[:count],
            self.key_onset[:count],
            None if self.fft_long_magnitude is None else self.fft_long_magnitude[:count],
        )

    def slice_values(self) -> dict[str, np.ndarray]:
        """The per-row arrays by store name."""
        values = {
            "fft_magnitude": self.fft_magnitude,
            "key_energy": self.key_energy,
            "key_active": self.key_active,
            "key_onset": self.key_onset,
        }
        if self.fft_long_magnitude is not None:
            values[store.LONG_FFT] = self.fft_long_magnitude
        return values


@dataclass(frozen=True)
class ShardSpan:
    """Where one shard of a side goes: its index, first row and number of rows."""

    side: str
    index: int
    first_row: int
    rows: int

    @property
    def key(self) -> ShardKey:
        return (self.side, self.index)


def shard_spans(side: str, n_rows: int, shard_rows: int) -> list[ShardSpan]:
    """Every shard of a side, in order (the last one may be short)."""
    return [
        ShardSpan(side, index, first, min(shard_rows, n_rows - first))
        for index, first in enumerate(range(0, n_rows, shard_rows))
    ]


def side_engine(settings: dict[str, Any], bank_paths: list[Path], table: PieceTable, threads: int) -> tuple[Any, int]:
    """A native engine holding one side's banks (as ``bank_precision`` says), pieces and the noise table; and how
    many banks it holds. ``threads`` 0 means all cores."""
    engine = new_engine(threads)
    for path in bank_paths:
        load_bank_into(engine, read_bank(path), settings["bank_precision"])
    table.load_into(engine)
    engine.set_noise(noise_table(settings["seed"]))
    return engine, len(bank_paths)


def plan_shard(table: PieceTable, n_banks: int, span: ShardSpan, settings: dict[str, Any]) -> SegmentPlan:
    """The segment draws of one shard: seeded by (seed, side, shard index) alone."""
    rng = np.random.default_rng([settings["seed"], store.SIDES.index(span.side), span.index])
    augment = span.side == "train" or bool(settings["augment"]["test"])
    return plan_segments(table, n_banks, span.rows // settings["frames_per_segment"], rng, settings, augment)


def render_shard(engine: Any, plan: SegmentPlan, buffers: ShardBuffers, settings: dict[str, Any]) -> None:
    """Mix, label and FFT the planned segments into ``buffers`` (GIL released, engine threads)."""
    engine.synthesize(
        plan.piece,
        plan.bank,
        plan.start_sample,
        plan.gain,
        plan.detune_ratio,
        plan.noise_amplitude,
        plan.noise_offset,
        plan.tilt_db,
        buffers.fft_magnitude,
        buffers.key_energy,
        buffers.key_active,
        buffers.key_onset,
        frames_per_segment=settings["frames_per_segment"],
        release_samples=release_samples(settings),
        velocity_exponent=float(settings["velocity_exponent"]),
        window=settings["window"],
        tilt_pivot_hz=float(settings["augment"]["tilt_pivot_hz"]),
        fft_long=buffers.fft_long_magnitude,
    )


def segment_values(plan: SegmentPlan, piece_ids: list[str], bank_names: list[str]) -> dict[str, np.ndarray]:
    """The per-segment arrays of a shard: piece id, bank (as ``params`` names it), start sample."""
    return {
        "piece_id": np.array(piece_ids, dtype=object)[plan.piece],
        "bank": np.array(bank_names, dtype=object)[plan.bank],
        "start_sample": plan.start_sample,
    }


def write_shard(
    root: zarr.Group, span: ShardSpan, block: ShardBuffers, segments: dict[str, np.ndarray], frames: int
) -> dict[str, Any]:
    """One writer, one whole shard: one assignment per array over the shard's rows, then the shard's record
    (persisted under ``_progress/`` and returned)."""
    group = store.side_group(root, span.side)
    rows = slice(span.first_row, span.first_row + len(block.key_energy))
    first_segment = span.first_row // frames
    segment_rows = slice(first_segment, first_segment + len(segments["start_sample"]))
    values = {**block.slice_values(), **segments}
    for name, data in values.items():
        store.array(group, name)[segment_rows if name in store.SEGMENT_ARRAYS else rows] = data
    statistics = store.empty_statistics()
    store.add_statistics(statistics, block.key_energy, block.key_active, block.key_onset)
    record = {
        "rows": [rows.start, rows.stop],
        "segments": [segment_rows.start, segment_rows.stop],
        "sha256": shard_checksums(values),
        "statistics": store.statistics_attrs(statistics),
    }
    record_shard(root, span.key, record)
    return record
