"""MIDI files: every non-drum track and channel merged, the sustain pedal (CC64) applied."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from builder.corpus.notes import DropCounts, clean_notes
from pianoscribe.errors import UserError

MIDI_SUFFIXES = (".mid", ".midi")
SUSTAIN_CONTROLLER = 64
SUSTAIN_DOWN_VALUE = 64


def notes_from_midi(path: Path | str, dropped: DropCounts | None = None) -> np.ndarray:
    """Notes of a MIDI file: every non-drum track and channel merged, sustain pedal (CC64) applied.

    A note released while the pedal is down (CC64 >= 64) sounds until the pedal comes up; re-striking a key
    of the same track and channel ends its previous note at the new onset, as on a piano. The pedal applies
    per track and channel (pretty_midi's instruments); a pedal on a track without notes is not seen.
    Raises ``UserError`` naming the file if it cannot be parsed.
    """
    import pretty_midi

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pretty_midi warns about meta events on non-zero tracks
            midi = pretty_midi.PrettyMIDI(str(path))
    except FileNotFoundError:
        raise
    except Exception as error:  # mido and pretty_midi raise many types for damaged files
        reason = f"{type(error).__name__}: {error}" if str(error) else f"{type(error).__name__}, damaged or truncated"
        raise UserError(f"{path}: not a readable MIDI file ({reason})") from error
    end_time = midi.get_end_time()
    parts: list[tuple[np.ndarray, ...]] = []
    for instrument in midi.instruments:
        if instrument.is_drum or not instrument.notes:
            continue
        onset = np.array([note.start for note in instrument.notes], dtype=np.float64)
        offset = np.array([note.end for note in instrument.notes], dtype=np.float64)
        key = np.array([note.pitch for note in instrument.notes], dtype=np.int64)
        velocity = np.array([note.velocity for note in instrument.notes], dtype=np.int64)
        pedal_times = np.array(
            [change.time for change in instrument.control_changes if change.number == SUSTAIN_CONTROLLER],
            dtype=np.float64,
        )
        pedal_down = np.array(
            [
                change.value >= SUSTAIN_DOWN_VALUE
                for change in instrument.control_changes
                if change.number == SUSTAIN_CONTROLLER
            ],
            dtype=bool,
        )
        offset = sustained_offsets(offset, *pedal_intervals(pedal_times, pedal_down, end_time))
        offset = end_at_restrike(onset, offset, key)
        parts.append((onset, offset, key, velocity))
    if not parts:
        return clean_notes(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), dropped)
    onset, offset, key, velocity = (np.concatenate(column) for column in zip(*parts))
    return clean_notes(onset, offset, key, velocity, dropped)


def pedal_intervals(times: np.ndarray, down: np.ndarray, end_time: float) -> tuple[np.ndarray, np.ndarray]:
    """(press times, release times) of the sustain pedal; a pedal never released lifts at ``end_time``."""
    order = np.argsort(times, kind="stable")
    times, down = times[order], down[order]
    was_down = np.concatenate([[False], down[:-1]])
    presses = times[down & ~was_down]
    releases = times[~down & was_down]
    if len(releases) < len(presses):
        releases = np.concatenate([releases, [max(end_time, presses[-1])]])
    return presses, releases


def sustained_offsets(offset: np.ndarray, presses: np.ndarray, releases: np.ndarray) -> np.ndarray:
    """Move each note-off that falls while the pedal is down to the pedal's release."""
    if len(presses) == 0:
        return offset
    interval = np.searchsorted(presses, offset, side="right") - 1
    held = interval >= 0
    held[held] = offset[held] < releases[interval[held]]
    return np.where(held, releases[np.maximum(interval, 0)], offset)


def end_at_restrike(onset: np.ndarray, offset: np.ndarray, key: np.ndarray) -> np.ndarray:
    """End a note where the same key is struck again later (doublings at the same onset are left alone)."""
    order = np.lexsort((onset, key))
    sorted_onset, sorted_key = onset[order], key[order]
    position_key = sorted_key * 1e7 + sorted_onset  # onsets are below 1e6 s, far inside float64 precision
    next_index = np.searchsorted(position_key, position_key, side="right")
    has_next = next_index < len(order)
    next_index = np.minimum(next_index, len(order) - 1)
    restruck = has_next & (sorted_key[next_index] == sorted_key)
    limit = np.where(restruck, sorted_onset[next_index], np.inf)
    new_offset = offset.copy()
    new_offset[order] = np.minimum(offset[order], limit)
    return new_offset
