"""Audio -> 1024-sample frames -> model heads per frame -> notes. One path for ``infer``, ``evaluate`` and streaming.

- ``FrameModel`` runs a loaded model over a song of any length: the FFT slices go through the network in
  blocks that overlap by the model's context (``context_frames - 1 - lookahead_frames`` past frames,
  ``lookahead_frames`` future ones), so every frame sees exactly the neighbours it would see if the whole
  song were one sequence, while memory stays bounded by the block size. Blocks are stacked into batches.
- ``transcribe_file`` / ``transcribe_audio`` feed it audio block by block (``trainer.audio``) and decode.
- ``decode_notes`` turns per-frame probabilities into notes: a note starts at a peak of the onset head above
  ``onset_threshold`` and lasts while the frame head stays above ``frame_threshold`` (a new onset on the same
  key ends it: a re-strike); notes shorter than ``min_note_seconds`` are dropped; velocity comes from the
  energy head at the attack.
- ``StreamingTranscriber`` takes one 1024-sample buffer at a time and returns the 88 frame probabilities of
  the frame ``lookahead_frames`` buffers back, with a ring of the last ``context_frames`` slices.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from builder.corpus import NOTE_DTYPE
from builder.errors import UserError
from builder.notes import LOWEST_KEY, N_KEYS
from trainer import audio as audio_module
from trainer.features import BUFFER_SIZE, N_BINS, SAMPLE_RATE, fft_magnitude_of_buffers, frame_times

HOP_SECONDS = BUFFER_SIZE / SAMPLE_RATE
BLOCK_FRAMES = 512        # frames per model block (~12 s of audio)
BATCH_BLOCKS = 2          # blocks per model call: ~100 MB of activations, as fast as bigger batches
ATTACK_FRAMES = 2         # velocity = the energy head's peak over the onset frame and the next ones

DEFAULT_DECODE_SETTINGS: dict[str, Any] = {
    "onset_threshold": None,    # None: the value stored in the model file
    "frame_threshold": None,
    "min_note_seconds": None,
}


@dataclass(frozen=True)
class DecodeSettings:
    """How probabilities become notes."""

    onset_threshold: float
    frame_threshold: float
    min_note_seconds: float

    @classmethod
    def resolve(cls, settings: dict[str, Any], info) -> "DecodeSettings":
        """Explicit settings win; ``None`` falls back to what the model file carries (``ModelInfo``)."""
        values = {}
        for name in ("onset_threshold", "frame_threshold", "min_note_seconds"):
            value = settings.get(name)
            value = getattr(info, name) if value is None else value
            try:
                value = float(value)
            except (TypeError, ValueError) as error:
                raise UserError(f"{name}: expected a number, got {value!r}") from error
            if name.endswith("threshold") and not 0.0 < value < 1.0:
                raise UserError(f"{name}: must lie strictly between 0 and 1, got {value}")
            if name == "min_note_seconds" and value < 0.0:
                raise UserError(f"{name}: must be >= 0, got {value}")
            values[name] = value
        return cls(**values)


@dataclass
class Transcription:
    """Per-frame model outputs of one recording and the notes decoded from them."""

    notes: np.ndarray              # NOTE_DTYPE, sorted by (onset, key)
    probability: np.ndarray        # [frames, 88] frame head (key sounding)
    onset_probability: np.ndarray  # [frames, 88] onset head
    amplitude: np.ndarray          # [frames, 88] energy head (amplitude-like; see features.energy_target)
    frame_times: np.ndarray        # [frames] start of each frame in seconds (frame i = samples [1024 i, 1024 (i+1)))
    audio_seconds: float
    wall_seconds: float = 0.0

    @property
    def speed(self) -> float:
        """Audio seconds transcribed per wall-clock second."""
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else float("inf")


# ---------------------------------------------------------------------------------------------- model over a song


class FrameModel:
    """A loaded model plus the bookkeeping to run it over sequences of any length in overlapping blocks."""

    def __init__(self, model, info, block_frames: int = BLOCK_FRAMES, batch_blocks: int = BATCH_BLOCKS) -> None:
        import tensorflow as tf

        self.model = model
        self.info = info
        self.window = info.window
        self.past_frames = int(info.context_frames) - 1 - int(info.lookahead_frames)
        self.future_frames = int(info.lookahead_frames)
        self.block_frames = int(block_frames)
        self.batch_blocks = int(batch_blocks)
        # one graph for every (batch, time) shape: no retracing per song length
        self._compiled = tf.function(lambda fft_magnitude: model(fft_magnitude, training=False),
                                    input_signature=[tf.TensorSpec([None, None, N_BINS], tf.float32)],
                                    reduce_retracing=True)
        self.predict(np.zeros((1, int(info.context_frames), N_BINS), np.float32))  # trace now, not in the first song

    def predict(self, fft_magnitude: np.ndarray) -> dict[str, np.ndarray]:
        """One model call on a batch ``[batch, time, 512]`` -> heads ``[batch, time, 88]`` (no blocking)."""
        return {name: value.numpy() for name, value in self._compiled(fft_magnitude).items()}

    @classmethod
    def load(cls, path: Path | str, **kwargs) -> "FrameModel":
        from trainer.models import load_model

        model, info = load_model(path)
        return cls(model, info, **kwargs)

    def heads(self, fft_magnitude: np.ndarray) -> dict[str, np.ndarray]:
        """Heads for a whole sequence ``[time, 512]`` -> ``{active, onset, energy}`` each ``[time, 88]``."""
        runner = self.sequence_runner()
        return _concatenate_heads([runner.feed(fft_magnitude), runner.finish()])

    def sequence_runner(self) -> "SequenceRunner":
        return SequenceRunner(self)

    def run_spans(self, fft_magnitude: np.ndarray, spans: list[tuple[int, int, int, int]]) -> dict[str, np.ndarray]:
        """Run model blocks; ``spans`` = (input start, input end, output start, output end) into ``fft_magnitude``.

        Blocks of equal input length share one batch; outputs come back concatenated in span order.
        """
        outputs: list[dict[str, np.ndarray] | None] = [None] * len(spans)
        by_length: dict[int, list[int]] = collections.defaultdict(list)
        for index, (start, end, _, _) in enumerate(spans):
            by_length[end - start].append(index)
        for indices in by_length.values():
            for first in range(0, len(indices), self.batch_blocks):
                group = indices[first:first + self.batch_blocks]
                batch = np.stack([fft_magnitude[spans[i][0]:spans[i][1]] for i in group]).astype(np.float32)
                result = self.predict(batch)
                for row, i in enumerate(group):
                    start, _, out_start, out_end = spans[i]
                    outputs[i] = {name: value[row, out_start - start:out_end - start]
                                  for name, value in result.items()}
        return {name: np.concatenate([output[name] for output in outputs]) for name in ("active", "onset", "energy")}


class SequenceRunner:
    """Feed FFT slices as they arrive; get heads back for every frame whose future context is complete.

    Keeps only the past context it still needs, so a long recording runs in bounded memory.
    """

    def __init__(self, frame_model: FrameModel) -> None:
        self.frame_model = frame_model
        self._pending = np.zeros((0, N_BINS), dtype=np.float32)
        self._pending_start = 0      # global frame index of _pending[0]
        self._next_output = 0        # global frame index of the next frame to produce
        self._end = 0                # frames fed so far

    def feed(self, fft_magnitude: np.ndarray) -> dict[str, np.ndarray]:
        self._pending = np.concatenate([self._pending, np.asarray(fft_magnitude, np.float32)])
        self._end += len(fft_magnitude)
        chunk = self.frame_model.block_frames * self.frame_model.batch_blocks
        produced = []
        while self._end - self._next_output >= chunk + self.frame_model.future_frames:
            produced.append(self._produce(self._next_output + chunk))
        return _concatenate_heads(produced)

    def finish(self) -> dict[str, np.ndarray]:
        return _concatenate_heads([self._produce(self._end)] if self._end > self._next_output else [])

    def _produce(self, output_end: int) -> dict[str, np.ndarray]:
        model = self.frame_model
        spans = []
        for block_start in range(self._next_output, output_end, model.block_frames):
            block_end = min(block_start + model.block_frames, output_end)
            input_start = max(0, block_start - model.past_frames)
            input_end = min(self._end, block_end + model.future_frames)
            spans.append((input_start - self._pending_start, input_end - self._pending_start,
                          block_start - self._pending_start, block_end - self._pending_start))
        heads = model.run_spans(self._pending, spans)
        self._next_output = output_end
        keep_from = max(0, output_end - model.past_frames)
        self._pending = self._pending[keep_from - self._pending_start:]
        self._pending_start = keep_from
        return heads


def _concatenate_heads(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if not parts:
        return {name: np.zeros((0, N_KEYS), np.float32) for name in ("active", "onset", "energy")}
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


# ---------------------------------------------------------------------------------------------- audio -> transcription


def transcribe_file(path: Path | str, frame_model: FrameModel, decode: DecodeSettings) -> Transcription:
    """Read (any format/rate/channels), run, decode. Raises ``UserError`` naming the file if it is unusable."""
    started = time.perf_counter()
    transcription = transcribe_blocks(audio_module.iter_mono_blocks(path), frame_model, decode)
    transcription.wall_seconds = time.perf_counter() - started
    return transcription


def transcribe_audio(audio: np.ndarray, frame_model: FrameModel, decode: DecodeSettings) -> Transcription:
    """Mono 44.1 kHz float audio already in memory (e.g. rendered by ``builder.render``)."""
    started = time.perf_counter()
    transcription = transcribe_blocks([np.asarray(audio, np.float32)], frame_model, decode)
    transcription.wall_seconds = time.perf_counter() - started
    return transcription


def transcribe_blocks(blocks: Iterable[np.ndarray], frame_model: FrameModel, decode: DecodeSettings) -> Transcription:
    """Consecutive mono 44.1 kHz blocks -> frames (tail zero-padded) -> heads -> notes."""
    runner = frame_model.sequence_runner()
    carry = np.zeros(0, dtype=np.float32)
    n_samples = 0
    parts = []
    for block in blocks:
        n_samples += len(block)
        samples = np.concatenate([carry, block]) if len(carry) else np.asarray(block, np.float32)
        whole = len(samples) // BUFFER_SIZE * BUFFER_SIZE
        carry = samples[whole:]
        if whole:
            buffers = samples[:whole].reshape(-1, BUFFER_SIZE)
            parts.append(runner.feed(fft_magnitude_of_buffers(buffers, frame_model.window)))
    if len(carry):
        tail = np.zeros((1, BUFFER_SIZE), dtype=np.float32)
        tail[0, :len(carry)] = carry
        parts.append(runner.feed(fft_magnitude_of_buffers(tail, frame_model.window)))
    parts.append(runner.finish())
    heads = _concatenate_heads(parts)
    times = frame_times(len(heads["active"]))
    notes = decode_notes(heads["active"], heads["onset"], heads["energy"], decode)
    return Transcription(notes=notes, probability=heads["active"], onset_probability=heads["onset"],
                         amplitude=heads["energy"], frame_times=times, audio_seconds=n_samples / SAMPLE_RATE)


# ---------------------------------------------------------------------------------------------- decoding


def decode_notes(frame_probability: np.ndarray, onset_probability: np.ndarray, energy: np.ndarray,
                 decode: DecodeSettings) -> np.ndarray:
    """Per-frame heads ``[frames, 88]`` -> notes (``NOTE_DTYPE``), vectorized over keys and frames.

    A note of key ``k`` starts at frame ``t`` where the onset head has a local peak ``>= onset_threshold``,
    or where the frame head rises above ``frame_threshold`` with no onset peak within one frame and then
    reaches ``onset_threshold`` itself before it falls (a clearly sounding note must not be lost for a weak
    onset, but a flicker just above ``frame_threshold`` is not a note). It ends at the first later frame where the frame head drops below ``frame_threshold`` or the onset head
    peaks again on that key (a re-strike); it lasts at least its onset frame. Onset time = the start of the
    onset frame (the onset lies in that buffer, or, when it falls in a buffer's last samples, in the one
    before: the heads often fire a frame late, measured median +4 ms from the frame centre); offset = the end
    of the last frame held. Notes therefore cover whole frames, and map back onto exactly the frames held.
    """
    from trainer.features import energy_to_velocity

    onset_probability = np.asarray(onset_probability, np.float32)
    n_frames = onset_probability.shape[0]
    if n_frames == 0:
        return np.zeros(0, dtype=NOTE_DTYPE)
    onset_peak = _onset_peaks(onset_probability, decode.onset_threshold)
    held = np.asarray(frame_probability, np.float32) >= decode.frame_threshold
    # key-major with a sentinel frame at the end, so "first stop after t" is one searchsorted for all notes
    stop = np.ones((N_KEYS, n_frames + 1), dtype=bool)
    stop[:, :n_frames] = ~held.T | onset_peak.T
    stop_flat = np.flatnonzero(stop)
    rising = held & ~np.vstack([np.zeros((1, N_KEYS), bool), held[:-1]])
    near_onset_peak = onset_peak.copy()
    near_onset_peak[1:] |= onset_peak[:-1]
    near_onset_peak[:-1] |= onset_peak[1:]
    start = onset_peak | (rising & ~near_onset_peak)
    start_key, start_frame = np.nonzero(start.T)
    start_flat = start_key * (n_frames + 1) + start_frame
    end_flat = stop_flat[np.searchsorted(stop_flat, start_flat, side="right")]
    end_frame = end_flat - start_key * (n_frames + 1)           # exclusive; >= start_frame + 1
    onset_seconds = start_frame * HOP_SECONDS
    offset_seconds = end_frame * HOP_SECONDS
    keep = offset_seconds - onset_seconds >= decode.min_note_seconds - 1e-9
    keep &= onset_peak[start_frame, start_key] | (
        _run_maxima(frame_probability, start_flat, end_flat, n_frames) >= decode.onset_threshold)
    start_key, start_frame, onset_seconds, offset_seconds = (
        start_key[keep], start_frame[keep], onset_seconds[keep], offset_seconds[keep])
    attack = np.asarray(energy, np.float32)
    attack_frames = np.minimum(start_frame[:, None] + np.arange(ATTACK_FRAMES + 1)[None, :], n_frames - 1)
    attack_energy = attack[attack_frames, start_key[:, None]].max(axis=1)
    notes = np.zeros(len(start_key), dtype=NOTE_DTYPE)
    notes["onset"] = onset_seconds
    notes["offset"] = offset_seconds
    notes["key"] = start_key + LOWEST_KEY
    notes["velocity"] = energy_to_velocity(attack_energy)
    return notes[np.lexsort((notes["key"], notes["onset"]))]


def _run_maxima(frame_probability: np.ndarray, start_flat: np.ndarray, end_flat: np.ndarray, n_frames: int) -> np.ndarray:
    """Maximum of the frame head over each note's frames (indices into the key-major layout with a sentinel)."""
    if len(start_flat) == 0:
        return np.zeros(0, np.float32)
    key_major = np.zeros((N_KEYS, n_frames + 1), np.float32)
    key_major[:, :n_frames] = np.asarray(frame_probability, np.float32).T
    bounds = np.stack([start_flat, end_flat], axis=1).ravel()   # [start, end) pairs; every end < size (sentinel)
    return np.maximum.reduceat(key_major.ravel(), bounds)[::2]


