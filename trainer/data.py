"""``tf.data`` over the Zarr store: whole chunks in a new random order each epoch, segments shuffled in a
bounded buffer, decoded in parallel, prefetched. Memory is bounded whatever the dataset size.

The unit of training is a segment: ``frames_per_segment`` consecutive slices ``[T, 512]`` with targets
``active``/``onset``/``energy`` ``[T, 88]`` each (the store keeps rows in segment order). A block is a run
of whole chunks that also holds whole segments (``lcm(chunk_rows, T)`` rows); it is the unit of I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf
import zarr

from builder.dataset.store import SLICE_WIDTHS, array
from pianoscribe.constants import N_BINS, N_KEYS
from pianoscribe.errors import UserError
from trainer.features import FeatureStatistics, energy_target


@dataclass
class StoreSplit:
    """One side (``train`` or ``test``) of a store opened (and so checked) by ``builder.dataset.store.open_store``,
    read block by block."""

    name: str
    group: zarr.Group
    frames_per_segment: int

    def __post_init__(self) -> None:
        arrays = {name: array(self.group, name) for name in SLICE_WIDTHS}
        self.n_rows = arrays["fft_magnitude"].shape[0]
        if self.n_rows == 0:
            raise UserError(f"{self.name}: the split is empty")
        self.arrays = arrays
        chunk_rows = arrays["fft_magnitude"].chunks[0]
        self.block_rows = math.lcm(chunk_rows, self.frames_per_segment)
        self.n_blocks = -(-self.n_rows // self.block_rows)
        self.n_segments = self.n_rows // self.frames_per_segment

    def read_block(self, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Rows of block ``block``: ``fft_magnitude`` (stored dtype), ``key_energy``, ``key_active``, ``key_onset``."""
        rows = slice(block * self.block_rows, min((block + 1) * self.block_rows, self.n_rows))
        return tuple(self.arrays[name][rows] for name in SLICE_WIDTHS)  # type: ignore[return-value]

    def fft_dtype(self) -> np.dtype:
        return self.arrays["fft_magnitude"].dtype

    def sample_blocks(self, max_rows: int) -> np.ndarray:
        """Block indices spread evenly over the split, about ``max_rows`` rows in all (at least one block)."""
        count = min(self.n_blocks, max(1, max_rows // self.block_rows))
        return np.unique(np.linspace(0, self.n_blocks - 1, count).round().astype(np.int64))


def train_statistics(
    split: StoreSplit, compression: float, max_rows: int, energy_percentile: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Feature ``mean``/``std`` per bin and ``energy_scale``, from whole blocks spread over the train split.

    ``energy_scale`` is the ``energy_percentile`` of ``key_energy`` over sounding keys: a loud note's buffer.
    """
    statistics = FeatureStatistics(compression)
    sounding_energies = []
    for block in split.sample_blocks(max_rows):
        fft_magnitude, key_energy, key_active, _ = split.read_block(int(block))
        statistics.add(fft_magnitude)
        sounding_energies.append(key_energy[key_active.astype(bool)])
    mean, std = statistics.mean_std()
    energies = np.concatenate(sounding_energies)
    energies = energies[energies > 0]
    if energies.size == 0:
        raise UserError(f"{split.name}: no sounding key with energy in {statistics.count} rows (silent dataset?)")
    return mean, std, float(np.percentile(energies, energy_percentile))


def _block_reader(split: StoreSplit, energy_scale: float):
    """A ``tf.numpy_function`` body: block index -> the block's arrays, targets already in model units."""

    def read(block: np.int64):
        fft_magnitude, key_energy, key_active, key_onset = split.read_block(int(block))
        # float32 here, not in TF: TF's CPU cast from float16 is slow and noisy (oneDNN has no half path)
        return (fft_magnitude.astype(np.float32), key_active, key_onset, energy_target(key_energy, energy_scale))

    return read


def _segments(
    split: StoreSplit, blocks: tf.data.Dataset, energy_scale: float, parallel_reads: int, deterministic: bool
) -> tf.data.Dataset:
    """Blocks -> segments ``([T, 512] f32, [T, 88] u8, [T, 88] u8, [T, 88] f32)``, read in parallel."""
    frames = split.frames_per_segment
    reader = _block_reader(split, energy_scale)

    def read(block):
        fft_magnitude, active, onset, energy = tf.numpy_function(
            reader, [block], (tf.float32, tf.uint8, tf.uint8, tf.float32), stateful=False
        )
        return (
            tf.reshape(fft_magnitude, [-1, frames, N_BINS]),
            tf.reshape(active, [-1, frames, N_KEYS]),
            tf.reshape(onset, [-1, frames, N_KEYS]),
            tf.reshape(energy, [-1, frames, N_KEYS]),
        )

    blocks = blocks.map(read, num_parallel_calls=parallel_reads, deterministic=deterministic)
    return blocks.unbatch()


def _to_model_batch(fft_magnitude, active, onset, energy):
    """Cast a batch once (vectorized) to what the model and its losses take."""
    return (
        fft_magnitude,
        {"active": tf.cast(active, tf.float32), "onset": tf.cast(onset, tf.float32), "energy": energy},
    )


def segments_per_batch(batch_size: int, frames_per_segment: int) -> int:
    """``batch_size`` counts slices; a batch holds whole segments (at least one)."""
    return max(1, batch_size // frames_per_segment)


def training_dataset(split: StoreSplit, settings: dict[str, Any], energy_scale: float) -> tuple[tf.data.Dataset, int]:
    """Endless shuffled batches for ``model.fit`` and the number of steps that make one pass over the split.

    Each pass visits every block once in a fresh random order (seeded), shuffles segments in a buffer of
    ``shuffle_buffer`` slices, batches ``batch_size`` slices (whole segments), and prefetches.
    """
    per_batch = segments_per_batch(settings["batch_size"], split.frames_per_segment)
    steps_per_pass = split.n_segments // per_batch
    if steps_per_pass == 0:
        raise UserError(
            f"fit.batch_size: {settings['batch_size']} slices is more than the train split holds ({split.n_rows})"
        )
    seed = int(settings["seed"])
    blocks = tf.data.Dataset.range(split.n_blocks).shuffle(split.n_blocks, seed=seed, reshuffle_each_iteration=True)
    segments = _segments(split, blocks, energy_scale, parallel_reads=tf.data.AUTOTUNE, deterministic=True)
    shuffle_segments = max(1, int(settings["shuffle_buffer"]) // split.frames_per_segment)
    segments = segments.shuffle(shuffle_segments, seed=seed + 1, reshuffle_each_iteration=True)
    batches = segments.batch(per_batch, drop_remainder=True).repeat()
    batches = batches.map(_to_model_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return batches.prefetch(tf.data.AUTOTUNE), steps_per_pass


def evaluation_dataset(split: StoreSplit, batch_size: int, energy_scale: float, max_steps: int = 0) -> tf.data.Dataset:
    """The whole split (or its first ``max_steps`` batches) in store order, for scoring."""
    per_batch = segments_per_batch(batch_size, split.frames_per_segment)
    blocks = tf.data.Dataset.range(split.n_blocks)
    segments = _segments(split, blocks, energy_scale, parallel_reads=tf.data.AUTOTUNE, deterministic=True)
    batches = segments.batch(per_batch).map(_to_model_batch, num_parallel_calls=tf.data.AUTOTUNE)
    if max_steps > 0:
        batches = batches.take(max_steps)
    return batches.prefetch(tf.data.AUTOTUNE)
