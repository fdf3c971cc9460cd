"""The reference project's midi-json: per-buffer slices of each sounding note, read back into notes and written.

Format (see ``../shared/reference/midi-json/README.md``): one JSON object keyed by the start sample of a
1024-sample buffer at 44.1 kHz (as a string, buffers without sound left out); each value lists one event per
note sounding in that buffer: ``pianoNoteNum`` (MIDI key - 20), ``velocity`` (MIDI velocity / 127),
``sampleStartIndex``/``sampleEndIndex`` (the slice of the note's sample played in this buffer, 0 at its onset)
and ``offsetStartIndex`` (where in the buffer the slice starts).

Every event of a note satisfies ``buffer + offsetStartIndex - sampleStartIndex == onset sample``, so a note is
identified by (key, onset sample) without following it buffer by buffer; notes doubled on the same key and
onset (two voices in unison) are told apart by length, the longer one's slice being the longer in each buffer
(and listed later where the slices are equal, as this writer lists them).
Sample positions are whole samples, truncated as the reference's converter did: the onset sample is
``floor(onset * 44100)`` and the length ``floor((offset - onset) * 44100)`` samples (so offsets read back may
sit up to two samples before the source's; a tiny tolerance keeps ``sample / 44100`` from truncating to the
sample before).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from builder.corpus.notes import DropCounts, clean_notes
from pianoscribe.atomic import atomic_path
from pianoscribe.constants import BUFFER_SIZE, SAMPLE_RATE
from pianoscribe.errors import UserError

MIDI_JSON_SUFFIX = ".json"
KEY_TO_PIANO_NOTE_NUM = 20
EVENT_FIELDS = ("pianoNoteNum", "velocity", "sampleStartIndex", "sampleEndIndex", "offsetStartIndex")
_SAMPLE_TOLERANCE = 1e-6
# Sample positions are whole numbers read through float64: beyond 2**53 they are no longer exact, and beyond
# 2**63 they would wrap around when cast to int64 (no sound lasts 6,000 years: such a number is damage).
_LARGEST_NUMBER = 2.0**53


def notes_from_midi_json(path: Path | str, dropped: DropCounts | None = None) -> np.ndarray:
    """Notes (``NOTE_DTYPE``) of a midi-json file; ``UserError`` naming the file if it is not midi-json."""
    path = Path(path)
    try:
        document = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path}: not valid JSON ({error})") from error
    except RecursionError:  # the parser recurses once per nested [ or {
        raise UserError(f"{path}: not midi-json (arrays or objects nested too deeply)") from None
    return notes_from_midi_json_object(document, str(path), dropped)


def notes_from_midi_json_object(
    document: Any, source: str = "midi-json", dropped: DropCounts | None = None
) -> np.ndarray:
    """Notes of an already parsed midi-json object (``source`` names it in errors)."""
    columns = _event_columns(document, source)
    buffer_start, key, velocity, slice_start, slice_end, buffer_offset = columns
    if len(key) == 0:
        return clean_notes(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), dropped)
    onset_sample = buffer_start + buffer_offset - slice_start
    slice_stop = buffer_start + buffer_offset + (slice_end - slice_start)

    # Rank the events of one (key, onset) in one buffer by slice end: rank r belongs to the r-th longest note.
    # Equal slices keep their listed order (the writer lists a doubled note's shorter twin first).
    position = np.arange(len(key))
    order = np.lexsort((-position, -slice_stop, buffer_start, onset_sample, key))
    key, velocity, onset_sample, buffer_start, slice_stop = (
        key[order],
        velocity[order],
        onset_sample[order],
        buffer_start[order],
        slice_stop[order],
    )
    same_run = np.concatenate(
        [
            [False],
            (key[1:] == key[:-1]) & (onset_sample[1:] == onset_sample[:-1]) & (buffer_start[1:] == buffer_start[:-1]),
        ]
    )
    run_first = np.maximum.accumulate(np.where(same_run, 0, np.arange(len(key))))
    rank = np.arange(len(key)) - run_first

    # One note per (key, onset, rank): its first buffer gives the velocity, its last slice the offset.
    order = np.lexsort((buffer_start, rank, onset_sample, key))
    key, velocity, onset_sample, rank, slice_stop = (
        key[order],
        velocity[order],
        onset_sample[order],
        rank[order],
        slice_stop[order],
    )
    note_first = np.flatnonzero(
        np.concatenate(
            [[True], (key[1:] != key[:-1]) | (onset_sample[1:] != onset_sample[:-1]) | (rank[1:] != rank[:-1])]
        )
    )
    offset_sample = np.maximum.reduceat(slice_stop, note_first)
    return clean_notes(
        onset_sample[note_first] / SAMPLE_RATE,
        offset_sample / SAMPLE_RATE,
        key[note_first] + KEY_TO_PIANO_NOTE_NUM,
        np.rint(velocity[note_first] * 127),
        dropped,
    )


def _event_columns(document: Any, source: str) -> tuple[np.ndarray, ...]:
    """The events as int64/float64 columns, checked: the edge where a malformed file becomes a UserError."""
    if not isinstance(document, dict):
        raise UserError(f"{source}: not midi-json (expected an object keyed by buffer start sample)")
    rows: list[tuple] = []
    for buffer_key, events in document.items():
        try:
            buffer_start = int(buffer_key)
        except ValueError:
            raise UserError(f"{source}: key {buffer_key!r} is not a buffer start sample") from None
        if buffer_start < 0 or buffer_start % BUFFER_SIZE:
            raise UserError(f"{source}: buffer start {buffer_start} is not a non-negative multiple of {BUFFER_SIZE}")
        if not isinstance(events, list):
            raise UserError(f"{source}: buffer {buffer_key} holds {type(events).__name__}, expected a list of events")
        try:
            rows.extend(
                [
                    (
                        buffer_start,
                        event["pianoNoteNum"],
                        event["velocity"],
                        event["sampleStartIndex"],
                        event["sampleEndIndex"],
                        event["offsetStartIndex"],
                    )
                    for event in events
                ]
            )
        except (KeyError, TypeError) as error:
            needs = ", ".join(EVENT_FIELDS)
            raise UserError(f"{source}: buffer {buffer_key}: an event lacks {error} (needs {needs})") from None
    try:
        table = np.array(rows, dtype=np.float64).reshape(-1, 1 + len(EVENT_FIELDS))
    except (TypeError, ValueError):
        raise UserError(f"{source}: event fields must be numbers ({', '.join(EVENT_FIELDS)})") from None
    except OverflowError:  # an integer beyond float64 (10**400)
        raise UserError(f"{source}: events hold numbers too large for a float") from None
    if not np.isfinite(table).all():
        raise UserError(f"{source}: events hold non-finite numbers")
    if (np.abs(table) > _LARGEST_NUMBER).any():
        raise UserError(f"{source}: events or buffer starts hold numbers beyond 2**53, too large for a sample")
    integer_columns = table[:, [0, 1, 3, 4, 5]]
    if (integer_columns != np.round(integer_columns)).any():
        raise UserError(f"{source}: pianoNoteNum and the sample indices must be whole numbers")
    buffer_start, key, slice_start, slice_end, buffer_offset = integer_columns.astype(np.int64).T
    velocity = table[:, 2]
    bad = (
        (slice_start < 0)
        | (slice_end < slice_start)
        | (buffer_offset < 0)
        | (buffer_offset + slice_end - slice_start > BUFFER_SIZE)
        | (velocity < 0)
        | (velocity > 1)
    )
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise UserError(
            f"{source}: buffer {int(buffer_start[row])}: event {_event_text(table[row, 1:])} "
            "does not fit in its buffer or has a velocity outside 0..1"
        )
    return buffer_start, key, velocity, slice_start, slice_end, buffer_offset


def _event_text(values: np.ndarray) -> str:
    """An event as the file wrote it (``"pianoNoteNum": 40``), not as numpy reprs it (``np.float64(40.0)``)."""
    plain = [int(value) if float(value).is_integer() else float(value) for value in values.tolist()]
    return json.dumps(dict(zip(EVENT_FIELDS, plain)))


def seconds_to_samples(seconds: np.ndarray) -> np.ndarray:
    """Whole samples at or before each time, as the reference's converter truncated them."""
    return np.floor(np.asarray(seconds, dtype=np.float64) * SAMPLE_RATE + _SAMPLE_TOLERANCE).astype(np.int64)


