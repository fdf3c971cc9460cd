"""``tf.data`` over the Zarr store: whole chunks in a new random order each epoch, segments shuffled in a
bounded buffer, decoded in parallel, prefetched. Memory is bounded whatever the dataset size.

The unit of training is a segment: ``frames_per_segment`` consecutive slices ``[T, 512]`` with targets
``active``/``onset``/``energy`` ``[T, 88]`` each (the store keeps rows in segment order). A block is a run
of whole chunks that also holds whole segments (``lcm(chunk_rows, T)`` rows); it is the unit of I/O.

Each epoch's batches are a pure function of ``(fit.seed, epoch)``, so a resumed fit sees exactly the batches
an uninterrupted one would. A shard that cannot be read stops the fit with one line naming it.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

import numpy as np
import tensorflow as tf
import zarr

from builder.dataset.store import LONG_FFT, SLICE_WIDTHS, array
from pianoscribe.constants import N_BINS, N_KEYS
from pianoscribe.errors import UserError, one_line
from trainer.features import FeatureStatistics, energy_target


@dataclass
class StoreSplit:
    """One side (``train`` or ``test``) of a store opened (and so checked) by ``builder.dataset.store.open_store``,
    read block by block."""

    name: str
    group: zarr.Group
    frames_per_segment: int
    long_fft: bool = False  # the model's input rows also hold fft_long_magnitude after the 512 bins

    def __post_init__(self) -> None:
        if self.long_fft and LONG_FFT not in self.group:
            raise UserError(
                f"{self.name}: no {LONG_FFT} in this store (fit.context.long_fft needs one written with "
                "synth.long_fft_bins > 0)"
            )
        names = [*SLICE_WIDTHS, *([LONG_FFT] if self.long_fft else [])]
        arrays = {name: array(self.group, name) for name in names}
        self.input_bins = N_BINS + (int(arrays[LONG_FFT].shape[1]) if self.long_fft else 0)
        self.n_rows = arrays["fft_magnitude"].shape[0]
        if self.n_rows == 0:
            raise UserError(f"{self.name}: the split is empty")
        self.arrays = arrays
        chunk_rows = arrays["fft_magnitude"].chunks[0]
        self.block_rows = math.lcm(chunk_rows, self.frames_per_segment)
        self.n_blocks = -(-self.n_rows // self.block_rows)
        self.n_segments = self.n_rows // self.frames_per_segment
        # what the first failed read said: inside tf.data it reaches the caller only as TensorFlow's own error
        self.read_failure: str | None = None

    def read_block(self, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Rows of block ``block``: the model's input rows (``fft_magnitude``, stored dtype; with ``long_fft``,
        float32 ``fft_magnitude`` then ``fft_long_magnitude``), ``key_energy``, ``key_active``, ``key_onset``."""
        rows = slice(block * self.block_rows, min((block + 1) * self.block_rows, self.n_rows))
        fft_magnitude, key_energy, key_active, key_onset = (self._read(name, rows) for name in SLICE_WIDTHS)
        if self.long_fft:
            fft_long = self._read(LONG_FFT, rows)
            fft_magnitude = np.concatenate([fft_magnitude, fft_long], axis=1, dtype=np.float32)
        return fft_magnitude, key_energy, key_active, key_onset

    def _read(self, name: str, rows: slice) -> np.ndarray:
        """Rows of one array; a damaged shard (truncated, garbage) is a one-line ``UserError`` naming it."""
        try:
            return np.asarray(self.arrays[name][rows])
        except Exception as error:  # whatever zarr or a codec raises, the shard's bytes are unusable
            failure = (
                f"{self.name}/{name}: {self._shard_of(name, rows.start)} cannot be read "
                f"({type(error).__name__}: {one_line(error)})"
            )
            self.read_failure = self.read_failure or failure
            raise UserError(failure) from error

    def _shard_of(self, name: str, row: int) -> str:
        """``shard I (rows A..B)``: the storage object holding ``row`` (a block never spans two: chunks hold whole
        segments and shards whole chunks)."""
        stored = self.arrays[name]
        shard_rows = (stored.shards or stored.chunks)[0]
        shard = row // shard_rows
        return f"shard {shard} (rows {shard * shard_rows}..{min((shard + 1) * shard_rows, self.n_rows) - 1})"

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
    statistics = FeatureStatistics(compression, split.input_bins)
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
    """Blocks -> segments ``([T, input bins] f32, [T, 88] u8, [T, 88] u8, [T, 88] f32)``, read in parallel."""
    frames = split.frames_per_segment
    reader = _block_reader(split, energy_scale)

    def read(block):
        fft_magnitude, active, onset, energy = tf.numpy_function(
            reader, [block], (tf.float32, tf.uint8, tf.uint8, tf.float32), stateful=False
        )
        return (
            tf.reshape(fft_magnitude, [-1, frames, split.input_bins]),
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


def steps_per_epoch(split: StoreSplit, settings: dict[str, Any]) -> int:
    """``fit.steps_per_epoch``, or (0) the batches of one pass over the split."""
    per_batch = segments_per_batch(settings["batch_size"], split.frames_per_segment)
    steps_per_pass = split.n_segments // per_batch
    if steps_per_pass == 0:
        raise UserError(
            f"fit.batch_size: {settings['batch_size']} slices is more than the train split holds ({split.n_rows})"
        )
    return int(settings["steps_per_epoch"]) or steps_per_pass


def training_dataset(
    split: StoreSplit, settings: dict[str, Any], energy_scale: float, first_epoch: int = 0
) -> tuple[tf.data.Dataset, int]:
    """The batches of epochs ``first_epoch`` .. ``fit.epochs - 1`` for ``model.fit``, and the steps of one epoch.

    Epoch ``e`` is the first ``steps`` batches of passes over the split. Each pass visits every block once in
    its own random order, shuffles segments in a buffer of ``shuffle_buffer`` slices and batches ``batch_size``
    slices (whole segments), with seeds from ``(fit.seed, e, pass)`` alone. So epoch ``e`` holds the same
    batches whichever epoch the stream starts at: a resumed fit continues exactly as an uninterrupted one.
    """
    steps = steps_per_epoch(split, settings)
    last_epoch = max(int(settings["epochs"]), first_epoch + 1)  # never empty: Keras takes a dataset even then
    epochs = [_epoch_batches(split, settings, energy_scale, epoch, steps) for epoch in range(first_epoch, last_epoch)]
    batches = functools.reduce(tf.data.Dataset.concatenate, epochs)
    batches = batches.map(_to_model_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    onset_frames = int(settings["onset_target_frames"])
    if onset_frames > 1:
        batches = batches.map(functools.partial(_widen_onsets, frames=onset_frames))
    return batches.prefetch(tf.data.AUTOTUNE), steps


def _widen_onsets(fft_magnitude, targets, frames: int):
    """Training only: a key's onset target is also set in the ``frames - 1`` buffers after its onset buffer.

    A note that starts in a buffer's last samples is labelled there but heard in the next; a target over both
    lets the onset head fire where the attack is audible. Decoding takes the first frame of a run of onset
    frames, so the onset time stays the labelled buffer's when the head fires on both. (The first frames of a
    segment cannot see an onset in the buffer before the segment: they keep their own label.)
    """
    onset = targets["onset"]
    widened = onset
    for shift in range(1, frames):
        widened = tf.maximum(widened, tf.pad(onset[:, :-shift], [[0, 0], [shift, 0], [0, 0]]))
    return fft_magnitude, {**targets, "onset": widened}


def _epoch_batches(
    split: StoreSplit, settings: dict[str, Any], energy_scale: float, epoch: int, steps: int
) -> tf.data.Dataset:
    """Epoch ``epoch``: ``steps`` batches, from as many passes as that takes (one, unless ``fit.steps_per_epoch``
    is more than a pass)."""
    per_batch = segments_per_batch(settings["batch_size"], split.frames_per_segment)
    passes = -(-steps // (split.n_segments // per_batch))
    seeds = [pass_seeds(int(settings["seed"]), epoch, index) for index in range(passes)]
    batches = [
        _pass_batches(split, settings, energy_scale, block_seed, segment_seed) for block_seed, segment_seed in seeds
    ]
    return functools.reduce(tf.data.Dataset.concatenate, batches).take(steps)


def pass_seeds(seed: int, epoch: int, pass_index: int) -> tuple[int, int]:
    """Seeds of one pass's block order and segment shuffle: a pure function of ``(fit.seed, epoch, pass)``.

    (Python integers on purpose: tf.data refuses tensor seeds when the global seed is 0, the default.)
    """
    block_seed, segment_seed = np.random.SeedSequence([seed, epoch, pass_index]).generate_state(2)
    return int(block_seed), int(segment_seed)


def _pass_batches(
    split: StoreSplit, settings: dict[str, Any], energy_scale: float, block_seed: int, segment_seed: int
) -> tf.data.Dataset:
    """One pass: every block once in a seeded order, segments shuffled in a bounded buffer, whole batches."""
    # reshuffle_each_iteration=False: every pass has seeds of its own, so iterating again gives the same batches
    blocks = tf.data.Dataset.range(split.n_blocks)
    blocks = blocks.shuffle(split.n_blocks, seed=block_seed, reshuffle_each_iteration=False)
    segments = _segments(split, blocks, energy_scale, parallel_reads=tf.data.AUTOTUNE, deterministic=True)
    shuffle_segments = max(1, int(settings["shuffle_buffer"]) // split.frames_per_segment)
    segments = segments.shuffle(shuffle_segments, seed=segment_seed, reshuffle_each_iteration=False)
    per_batch = segments_per_batch(settings["batch_size"], split.frames_per_segment)
    return segments.batch(per_batch, drop_remainder=True)


def evaluation_dataset(split: StoreSplit, batch_size: int, energy_scale: float, max_steps: int = 0) -> tf.data.Dataset:
    """The whole split (or its first ``max_steps`` batches) in store order, for scoring."""
    per_batch = segments_per_batch(batch_size, split.frames_per_segment)
    blocks = tf.data.Dataset.range(split.n_blocks)
    segments = _segments(split, blocks, energy_scale, parallel_reads=tf.data.AUTOTUNE, deterministic=True)
    batches = segments.batch(per_batch).map(_to_model_batch, num_parallel_calls=tf.data.AUTOTUNE)
    if max_steps > 0:
        batches = batches.take(max_steps)
    return batches.prefetch(tf.data.AUTOTUNE)


@contextlib.contextmanager
def store_read_errors(*splits: StoreSplit) -> Iterator[None]:
    """Around ``model.fit``: a shard that failed inside tf.data becomes its one-line ``UserError``, and the
    pipelines are let go of before any error leaves.

    Why the letting go: tf.data threads keep running ``numpy_function`` reads after an error. If the iterator
    outlives the interpreter's shutdown, those threads die waiting for the GIL (Python ends any thread that
    takes it while finalizing), and the iterator's destructor, run by the shutdown's garbage collection, waits
    for them forever: the process hung at 0 % CPU after printing the traceback.
    """
    try:
        yield
    except BaseException as error:
        _let_go_of_pipelines(error)
        failure = next((split.read_failure for split in splits if split.read_failure is not None), None)
        if isinstance(error, tf.errors.OpError) and failure is not None:
            raise UserError(failure) from None
        raise


def _let_go_of_pipelines(error: BaseException) -> None:
    """Clear the frames ``error`` passed through (Keras' epoch iterator is a local of one) and collect them now,
    while the interpreter can still run the reads in flight (the iterator's destructor releases the GIL)."""
    for frame in _unwound_frames(error.__traceback__):
        frame.clear()
    gc.collect()


def _unwound_frames(trace: TracebackType | None) -> Iterator[FrameType]:
    """The finished frames of a traceback, with those between its entries that traceback filtering (Keras,
    TensorFlow) left out but that still hang together through ``f_back``; the frames still running are not
    among them."""
    seen: set[int] = set()
    while trace is not None:
        frame: FrameType | None = trace.tb_frame
        while frame is not None and id(frame) not in seen:
            seen.add(id(frame))
            if not _is_running(frame):
                yield frame
            frame = frame.f_back
        trace = trace.tb_next


def _is_running(frame: FrameType) -> bool:
    """Whether ``frame`` is still executing (ours and our callers'): ``frame.clear()`` refuses those."""
    running: FrameType | None = sys._getframe()
    while running is not None:
        if running is frame:
            return True
        running = running.f_back
    return False
