"""Audio -> 1024-sample frames -> model heads per frame -> notes: one path for ``infer``, ``evaluate`` and tests.

``transcribe_file`` / ``transcribe_audio`` feed audio block by block (``trainer.inference.audio``) through a
``FrameModel`` and decode the heads (``trainer.inference.decode``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pianoscribe.constants import BUFFER_SIZE, SAMPLE_RATE
from trainer.features import frame_times
from trainer.inference import audio as audio_module
from trainer.inference.decode import DecodeSettings, decode_notes
from trainer.inference.frame_model import FrameModel, concatenate_heads


@dataclass
class Transcription:
    """Per-frame model outputs of one recording and the notes decoded from them."""

    notes: np.ndarray  # NOTE_DTYPE, sorted by (onset, key)
    probability: np.ndarray  # [frames, 88] frame head (key sounding)
    onset_probability: np.ndarray  # [frames, 88] onset head
    amplitude: np.ndarray  # [frames, 88] energy head (amplitude-like; see features.energy_target)
    frame_times: np.ndarray  # [frames] start of each frame in seconds (frame i = samples [1024 i, 1024 (i+1)))
    audio_seconds: float
    wall_seconds: float = 0.0

    @property
    def speed(self) -> float:
        """Audio seconds transcribed per wall-clock second."""
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else float("inf")


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
    featurizer = frame_model.info.featurizer()
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
            parts.append(runner.feed(featurizer.rows(buffers)))
    if len(carry):
        tail = np.zeros((1, BUFFER_SIZE), dtype=np.float32)
        tail[0, : len(carry)] = carry
        parts.append(runner.feed(featurizer.rows(tail)))
    parts.append(runner.finish())
    heads = concatenate_heads(parts)
    times = frame_times(len(heads["active"]))
    notes = decode_notes(heads["active"], heads["onset"], heads["energy"], decode)
    return Transcription(
        notes=notes,
        probability=heads["active"],
        onset_probability=heads["onset"],
        amplitude=heads["energy"],
        frame_times=times,
        audio_seconds=n_samples / SAMPLE_RATE,
    )
