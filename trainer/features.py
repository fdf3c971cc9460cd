"""Featurization shared by fit, infer and evaluate: one definition, so training and inference see the same numbers.

Audio becomes model input in three steps, each defined exactly once here:

1. ``frames_from_audio``: the 1024-hop grid, frame ``i`` = samples ``[1024 i, 1024 (i + 1))``.
2. ``fft_magnitude_of_buffers``: ``|rfft(window * buffer)|``, bins 0..511 — exactly what ``builder synth``
   stores as ``fft_magnitude`` (same window, unnormalized forward FFT). A model with ``long_fft_bins`` > 0 reads
   each frame's ``fft_long_magnitude`` (the 4096-sample window over buffers i-3..i) after those 512 columns:
   ``Featurizer`` computes both as buffers arrive, keeping the past it needs.
3. ``spectral_features``: ``(log(1 + compression * magnitude) - mean) / std`` per bin, with ``mean``/``std``
   computed once on the training split (``FeatureStatistics``). Inside the model this step is the Keras layer
   ``trainer.model.layers.SpectralFeatures`` (its weights are ``mean``/``std``); this module is numpy only, so
   inference without TensorFlow imports it too.

The energy head predicts ``energy_target`` (an amplitude-like, compressed key energy);
``energy_to_velocity`` maps it back to a MIDI velocity through the model's ``velocity_curve``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from builder.engine import fft_long_magnitude_after
from builder.engine import fft_magnitude_of_buffers as engine_fft_magnitude
from pianoscribe.constants import BUFFER_SIZE, LONG_BEFORE, N_BINS, SAMPLE_RATE, WINDOWS
from pianoscribe.errors import UserError

STD_FLOOR = 1e-3  # a bin that never varies (e.g. always silent) must not blow up the normalization


def fft_magnitude_of_buffers(buffers: np.ndarray, window: str, workers: int = -1) -> np.ndarray:
    """``|rfft(window * buffer)|`` bins 0..511 of ``[n, 1024]`` buffers -> ``[n, 512]`` float32.

    The Nyquist bin is dropped, as in the store. Computed by the synthesizer engine's own FFT code
    (``builder.engine.fft_magnitude_of_buffers``), so inference sees the very numbers training saw;
    ``workers`` threads (-1: all cores).
    """
    buffers = np.asarray(buffers, dtype=np.float32)
    if buffers.ndim != 2 or buffers.shape[1] != BUFFER_SIZE:
        raise ValueError(f"buffers: expected shape [n, {BUFFER_SIZE}], got {list(buffers.shape)}")
    if window not in WINDOWS:
        raise UserError(f"window: expected one of {', '.join(WINDOWS)}, got {window!r}")
    return engine_fft_magnitude(buffers, window, threads=max(int(workers), 0))


class Featurizer:
    """Buffers as they arrive -> the model's input rows ``[n, 512 + long_fft_bins]``, one per buffer, at once.

    The long window of a buffer ends with it (causal), so no row waits for later audio; the featurizer keeps
    the last ``LONG_BEFORE`` buffers (silence before the first), which is what makes block-by-block rows equal
    to whole-song rows.
    """

    def __init__(self, window: str, long_fft_bins: int = 0, workers: int = -1) -> None:
        self.window = window
        self.long_fft_bins = int(long_fft_bins)
        self.workers = workers
        self._past = np.zeros(LONG_BEFORE * BUFFER_SIZE, dtype=np.float32)

    @property
    def width(self) -> int:
        return N_BINS + self.long_fft_bins

    def rows(self, buffers: np.ndarray) -> np.ndarray:
        buffers = np.asarray(buffers, dtype=np.float32)
        fft_magnitude = fft_magnitude_of_buffers(buffers, self.window, self.workers)
        if not self.long_fft_bins:
            return fft_magnitude
        audio = np.concatenate([self._past, buffers.reshape(-1)])
        self._past = audio[len(audio) - len(self._past) :]
        fft_long = fft_long_magnitude_after(audio, self.long_fft_bins, threads=max(int(self.workers), 0))
        return np.concatenate([fft_magnitude, fft_long], axis=1)


def frames_from_audio(audio: np.ndarray) -> np.ndarray:
    """Mono 44.1 kHz audio -> ``[n_frames, 1024]`` buffers on the grid frame i = samples [1024 i, 1024 (i+1)).

    The tail is zero-padded to a whole buffer; empty audio gives zero frames. A view-free copy, float32.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"audio: expected mono [samples], got shape {list(audio.shape)}")
    n_frames = -(-audio.shape[0] // BUFFER_SIZE)
    frames = np.zeros(n_frames * BUFFER_SIZE, dtype=np.float32)
    frames[: audio.shape[0]] = audio
    return frames.reshape(n_frames, BUFFER_SIZE)


def frame_times(n_frames: int) -> np.ndarray:
    """Start time in seconds of each frame on the 1024-hop grid."""
    return np.arange(n_frames, dtype=np.float64) * BUFFER_SIZE / SAMPLE_RATE


# ---------------------------------------------------------------------------------------------- compression


def compress_magnitude(fft_magnitude: np.ndarray, compression: float) -> np.ndarray:
    """``log(1 + compression * magnitude)``: loudness-like, so a quiet partial weighs like a loud one."""
    return np.log1p(np.float32(compression) * np.asarray(fft_magnitude, dtype=np.float32))


def spectral_features(fft_magnitude: np.ndarray, compression: float, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Numpy twin of the model's ``SpectralFeatures`` layer (tests check they agree): compress, normalize per bin."""
    compressed = compress_magnitude(fft_magnitude, compression)
    return ((compressed - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).astype(np.float32)


class FeatureStatistics:
    """Running per-bin mean/std of compressed magnitudes (float64 sums), fed chunk by chunk from the train split."""

    def __init__(self, compression: float, bins: int = N_BINS) -> None:
        self.compression = compression
        self.count = 0
        self.total = np.zeros(bins, dtype=np.float64)
        self.total_squares = np.zeros(bins, dtype=np.float64)

    def add(self, fft_magnitude: np.ndarray) -> None:
        compressed = compress_magnitude(fft_magnitude, self.compression).astype(np.float64)
        self.count += compressed.shape[0]
        self.total += compressed.sum(axis=0)
        self.total_squares += np.square(compressed).sum(axis=0)

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        if self.count == 0:
            raise UserError("train split: no rows to compute feature statistics from")
        mean = self.total / self.count
        variance = np.maximum(self.total_squares / self.count - np.square(mean), 0.0)
        std = np.maximum(np.sqrt(variance), STD_FLOOR)
        return mean.astype(np.float32), std.astype(np.float32)


# ---------------------------------------------------------------------------------------------- energy


def energy_target(key_energy: np.ndarray, energy_scale: float) -> np.ndarray:
    """Compressed key energy the model learns: ``sqrt(key_energy / energy_scale)``, amplitude-like.

    ``energy_scale`` is the energy of a loud (velocity ~127) note's buffer, measured on the train split, so
    the target is about ``velocity / 127`` near an onset and decays with the note.
    """
    return np.sqrt(np.maximum(np.asarray(key_energy, dtype=np.float32), 0.0) / np.float32(energy_scale))


def velocity_curve(attack_energy: dict[str, Any] | None, energy_scale: float) -> dict[str, Any] | None:
    """The store's ``attack_energy`` (``builder.dataset.loudness``: per key and velocity, the ``key_energy`` of a
    lone note's loudest attack buffer through the train banks) in the energy head's units: what the head reads at
    the attack of a note of each velocity. ``None`` (a store made before it existed) keeps the linear map."""
    if not attack_energy:
        return None
    targets = energy_target(np.asarray(attack_energy["key_energy"], np.float64), energy_scale)
    return {
        "velocities": [int(velocity) for velocity in attack_energy["velocities"]],
        "energy": [[float(f"{value:.6g}") for value in row] for row in targets],
    }


def energy_to_velocity(
    energy: np.ndarray, keys: np.ndarray | None = None, curve: dict[str, Any] | None = None
) -> np.ndarray:
    """The energy head's value at attacks (key indices ``keys``, 0 = A0) -> MIDI velocity 1..127 (int).

    With a ``velocity_curve`` (the model's, from its training banks) each key's attack value is read off that
    key's curve, log-log interpolated and extended with the end slopes: a key's loudness per velocity differs
    across the keyboard and is not linear across layers. Without one, velocity = 127 x energy (older models; it
    reads ~4x low on a piano the model never heard, issue 13).
    """
    energy = np.asarray(energy, dtype=np.float64)
    if curve is None or keys is None:
        velocity = 127.0 * energy
    else:
        log_velocities = np.log(np.asarray(curve["velocities"], np.float64))
        log_energy = np.log(np.maximum(np.asarray(curve["energy"], np.float64), 1e-12))
        keys = np.asarray(keys)
        velocity = np.zeros(len(energy))
        for key in np.unique(keys):
            chosen = keys == key
            velocity[chosen] = np.exp(
                _loglog_inverse(np.log(np.maximum(energy[chosen], 1e-12)), log_energy[key], log_velocities)
            )
    return np.clip(np.rint(velocity), 1, 127).astype(np.int64)


def _loglog_inverse(log_value: np.ndarray, log_energy: np.ndarray, log_velocities: np.ndarray) -> np.ndarray:
    """log velocity at ``log_value`` on the curve ``log_energy(log_velocities)``, made increasing first."""
    log_energy = np.maximum.accumulate(log_energy) + 1e-9 * np.arange(len(log_energy))
    low_slope = (log_velocities[1] - log_velocities[0]) / max(log_energy[1] - log_energy[0], 1e-6)
    high_slope = (log_velocities[-1] - log_velocities[-2]) / max(log_energy[-1] - log_energy[-2], 1e-6)
    inside = np.interp(log_value, log_energy, log_velocities)
    below = log_velocities[0] + (log_value - log_energy[0]) * low_slope
    above = log_velocities[-1] + (log_value - log_energy[-1]) * high_slope
    return np.where(log_value < log_energy[0], below, np.where(log_value > log_energy[-1], above, inside))
