"""midi-json: the shared reference file reads back to its MIDI's notes and round-trips; random notes round-trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.corpus import NOTE_DTYPE, DropCounts, clean_notes
from builder.corpus.sources import midi_json
from builder.corpus.sources.midi import notes_from_midi
from pianoscribe.errors import UserError

REFERENCE = Path(__file__).resolve().parents[3] / ".." / "shared" / "reference" / "midi-json"
SAMPLE = 1 / midi_json.SAMPLE_RATE

needs_reference = pytest.mark.skipif(
    not (REFERENCE / "bwv1.6.json").is_file(), reason="../shared/reference/midi-json is not present"
)


def _by_buffer(document: dict) -> dict[str, list[str]]:
    """Events per buffer as a sorted list: the reference ordered a buffer's events by track, notes have none."""
    return {
        buffer: sorted(json.dumps(event, sort_keys=True) for event in events) for buffer, events in document.items()
    }


@needs_reference
def test_reference_json_reads_back_to_the_notes_of_its_midi() -> None:
    from_json = midi_json.notes_from_midi_json(REFERENCE / "bwv1.6.json")
    from_midi = notes_from_midi(REFERENCE / "bwv1.6.mid")

    assert len(from_json) == len(from_midi) == 491
    np.testing.assert_array_equal(from_json["key"], from_midi["key"])
    np.testing.assert_array_equal(from_json["velocity"], from_midi["velocity"])
    assert np.abs(from_json["onset"] - from_midi["onset"]).max() < SAMPLE
    # the reference truncated the onset and the length to whole samples separately: at most two samples early
    assert np.abs(from_json["offset"] - from_midi["offset"]).max() < 2 * SAMPLE
    # the horn doubles the soprano from the first buffer on: both voices are kept, as in the MIDI
    first = from_json[from_json["onset"] == 0]
    assert sorted(first["key"].tolist()) == [53, 57, 60, 65, 65]


@needs_reference
def test_reference_json_round_trips() -> None:
    original = json.loads((REFERENCE / "bwv1.6.json").read_text())
    rewritten = midi_json.midi_json_from_notes(midi_json.notes_from_midi_json(REFERENCE / "bwv1.6.json"))

    assert list(rewritten) == list(original)  # same buffers in the same (time) order
    assert _by_buffer(rewritten) == _by_buffer(original)
    assert len(midi_json.dumps_midi_json(rewritten)) == len((REFERENCE / "bwv1.6.json").read_text())


@needs_reference
def test_midi_notes_write_the_reference_json() -> None:
    original = json.loads((REFERENCE / "bwv1.6.json").read_text())
    written = midi_json.midi_json_from_notes(notes_from_midi(REFERENCE / "bwv1.6.mid"))

    assert _by_buffer(written) == _by_buffer(original)


def test_writes_the_slices_the_readme_describes(tmp_path: Path) -> None:
    notes = clean_notes([11025 / 44100], [(11025 + 1500) / 44100], [60], [64])

    document = midi_json.midi_json_from_notes(notes)

    assert list(document) == ["10240", "11264", "12288"]
    assert document["10240"] == [
        {
            "pianoNoteNum": 40,
            "velocity": 64 / 127,
            "sampleStartIndex": 0,
            "sampleEndIndex": 239,
            "offsetStartIndex": 785,
        }
    ]
    assert document["11264"][0]["sampleStartIndex"] == 239 and document["11264"][0]["sampleEndIndex"] == 1263
    assert document["12288"][0]["sampleEndIndex"] == 1500
    midi_json.write_midi_json(notes, tmp_path / "one.json")
    np.testing.assert_array_equal(midi_json.notes_from_midi_json(tmp_path / "one.json"), notes)


def test_restruck_and_doubled_keys_stay_separate_notes() -> None:
    onset_samples = [0, 0, 3000, 5000]  # two voices in unison, then a re-strike while one still sounds
    offset_samples = [4000, 2500, 6000, 5500]
    notes = clean_notes(np.array(onset_samples) / 44100, np.array(offset_samples) / 44100, [60] * 4, [90, 80, 70, 60])

    back = midi_json.notes_from_midi_json_object(midi_json.midi_json_from_notes(notes))

    np.testing.assert_array_equal(back, notes)


