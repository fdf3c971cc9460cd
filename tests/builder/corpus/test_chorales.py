"""Chorales: only Bach chorales, read like music21's own MIDI export, playable, deterministic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from builder.corpus import DropCounts, clean_notes
from builder.corpus.sources import chorales
from builder.corpus.sources.midi import notes_from_midi
from pianoscribe.errors import UserError

REFERENCE_MIDI = Path(__file__).resolve().parents[3] / ".." / "shared" / "reference" / "midi-json" / "bwv1.6.mid"


@pytest.fixture(scope="module")
def files() -> list[Path]:
    return chorales.chorale_files()


def test_only_bach_chorales_are_used(files: list[Path]) -> None:
    names = [path.stem for path in files]

    assert len(files) > 350
    assert all(
        path.parent.name == "bach" and path.suffix in (".mxl", ".xml") and path.stem.startswith("bwv") for path in files
    )
    assert "bwv846" not in names  # the WTC prelude filed among them is reserved for evaluation like the rest
    assert "bwv67.4" in names and len(names) == len(set(names))
    assert [path.name for path in files] == sorted(path.name for path in files)


@pytest.mark.skipif(not REFERENCE_MIDI.is_file(), reason="../shared/reference/midi-json is not present")
def test_score_reads_like_musics21_midi_export(files: list[Path]) -> None:
    onset, offset, key, parts = chorales.score_columns(next(path for path in files if path.stem == "bwv1.6"))
    from_score = clean_notes(onset, offset, key, np.full(len(key), 90))
    reference = notes_from_midi(REFERENCE_MIDI)  # written by music21's MIDI export

    assert parts == 5
    np.testing.assert_array_equal(from_score["key"], reference["key"])
    assert np.abs(from_score["onset"] - reference["onset"]).max() < 1e-3
    assert np.abs(from_score["offset"] - reference["offset"]).max() < 1e-3


def test_repeats_are_expanded(files: list[Path]) -> None:
    from music21 import converter

    path = next(path for path in files if path.stem == "bwv347")  # |: A :| B
    score = converter.parse(str(path), forceSource=True)
    onset, _, key, _ = chorales.notes_of_score(score)
    expanded_onset, _, expanded_key, _ = chorales.notes_of_score(score.expandRepeats())

    _, _, written_key, _ = chorales._notes_of_expanded_score(score)  # the score as written, unexpanded

    assert chorales._has_repeats(score)
    assert len(key) > len(written_key)
    np.testing.assert_allclose(np.sort(onset), np.sort(expanded_onset))
    np.testing.assert_array_equal(np.sort(key), np.sort(expanded_key))


def test_pieces_are_playable_humanized_and_do_not_depend_on_workers(files: list[Path]) -> None:
    some = [path for path in files if path.stem in ("bwv1.6", "bwv10.7", "bwv347")]

    one_process, record = chorales.chorale_pieces(DropCounts(), workers=1, files=some)
    two_processes, _ = chorales.chorale_pieces(DropCounts(), workers=2, files=some)

    assert [piece.piece_id for piece in one_process] == ["chorales/bwv1.6", "chorales/bwv10.7", "chorales/bwv347"]
    for first, second in zip(one_process, two_processes):
        np.testing.assert_array_equal(first.notes, second.notes)
    for piece in one_process:
        velocity = piece.notes["velocity"]
        assert velocity.min() >= 40 and velocity.max() <= 127 and velocity.std() > 2
        for key in np.unique(piece.notes["key"]):  # the horn doubling the soprano in bwv1.6 became one key
            same_key = piece.notes[piece.notes["key"] == key]
            assert np.all(same_key["onset"][1:] >= same_key["offset"][:-1])
    assert record["pieces"] == 3 and record["duplicates"] == {}


def test_max_pieces_takes_the_first_files_and_is_checked(files: list[Path]) -> None:
    pieces, record = chorales.chorale_pieces(DropCounts(), workers=1, files=files, max_pieces=2)

    assert [piece.piece_id for piece in pieces] == [f"chorales/{path.stem}" for path in files[:2]]
    assert record["max_pieces"] == 2
    with pytest.raises(UserError, match="max_pieces"):
        chorales.checked_max_pieces({"chorales": {"max_pieces": -1}})


def test_identical_scores_are_kept_once(files: list[Path]) -> None:
    first = next(path for path in files if path.stem == "bwv10.7")

    pieces, record = chorales.chorale_pieces(DropCounts(), workers=1, files=[first, first])

    assert len(pieces) == 1 and record["duplicates"] == {"bwv10.7": "bwv10.7"}
