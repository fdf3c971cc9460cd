"""Whole pieces through the synthesizer engine to audio (``builder render``, ``trainer evaluate``), and the engine's
FFT analysis of any audio.

The audio is exactly what the dataset's buffers are cut from (same mixing code: velocity layers and gains,
release fade, no augmentation), so a model hears rendered test pieces the way it heard its training data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from builder.atomic import atomic_path
from builder.errors import UserError
from builder.synth import BUFFER_SIZE, SAMPLE_RATE, load_bank_into, new_engine, piece_table, release_samples

MIDI_SUFFIXES = (".mid", ".midi")
MIDI_JSON_SUFFIX = ".json"


def render_notes(notes: np.ndarray, bank: Any, settings: dict[str, Any], threads: int = 0) -> np.ndarray:
    """Mix ``notes`` (NOTE_DTYPE, seconds) through ``bank`` -> float32 mono 44.1 kHz audio.

    ``settings`` is the ``synth`` section (``release_seconds``, ``velocity_exponent``, ``bank_precision``: the
    bank is held as the dataset's was). The audio runs from
    time 0 to where the last note has faded (its release ends or its recording runs out).
    """
    notes = np.asarray(notes)
    if len(notes) == 0:
        return np.zeros(0, dtype=np.float32)
    release = release_samples(settings)
    table = piece_table([("render", notes)], release)
    engine = new_engine(threads)
    load_bank_into(engine, bank, settings.get("bank_precision", "float32"))
    table.load_into(engine)
    audio = np.zeros(_audible_end(table, bank, release), dtype=np.float32)
    engine.render(0, 0, audio, release_samples=release, velocity_exponent=float(settings["velocity_exponent"]))
    return audio


def _audible_end(table: Any, bank: Any, release: int) -> int:
    """Sample after which no note sounds: min(recording end, offset + release), latest over the notes."""
    from builder.banks import layer_for_velocity

    layers = layer_for_velocity(table.velocity, int(bank.layer_velocities.shape[0]))
    recording_end = table.onset + np.asarray(bank.lengths)[table.key.astype(np.int64) - 21, layers]
    return int(max(np.minimum(recording_end, table.offset + release).max(), table.offset.max()))


def render_file(song: Path | str, bank_name: str, output: Path | str, settings: dict[str, Any],
                bank_settings: dict[str, Any], data_dir: Path | str, console: Any = None) -> float:
    """``builder render``: a MIDI (or midi-json) file through a bank (name or .h5 path) to a float WAV.

    A missing built-in bank is built first (saying so on ``console``). Returns the seconds of audio written.
    """
    from builder import banks

    song = Path(song)
    notes = read_song(song)
    bank_path = banks.ensure_bank(bank_name, Path(data_dir), bank_settings, console or _Silent())
    audio = render_notes(notes, banks.read_bank(bank_path), settings)
    write_wav(audio, output)
    return len(audio) / SAMPLE_RATE


def write_wav(audio: np.ndarray, path: Path | str) -> None:
    """A float32 WAV, atomically, with the same bytes for the same audio.

    scipy, not soundfile: libsndfile stamps float WAVs with the time of writing (its PEAK chunk).
    """
    import scipy.io.wavfile

    with atomic_path(path, suffix=Path(path).suffix) as temporary:
        scipy.io.wavfile.write(temporary, SAMPLE_RATE, np.asarray(audio, np.float32))


def read_song(song: Path) -> np.ndarray:
    """Notes of a ``.mid``/``.midi`` or midi-json ``.json`` file (``UserError`` for anything else or no notes)."""
    from builder import corpus

    if not song.is_file():
        raise UserError(f"{song}: no such file")
    suffix = song.suffix.lower()
    if suffix in MIDI_SUFFIXES:
        notes = corpus.notes_from_midi(song)
    elif suffix == MIDI_JSON_SUFFIX:
        notes = corpus.notes_from_midi_json(song)
    else:
        raise UserError(f"{song}: expected a MIDI file (.mid, .midi) or midi-json (.json)")
    if len(notes) == 0:
        raise UserError(f"{song}: no notes on piano keys 21..108")
    return notes


def fft_magnitude_of_audio(audio: np.ndarray, window: str, threads: int = 0) -> np.ndarray:
    """Mono audio -> ``[frames, 512]`` float32 FFT magnitudes on the grid frame i = samples [1024 i, 1024 (i+1)),
    computed by the same engine code as the dataset's ``fft_magnitude`` (the tail is zero-padded)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"audio: expected mono [samples], got shape {list(audio.shape)}")
    frames = -(-len(audio) // BUFFER_SIZE)
    buffers = np.zeros(frames * BUFFER_SIZE, dtype=np.float32)
    buffers[:len(audio)] = audio
    return fft_magnitude_of_buffers(buffers.reshape(frames, BUFFER_SIZE), window, threads)


def fft_magnitude_of_buffers(buffers: np.ndarray, window: str, threads: int = 0) -> np.ndarray:
    """``[n, 1024]`` buffers -> ``[n, 512]`` float32 FFT magnitudes by the engine code that wrote the dataset.

    Inference featurizes through this too, so a model sees at inference exactly the numbers it trained on
    (and the engine's batched pocketfft is ~3x faster than scipy.fft + abs for this shape, one buffer included).
    """
    buffers = np.ascontiguousarray(buffers, dtype=np.float32)
    fft_magnitude = np.empty((buffers.shape[0], BUFFER_SIZE // 2), dtype=np.float32)
    new_engine(threads).analyze(buffers, fft_magnitude, window)
    return fft_magnitude


class _Silent:
    def print(self, *args: Any, **kwargs: Any) -> None:
        pass
