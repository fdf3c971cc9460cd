"""Whole pieces through the synthesizer engine to audio (``builder render``, ``trainer evaluate``).

The audio is exactly what the dataset's buffers are cut from (same mixing code: velocity layers and gains,
release fade, no augmentation), so a model hears rendered test pieces the way it heard its training data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from builder.banks import layer_for_velocity, read_bank
from builder.corpus.sources.midi import MIDI_SUFFIXES, notes_from_midi
from builder.corpus.sources.midi_json import MIDI_JSON_SUFFIX, notes_from_midi_json
from builder.dataset.plan import piece_table, release_samples
from builder.engine import load_bank_into, new_engine
from pianoscribe.atomic import atomic_path
from pianoscribe.constants import LOWEST_KEY, SAMPLE_RATE
from pianoscribe.errors import UserError


def render_notes(notes: np.ndarray, bank: Any, settings: dict[str, Any], threads: int = 0) -> np.ndarray:
    """Mix ``notes`` (NOTE_DTYPE, seconds) through ``bank`` -> float32 mono 44.1 kHz audio.

    ``settings`` is the ``synth`` section (``release_seconds``, ``velocity_exponent``, ``bank_precision``: the
    bank is held as the dataset's was). The audio runs from
    time 0 to where the last note has faded (its release ends or its recording runs out).
    """
    if len(notes) == 0:
        return np.zeros(0, dtype=np.float32)
    return Renderer(bank, settings, threads).render(notes)


class Renderer:
    """One bank loaded into an engine once, for many pieces: loading packs the bank (int16: ~0.2 s), which
    used to be most of the time of rendering hundreds of short pieces. Same audio as ``render_notes``."""

    def __init__(self, bank: Any, settings: dict[str, Any], threads: int = 0) -> None:
        self.bank = bank
        self.release = release_samples(settings)
        self.velocity_exponent = float(settings["velocity_exponent"])
        self._engine = new_engine(threads)
        load_bank_into(self._engine, bank, settings.get("bank_precision", "float32"))

    def render(self, notes: np.ndarray) -> np.ndarray:
        """``render_notes`` through this renderer's bank."""
        notes = np.asarray(notes)
        if len(notes) == 0:
            return np.zeros(0, dtype=np.float32)
        table = piece_table([("render", notes)], self.release)
        table.load_into(self._engine)
        audio = np.zeros(_audible_end(table, self.bank, self.release), dtype=np.float32)
        self._engine.render(0, 0, audio, release_samples=self.release, velocity_exponent=self.velocity_exponent)
        return audio


def _audible_end(table: Any, bank: Any, release: int) -> int:
    """Sample after which no note sounds: min(recording end, offset + release), latest over the notes."""
    layers = layer_for_velocity(table.velocity, int(bank.layer_velocities.shape[0]))
    recording_end = table.onset + np.asarray(bank.lengths)[table.key.astype(np.int64) - LOWEST_KEY, layers]
    return int(max(np.minimum(recording_end, table.offset + release).max(), table.offset.max()))


def render_file(song: Path | str, bank_path: Path | str, output: Path | str, settings: dict[str, Any]) -> float:
    """``builder render``: a MIDI (or midi-json) file through the bank file ``bank_path`` to a float WAV.

    Returns the seconds of audio written.
    """
    notes = read_song(Path(song))
    audio = render_notes(notes, read_bank(bank_path), settings)
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
    if not song.is_file():
        raise UserError(f"{song}: no such file")
    suffix = song.suffix.lower()
    if suffix in MIDI_SUFFIXES:
        notes = notes_from_midi(song)
    elif suffix == MIDI_JSON_SUFFIX:
        notes = notes_from_midi_json(song)
    else:
        raise UserError(f"{song}: expected a MIDI file (.mid, .midi) or midi-json (.json)")
    if len(notes) == 0:
        raise UserError(f"{song}: no notes on piano keys 21..108")
    return notes