def midi_json_from_notes(notes: np.ndarray) -> dict[str, list[dict[str, Any]]]:
    """The midi-json object of some notes: buffers in time order, events in note order within a buffer.

    The reference listed a buffer's events track by track; notes carry no track, so the order within a
    buffer is the notes' (onset, key) order instead. Notes shorter than a sample produce no events.
    """
    onset_sample = seconds_to_samples(notes["onset"])
    offset_sample = onset_sample + seconds_to_samples(notes["offset"] - notes["onset"])
    sounding = offset_sample > onset_sample
    onset_sample, offset_sample = onset_sample[sounding], offset_sample[sounding]
    piano_note_num = notes["key"][sounding].astype(np.int64) - KEY_TO_PIANO_NOTE_NUM
    velocity_midi = notes["velocity"][sounding].astype(np.int64)

    first_buffer = onset_sample // BUFFER_SIZE
    buffers_per_note = (offset_sample - 1) // BUFFER_SIZE - first_buffer + 1
    note_index = np.repeat(np.arange(len(onset_sample)), buffers_per_note)
    event_start = np.cumsum(buffers_per_note) - buffers_per_note
    buffer_start = (first_buffer[note_index] + np.arange(len(note_index)) - event_start[note_index]) * BUFFER_SIZE
    slice_begin = np.maximum(buffer_start, onset_sample[note_index])
    slice_stop = np.minimum(buffer_start + BUFFER_SIZE, offset_sample[note_index])

    order = np.lexsort((note_index, buffer_start))
    columns = {
        "buffer": buffer_start[order].tolist(),
        "pianoNoteNum": piano_note_num[note_index][order].tolist(),
        "velocity": velocity_midi[note_index][order].tolist(),
        "sampleStartIndex": (slice_begin - onset_sample[note_index])[order].tolist(),
        "sampleEndIndex": (slice_stop - onset_sample[note_index])[order].tolist(),
        "offsetStartIndex": (slice_begin - buffer_start)[order].tolist(),
    }
    velocity_fraction = [value / 127 for value in range(128)]
    document: dict[str, list[dict[str, Any]]] = {}
    for buffer, num, velocity, sample_start, sample_end, offset in zip(*columns.values()):
        document.setdefault(str(buffer), []).append(
            {
                "pianoNoteNum": num,
                "velocity": velocity_fraction[velocity],
                "sampleStartIndex": sample_start,
                "sampleEndIndex": sample_end,
                "offsetStartIndex": offset,
            }
        )
    return document


def dumps_midi_json(document: dict[str, list[dict[str, Any]]]) -> str:
    """Serialize like the reference: compact separators, keys in insertion (time) order."""
    return json.dumps(document, separators=(",", ":"))


def write_midi_json(notes: np.ndarray, path: Path | str) -> None:
    """Write the notes as one midi-json file (atomically)."""
    with atomic_path(path, suffix=".json") as temporary:
        temporary.write_text(dumps_midi_json(midi_json_from_notes(notes)))