def _onset_peaks(onset_probability: np.ndarray, threshold: float) -> np.ndarray:
    """Frames where the onset head is above threshold and a local maximum in time (first of a plateau)."""
    before = np.vstack([np.full((1, N_KEYS), -np.inf, np.float32), onset_probability[:-1]])
    after = np.vstack([onset_probability[1:], np.full((1, N_KEYS), -np.inf, np.float32)])
    return (onset_probability >= threshold) & (onset_probability > before) & (onset_probability >= after)


def notes_to_roll(notes: np.ndarray, n_frames: int, values: str = "velocity") -> np.ndarray:
    """Notes on the 1024-hop grid ``[frames, 88]``: a key is on in frame i when a note sounds at its centre.

    ``values="velocity"`` fills velocity/127 (comparable with the energy head), ``"binary"`` fills 1.
    """
    roll = np.zeros((n_frames, N_KEYS), dtype=np.float32)
    centres = (np.arange(n_frames) + 0.5) * HOP_SECONDS
    for note in notes:
        first, last = np.searchsorted(centres, [note["onset"], note["offset"]], side="left")
        value = 1.0 if values == "binary" else float(note["velocity"]) / 127.0
        roll[first:last, int(note["key"]) - LOWEST_KEY] = np.maximum(roll[first:last, int(note["key"]) - LOWEST_KEY], value)
    return roll


