"""The only Python face of the native engine (``pianoscribe_native``, C++ in ``native/``).

Everything that mixes, labels, analyzes or synthesizes through C++ goes through these functions: the dataset
(:mod:`builder.dataset`), rendering, the modal pianos and inference's FFT. Loading the module checks that it
was built for this code's audio grid (:func:`pianoscribe.constants.check_engine`); a missing build is one
clear error.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from pianoscribe.constants import BUFFER_SIZE, LONG_AFTER, LONG_BEFORE, N_BINS, SAMPLE_RATE, check_engine
from pianoscribe.errors import UserError


@cache
def native() -> Any:
    """The checked ``pianoscribe_native`` module."""
    try:
        import pianoscribe_native
    except ImportError as error:
        raise UserError(f"pianoscribe_native: the C++ engine is not built ({error}); run `make setup`") from error
    check_engine(pianoscribe_native)
    return pianoscribe_native


def new_engine(threads: int) -> Any:
    """A fresh engine with ``threads`` worker threads (0 = all cores)."""
    return native().Engine(threads)


def load_bank_into(engine: Any, bank: Any, precision: str = "float32") -> int:
    """Hand a bank to the engine: float32 shares the arrays (no copy); int16 makes the engine's own packed copy
    (one scale per recording: half the memory, ~100 dB below each recording's peak; docs/dataset.md)."""
    if int(bank.sample_rate) != SAMPLE_RATE:
        raise UserError(f"bank {bank.name}: sample rate {bank.sample_rate}, the synthesizer needs {SAMPLE_RATE}")
    return engine.add_bank(
        np.ascontiguousarray(bank.audio, np.float32),
        np.ascontiguousarray(bank.offsets, np.int64),
        np.ascontiguousarray(bank.lengths, np.int64),
        np.ascontiguousarray(bank.layer_velocities, np.float32),
        precision,
    )


def fft_magnitude_of_buffers(buffers: np.ndarray, window: str, threads: int = 0) -> np.ndarray:
    """``[n, 1024]`` buffers -> ``[n, 512]`` float32 FFT magnitudes by the engine code that wrote the dataset.

    Inference featurizes through this too, so a model sees at inference exactly the numbers it trained on
    (and the engine's batched pocketfft is ~3x faster than scipy.fft + abs for this shape, one buffer included).
    """
    buffers = np.ascontiguousarray(buffers, dtype=np.float32)
    fft_magnitude = np.empty((buffers.shape[0], N_BINS), dtype=np.float32)
    new_engine(threads).analyze(buffers, fft_magnitude, window)
    return fft_magnitude


def fft_magnitude_of_audio(audio: np.ndarray, window: str, threads: int = 0) -> np.ndarray:
    """Mono audio -> ``[frames, 512]`` float32 FFT magnitudes on the grid frame i = samples [1024 i, 1024 (i+1)),
    computed by the same engine code as the dataset's ``fft_magnitude`` (the tail is zero-padded)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"audio: expected mono [samples], got shape {list(audio.shape)}")
    frames = -(-len(audio) // BUFFER_SIZE)
    buffers = np.zeros(frames * BUFFER_SIZE, dtype=np.float32)
    buffers[: len(audio)] = audio
    return fft_magnitude_of_buffers(buffers.reshape(frames, BUFFER_SIZE), window, threads)


def fft_long_magnitude_after(audio: np.ndarray, bins: int, threads: int = 0) -> np.ndarray:
    """Long-window magnitudes of the buffers of ``audio`` after its first ``LONG_BEFORE`` buffers (their past):
    ``[len(audio) // 1024 - LONG_BEFORE, bins]`` float32. For a caller that keeps the past itself (streaming)."""
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    rows = len(audio) // BUFFER_SIZE - LONG_BEFORE
    if audio.ndim != 1 or rows < 0 or len(audio) % BUFFER_SIZE:
        raise ValueError(f"audio: expected whole buffers, at least {LONG_BEFORE}, got shape {list(audio.shape)}")
    fft_long_magnitude = np.empty((rows, bins), dtype=np.float32)
    new_engine(threads).analyze_long(audio, fft_long_magnitude)
    return fft_long_magnitude


def fft_long_magnitude_of_audio(audio: np.ndarray, bins: int, threads: int = 0) -> np.ndarray:
    """Mono audio -> ``[frames, bins]`` float32 long-window magnitudes on the same frame grid, by the engine code
    that writes the dataset's ``fft_long_magnitude``: row i reads samples [1024 (i - 3), 1024 (i + 1)) through a
    4096-sample Hann window (silence before the audio), bins of 44100 / 4096 = 10.8 Hz from 0 Hz."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"audio: expected mono [samples], got shape {list(audio.shape)}")
    frames = -(-len(audio) // BUFFER_SIZE)
    before = LONG_BEFORE * BUFFER_SIZE
    padded = np.zeros(before + (frames + LONG_AFTER) * BUFFER_SIZE, dtype=np.float32)
    padded[before : before + len(audio)] = audio
    fft_long_magnitude = np.empty((frames, bins), dtype=np.float32)
    new_engine(threads).analyze_long(padded, fft_long_magnitude)
    return fft_long_magnitude


def modal_tones(
    frequency_hz: np.ndarray,
    phase: np.ndarray,
    decay_rate: np.ndarray,
    beat_hz: np.ndarray,
    beat_phase: np.ndarray,
    weights: np.ndarray,
    *,
    aftersound_level: float,
    aftersound_ratio: float,
    beating_depth: float,
    attack_seconds: float,
    n_samples: int,
    threads: int = 0,
) -> np.ndarray:
    """``[blows, n_samples]`` float32: each hammer blow's sum of decaying, beating partials, the same bits on any
    CPU (the formula is in ``native/engine.cpp``, ``modal_tones``)."""
    return native().modal_tones(
        frequency_hz,
        phase,
        decay_rate,
        beat_hz,
        beat_phase,
        weights,
        aftersound_level=aftersound_level,
        aftersound_ratio=aftersound_ratio,
        beating_depth=beating_depth,
        attack_seconds=attack_seconds,
        n_samples=n_samples,
        threads=threads,
    )