sample_aligned_notes = st.lists(
    st.tuples(st.integers(0, 200_000), st.integers(1, 30_000), st.integers(21, 108), st.integers(1, 127)),
    min_size=0,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(sample_aligned_notes, st.data())
def test_random_notes_round_trip(rows: list[tuple[int, int, int, int]], data: st.DataObject) -> None:
    if rows and data.draw(st.booleans()):  # add exact unison doublings with other lengths and velocities
        doubled = data.draw(st.sampled_from(rows))
        rows = [*rows, (doubled[0], data.draw(st.integers(1, 30_000)), doubled[2], data.draw(st.integers(1, 127)))]
    onset = np.array([row[0] for row in rows], dtype=np.int64)
    length = np.array([row[1] for row in rows], dtype=np.int64)
    notes = clean_notes(onset / 44100, (onset + length) / 44100, [row[2] for row in rows], [row[3] for row in rows])

    document = json.loads(midi_json.dumps_midi_json(midi_json.midi_json_from_notes(notes)))
    back = midi_json.notes_from_midi_json_object(document)

    # doubled notes of equal onset can trade velocities (nothing in the format ties a velocity to a length)
    assert len(back) == len(notes)
    np.testing.assert_array_equal(back[["onset", "offset", "key"]], notes[["onset", "offset", "key"]])
    assert sorted(back["velocity"].tolist()) == sorted(notes["velocity"].tolist())
    assert all(int(buffer) % 1024 == 0 for buffer in document)
    assert midi_json.midi_json_from_notes(back) == document or _by_buffer(
        midi_json.midi_json_from_notes(back)
    ) == _by_buffer(document)


def test_out_of_range_keys_are_dropped_and_counted() -> None:
    event = {"velocity": 0.5, "sampleStartIndex": 0, "sampleEndIndex": 100, "offsetStartIndex": 0}
    document = {"0": [{"pianoNoteNum": 0, **event}, {"pianoNoteNum": 89, **event}, {"pianoNoteNum": 1, **event}]}
    dropped = DropCounts()

    notes = midi_json.notes_from_midi_json_object(document, dropped=dropped)

    assert notes["key"].tolist() == [21]
    assert dropped.out_of_range == 2


@pytest.mark.parametrize(
    "content, problem",
    [
        ("[1, 2]", "not midi-json"),
        ('{"abc": []}', "not a buffer start"),
        ('{"100": []}', "multiple of 1024"),
        ('{"0": [{"pianoNoteNum": 40}]}', "lacks"),
        (
            '{"0": [{"pianoNoteNum": 40, "velocity": 0.5, "sampleStartIndex": 0, "sampleEndIndex": 2000, '
            '"offsetStartIndex": 0}]}',
            "does not fit",
        ),
        ("{not json", "not valid JSON"),
        ("[" * 100_000, "nested too deeply"),  # RecursionError from the parser
        (
            '{"0": [{"pianoNoteNum": 40, "velocity": 0.5, "sampleStartIndex": 0, "sampleEndIndex": 1' + "0" * 400 + ", "
            '"offsetStartIndex": 0}]}',
            "too large for a float",  # OverflowError converting the integer
        ),
        (
            '{"0": [{"pianoNoteNum": 40, "velocity": 0.5, "sampleStartIndex": 0, '
            '"sampleEndIndex": 9223372036854775808, "offsetStartIndex": 0}]}',
            r"beyond 2\*\*53",  # 2**63 wrapped around to a negative int64
        ),
        (
            '{"10240000000000000000000": [{"pianoNoteNum": 40, "velocity": 0.5, "sampleStartIndex": 0, '
            '"sampleEndIndex": 20, "offsetStartIndex": 0}]}',
            r"beyond 2\*\*53",
        ),
        (
            '{"0": [{"pianoNoteNum": "A0", "velocity": 0.5, "sampleStartIndex": 0, "sampleEndIndex": 20, '
            '"offsetStartIndex": 0}]}',
            "must be numbers",
        ),
    ],
)
def test_malformed_files_are_user_errors_naming_the_file(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)

    with pytest.raises(UserError, match=problem) as caught:
        midi_json.notes_from_midi_json(path)
    assert str(path) in str(caught.value)


def test_empty_document_gives_no_notes() -> None:
    assert midi_json.notes_from_midi_json_object({}).dtype == NOTE_DTYPE
    assert midi_json.midi_json_from_notes(np.zeros(0, dtype=NOTE_DTYPE)) == {}


def test_an_event_that_does_not_fit_is_named_in_plain_numbers(tmp_path: Path) -> None:
    """The message quotes the event as the file wrote it: 40 and 0.5, not numpy reprs like np.float64(40.0)."""
    path = tmp_path / "long.json"
    event = {"pianoNoteNum": 40, "velocity": 0.5, "sampleStartIndex": 0, "sampleEndIndex": 2000, "offsetStartIndex": 0}
    path.write_text(json.dumps({"1024": [event]}))

    with pytest.raises(UserError) as caught:
        midi_json.notes_from_midi_json(path)

    assert str(caught.value) == (
        f"{path}: buffer 1024: event {json.dumps(event)} does not fit in its buffer or has a velocity outside 0..1"
    )
