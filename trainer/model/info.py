"""``ModelInfo``: what a model carries besides its weights, and the heads it outputs.

Plain Python on purpose: the ONNX runtime path reads it without importing Keras or TensorFlow.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pianoscribe.constants import BUFFER_SIZE, SAMPLE_RATE, WINDOWS
from pianoscribe.errors import UserError
from trainer.features import Featurizer

HEADS = ("active", "onset", "energy")  # the outputs, each [batch, time, 88]
OFFLINE_ARCH = "offline"  # ModelInfo.arch of an offline model (trainer.model.offline); also its ``decode`` sub-section


@dataclass
class ModelInfo:
    """What a caller needs besides the weights: how to slice/window audio, how far the model looks, thresholds."""

    arch: str
    context_frames: int
    lookahead_frames: int
    window: str
    energy_scale: float
    sample_rate: int = SAMPLE_RATE
    buffer_size: int = BUFFER_SIZE
    onset_threshold: float = 0.5
    frame_threshold: float = 0.5
    min_note_seconds: float = 0.05
    versions: dict[str, str] = dataclasses.field(default_factory=dict)  # libraries it was trained with
    long_fft_bins: int = 0  # > 0: the input's columns after the 512 FFT bins are the long window's (features.py)
    # the energy head's value at the attack of each key x velocity in the training banks (features.velocity_curve):
    # {"velocities": [V], "energy": [88][V]}; None (older models): velocity = 127 x energy
    velocity_curve: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def featurizer(self, workers: int = -1) -> Featurizer:
        """What turns audio buffers into this model's input rows (its window; the long window's bins if it reads
        them). A fresh one per sequence: it keeps that sequence's past audio."""
        return Featurizer(self.window, int(self.long_fft_bins), workers)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelInfo:
        names = {field.name for field in dataclasses.fields(cls)}
        missing = {field.name for field in dataclasses.fields(cls) if field.default is dataclasses.MISSING} - set(
            values
        )
        if missing:
            raise UserError(f"model info: missing {', '.join(sorted(missing))}")
        return cls(**{key: value for key, value in values.items() if key in names})


def grid_problems(info: ModelInfo) -> list[str]:
    """Why ``info`` does not fit the way this code slices audio (empty when it does)."""
    problems = []
    if info.sample_rate != SAMPLE_RATE or info.buffer_size != BUFFER_SIZE:
        problems.append(
            f"made for {info.buffer_size}-sample buffers at {info.sample_rate} Hz, "
            f"this code slices {BUFFER_SIZE} at {SAMPLE_RATE}"
        )
    if info.window not in WINDOWS:
        problems.append(f"unknown window {info.window!r}")
    return problems
