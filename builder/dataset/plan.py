"""Planning the dataset: the split by piece, pieces flattened for the engine, and each shard's segment draws.

A segment is ``frames_per_segment`` consecutive 1024-sample buffers (hop 1024) from one random position of one
piece through one bank, with one draw of augmentation. Planning is vectorized numpy, seeded per shard
(``seed``, side, shard index), so a shard's content never depends on threads or on other shards.

The split is by piece and fixed: a piece's side is a pure function of its id and the seed
(:func:`piece_side`). Test segments are rendered through ``test_banks`` (a piano the model never hears), train
segments through ``train_banks``.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from builder.corpus.notes import NOTE_DTYPE
from builder.corpus.sources import scores
from pianoscribe.constants import BUFFER_SIZE, SAMPLE_RATE

NOISE_TABLE_SAMPLES = 1 << 20  # white noise is read from a seeded table at a random offset per segment


def piece_side(piece_id: str, seed: int, test_fraction: float) -> str:
    """``"test"`` or ``"train"``: a pure function of the piece id and the seed (sha256 as a uniform number).

    Versions of one chorale (``bwv18.5-lz``, ``bwv18.5-w``: other harmonizations or instrumentations of the same
    tune) hash as one piece, so the same music never sits on both sides.
    """
    digest = hashlib.sha256(f"{seed}:{split_group(piece_id)}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2.0**64 < test_fraction else "train"


def split_group(piece_id: str) -> str:
    """The id the split hashes: versions of one piece share it (a chorale's id without its version suffix, the
    variants of one folk tune: ``builder.corpus.sources.scores.split_group``); any other id as it is."""
    if piece_id.startswith("chorales/"):
        return re.sub(r"-[A-Za-z0-9]+$", "", piece_id)
    if piece_id.startswith("scores/"):
        return scores.split_group(piece_id)
    return piece_id


def split_rows(n: int, frames_per_segment: int, test_fraction: float) -> dict[str, int]:
    """Rows per side: whole segments, the test side ``round(segments * test_fraction)`` of them."""
    segments = n // frames_per_segment
    test_segments = round(segments * test_fraction)
    if test_fraction > 0 and segments >= 2:
        test_segments = min(max(test_segments, 1), segments - 1)
    return {"train": (segments - test_segments) * frames_per_segment, "test": test_segments * frames_per_segment}


@dataclass
class PieceTable:
    """Pieces flattened for the engine: notes in samples, CSR by piece, sorted by onset within a piece."""

    piece_ids: list[str]
    onset: np.ndarray  # int64 samples
    offset: np.ndarray  # int64 samples (> onset)
    key: np.ndarray  # uint8 MIDI 21..108
    velocity: np.ndarray  # uint8 1..127
    piece_start: np.ndarray  # int64 [pieces + 1]
    extent: np.ndarray  # int64 [pieces] sample where the last note's release ends

    def load_into(self, engine: Any) -> None:
        engine.set_notes(self.onset, self.offset, self.key, self.velocity, self.piece_start)


def piece_table(pieces: list[tuple[str, np.ndarray]], release_samples: int) -> PieceTable:
    """Flatten ``(piece_id, NOTE_DTYPE notes)`` pairs; onsets/offsets rounded to samples, offsets after onsets."""
    notes = [np.sort(piece_notes, order=("onset", "key")) for _, piece_notes in pieces]
    counts = np.array([len(piece_notes) for piece_notes in notes], dtype=np.int64)
    merged = np.concatenate(notes) if notes else np.zeros(0, dtype=NOTE_DTYPE)
    onset = np.round(merged["onset"] * SAMPLE_RATE).astype(np.int64)
    offset = np.maximum(np.round(merged["offset"] * SAMPLE_RATE).astype(np.int64), onset + 1)
    piece_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    ends = offset + release_samples
    extent = np.array([ends[a:b].max() if b > a else 0 for a, b in itertools.pairwise(piece_start)], dtype=np.int64)
    return PieceTable(
        piece_ids=[piece_id for piece_id, _ in pieces],
        onset=onset,
        offset=offset,
        key=merged["key"].astype(np.uint8),
        velocity=merged["velocity"].astype(np.uint8),
        piece_start=piece_start,
        extent=extent,
    )


@dataclass
class SegmentPlan:
    """Per-segment draws for one shard (arrays of length segments), exactly what the engine consumes."""

    piece: np.ndarray  # int64 index into the side's PieceTable
    bank: np.ndarray  # int32 index into the side's banks
    start_sample: np.ndarray  # int64
    gain: np.ndarray  # float32 linear
    detune_ratio: np.ndarray  # float64 playback-rate ratio
    noise_amplitude: np.ndarray  # float32 standard deviation of the added white noise
    noise_offset: np.ndarray  # int64 start in the noise table
    tilt_db: np.ndarray  # float32 dB per octave


def plan_segments(
    table: PieceTable, n_banks: int, count: int, rng: np.random.Generator, settings: dict[str, Any], augment: bool
) -> SegmentPlan:
    """Draw ``count`` segments: a piece (weighted by its length, so every second of music is equally likely),
    a bank, a start sample, and the segment's augmentation (uniform within the ``augment`` ranges)."""
    span = settings["frames_per_segment"] * BUFFER_SIZE
    weights = np.cumsum(table.extent.astype(np.float64))
    piece = np.minimum(
        np.searchsorted(weights, rng.random(count) * weights[-1], side="right"), len(table.extent) - 1
    ).astype(np.int64)
    room = np.maximum(table.extent[piece] - span, 0) + 1
    start_sample = np.floor(rng.random(count) * room).astype(np.int64)
    bank = rng.integers(0, n_banks, count).astype(np.int32)
    ranges = settings["augment"]
    uniform = rng.uniform(-1.0, 1.0, size=(4, count))
    noise_level = rng.random(count)
    noise_offset = rng.integers(0, NOISE_TABLE_SAMPLES - span + 1, count).astype(np.int64)
    if not augment:
        uniform[:] = 0.0
        noise_level[:] = 0.0
    gain = libm_power(10.0, uniform[0] * float(ranges["gain_db"]) / 20.0).astype(np.float32)
    detune_ratio = libm_power(2.0, uniform[1] * float(ranges["detune_cents"]) / 1200.0)
    tilt_db = (uniform[2] * float(ranges["tilt_db_per_octave"])).astype(np.float32)
    noise_amplitude = (noise_level * 10.0 ** (float(ranges["noise_db"]) / 20.0)).astype(np.float32)
    return SegmentPlan(
        piece=piece,
        bank=bank,
        start_sample=start_sample,
        gain=gain,
        detune_ratio=detune_ratio,
        noise_amplitude=noise_amplitude,
        noise_offset=noise_offset,
        tilt_db=tilt_db,
    )


def libm_power(base: float, exponents: np.ndarray) -> np.ndarray:
    """``base ** exponents`` (float64), element by element through the C library's ``pow``: the same bits on every
    x86-64 CPU. numpy's own power runs an AVX-512 kernel where the CPU has one (not on AVX2-only CPUs such as
    Zen 3), whose results differ from ``pow`` in the last bit for ~5 % of values: a store's bytes then depended
    on the CPU kind (a detune ratio 1 ulp off moves some float16 FFT magnitudes by 1 ulp). A few thousand
    values per shard: ~1 ms."""
    return np.array([math.pow(base, exponent) for exponent in np.asarray(exponents, np.float64).tolist()])


def noise_table(seed: int) -> np.ndarray:
    """Unit white noise the segments read from (seeded; one table per run)."""
    return np.random.default_rng([seed, 0x6E6F697365]).standard_normal(NOISE_TABLE_SAMPLES).astype(np.float32)


def release_samples(settings: dict[str, Any]) -> int:
    return int(round(float(settings["release_seconds"]) * SAMPLE_RATE))
