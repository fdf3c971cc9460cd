"""What every source's recordings go through, and packing them into a bank.

Processing: mono mean of the channels, soxr to 44.1 kHz, start at the attack (first sample above
``ONSET_FRACTION`` of the peak, minus ``PRE_ONSET_SECONDS``), cap at ``max_seconds``, cut where the 10 ms
block peak envelope last reaches ``tail_db`` below the peak, fade the last ``fade_seconds`` linearly to zero,
then one gain for the whole bank so the top layer's median attack RMS (first ``ATTACK_RMS_SECONDS``) equals
``normalize_rms`` (layer loudness differences are preserved).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import soundfile
import soxr

from pianoscribe.constants import HIGHEST_KEY, LOWEST_KEY, N_KEYS, SAMPLE_RATE
from pianoscribe.errors import UserError

# A "recording grid" maps (key, layer) to processed mono 44.1 kHz float32 audio.
RecordingGrid = dict[tuple[int, int], np.ndarray]


ONSET_FRACTION = 0.01  # -40 dB re the peak: the attack starts where the signal first exceeds this
PRE_ONSET_SECONDS = 0.002  # keep this much before the onset so the attack transient is whole
ATTACK_SEARCH_SECONDS = 2.0  # a recording's attack must lie in its first 2 s (only so much is decoded)
ATTACK_RMS_SECONDS = 0.1  # window of the "attack RMS" used for loudness normalization and `rms`
ENVELOPE_BLOCK_SECONDS = 0.01  # block length of the peak envelope used for the tail cut


def to_mono_44k(frames: np.ndarray, sample_rate: int | float) -> np.ndarray:
    """Mean of the channels, resampled to 44.1 kHz with soxr (identity when already at 44.1 kHz)."""
    mono = frames.mean(axis=1, dtype=np.float64).astype(np.float32) if frames.ndim == 2 else frames.astype(np.float32)
    if sample_rate != SAMPLE_RATE:
        mono = soxr.resample(mono, sample_rate, SAMPLE_RATE).astype(np.float32)
    return mono


def attack_start(audio: np.ndarray) -> int:
    """Index where a recording's kept part starts: ``PRE_ONSET_SECONDS`` before its first loud sample."""
    magnitude = np.abs(audio)
    onset = int(np.argmax(magnitude > ONSET_FRACTION * magnitude.max()))
    return max(onset - int(round(PRE_ONSET_SECONDS * SAMPLE_RATE)), 0)


def trim_attack(audio: np.ndarray, settings: dict, label: str) -> np.ndarray:
    if audio.size == 0 or not np.any(audio):
        raise UserError(f"{label}: the recording is silent")
    start = attack_start(audio)
    return audio[start : start + max_samples(settings)]


def max_samples(settings: dict) -> int:
    return int(round(float(settings["max_seconds"]) * SAMPLE_RATE))


def trim_tail(audio: np.ndarray, settings: dict) -> np.ndarray:
    """Cut after the last 10 ms block whose peak is within ``tail_db`` of the overall peak, then fade out."""
    block = int(round(ENVELOPE_BLOCK_SECONDS * SAMPLE_RATE))
    n_blocks = -(-audio.shape[0] // block)
    padded = np.zeros(n_blocks * block, dtype=np.float32)
    padded[: audio.shape[0]] = np.abs(audio)
    block_peaks = padded.reshape(n_blocks, block).max(axis=1)
    threshold = block_peaks.max() * 10.0 ** (float(settings["tail_db"]) / 20.0)
    last_loud_block = int(np.nonzero(block_peaks >= threshold)[0][-1])
    kept = audio[: min((last_loud_block + 1) * block, audio.shape[0])].astype(np.float32, copy=True)
    fade = min(int(round(float(settings["fade_seconds"]) * SAMPLE_RATE)), kept.shape[0])
    if fade > 0:
        kept[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return kept


def attack_rms(audio: np.ndarray) -> float:
    window = audio[: int(round(ATTACK_RMS_SECONDS * SAMPLE_RATE))].astype(np.float64)
    return float(np.sqrt(np.mean(window**2))) if window.size else 0.0


def read_audio(opener: Callable[[], Any], label: str, settings: dict) -> np.ndarray:
    """Decode the first ``max_seconds + ATTACK_SEARCH_SECONDS`` of a file: mono, 44.1 kHz, from its attack."""
    try:
        with soundfile.SoundFile(opener()) as sound:
            frames = int(np.ceil(sound.samplerate * (float(settings["max_seconds"]) + ATTACK_SEARCH_SECONDS)))
            data = sound.read(frames=frames, dtype="float32", always_2d=True)
            sample_rate = sound.samplerate
    except (soundfile.SoundFileError, RuntimeError, ValueError) as error:
        raise Unreadable(f"{label}: not readable audio ({' '.join(str(error).split())})") from error
    if data.shape[0] == 0:
        raise Unreadable(f"{label}: no audio frames")
    return trim_attack(to_mono_44k(data, sample_rate), settings, label)


class Unreadable(UserError):
    """One unreadable file, collected so that all of them are reported together."""


def listing(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... ({len(names) - limit} more)"


def pitch_shift(recording: np.ndarray, semitones: int) -> np.ndarray:
    """Play ``recording`` ``semitones`` higher by resampling (duration scales by the inverse ratio)."""
    return soxr.resample(recording, SAMPLE_RATE * 2.0 ** (semitones / 12.0), SAMPLE_RATE).astype(np.float32)


def pack_recordings(recordings: RecordingGrid, n_layers: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The grid as one contiguous float32 ``audio`` array with ``offsets``/``lengths`` ``[88, n_layers]`` (key by
    key, layer by layer); a missing (key, layer) gets length 0 at the position where it would start."""
    offsets = np.zeros((N_KEYS, n_layers), dtype=np.int64)
    lengths = np.zeros((N_KEYS, n_layers), dtype=np.int64)
    pieces = []
    position = 0
    for key in range(LOWEST_KEY, HIGHEST_KEY + 1):
        for layer in range(n_layers):
            audio = recordings.get((key, layer))
            offsets[key - LOWEST_KEY, layer] = position
            if audio is None:
                continue
            pieces.append(audio)
            lengths[key - LOWEST_KEY, layer] = audio.shape[0]
            position += audio.shape[0]
    return np.concatenate(pieces).astype(np.float32, copy=False), offsets, lengths