# ---------------------------------------------------------------------------------------------- streaming


class StreamingTranscriber:
    """One 1024-sample buffer in, 88 frame probabilities out, ``lookahead_frames`` buffers late.

    Keeps a ring of the last ``context_frames`` FFT slices and runs the model on just that ring, so the
    probabilities equal the offline ones (``FrameModel.heads``) frame for frame. The latest values of all
    three heads are in ``last_heads`` after each call.
    """

    def __init__(self, frame_model: FrameModel) -> None:
        self.frame_model = frame_model
        self.context_frames = int(frame_model.info.context_frames)
        self.lookahead_frames = int(frame_model.info.lookahead_frames)
        self._ring: collections.deque[np.ndarray] = collections.deque(maxlen=self.context_frames)
        self._pushed = 0
        self._emitted = 0
        self.last_heads: dict[str, np.ndarray] | None = None

    def push(self, buffer: np.ndarray) -> np.ndarray | None:
        """Frame probabilities ``[88]`` of frame ``pushed - 1 - lookahead``, or None while the first buffers fill."""
        buffer = np.asarray(buffer, np.float32).reshape(-1)
        if buffer.shape[0] != BUFFER_SIZE:
            raise ValueError(f"buffer: expected {BUFFER_SIZE} samples, got {buffer.shape[0]}")
        self._ring.append(fft_magnitude_of_buffers(buffer[None, :], self.frame_model.window, workers=1)[0])
        self._pushed += 1
        if self._pushed <= self.lookahead_frames:
            return None
        return self._emit()

    def flush(self) -> list[np.ndarray]:
        """The last ``lookahead_frames`` frames, computed with nothing after the end (as offline does)."""
        remaining = []
        while self._emitted < self._pushed:
            remaining.append(self._emit())
        return remaining

    def _emit(self) -> np.ndarray:
        # the ring holds frames [pushed - len(ring), pushed); frame `emitted` needs `past` frames before it
        # (all in the ring, or before the start where the model zero-pads as offline) and `lookahead` after
        # it (in the ring, or after the end of the stream when flushing, zero-padded as offline)
        ring_row = self._emitted - (self._pushed - len(self._ring))
        result = self.frame_model.predict(np.stack(self._ring)[None])
        self.last_heads = {name: value[0, ring_row] for name, value in result.items()}
        self._emitted += 1
        return self.last_heads["active"]
