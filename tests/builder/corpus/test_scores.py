"""Scores: only the allowed music21 collections, every part on the piano, cleaned, deterministic, robust files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from music21 import converter

from builder.corpus import DropCounts, Piece
from builder.corpus.sources import score_reading, scores
from pianoscribe.defaults import defaults
from pianoscribe.errors import UserError

# the brief's list, written out independently of the code it checks
AGREED_ALLOWED_TEXT = (
    "palestrina monteverdi beethoven josquin trecento corelli handel"
    " luca ciconia lusitano johnson_j_r liliuokalani webern"
    " ryansMammoth oneills1850 essenFolksong airdsAirs"
)
AGREED_ALLOWED = set(AGREED_ALLOWED_TEXT.split())
NAMED_RESERVED = {
    "joplin",
    "chopin",
    "schumann_clara",
    "schumann_robert",
    "mozart",
    "schoenberg",
    "verdi",
    "schubert",
    "weber",
    "haydn",
    "beach",
    "cpebach",
    "bach",
    "nottingham-dataset",
    "miscFolk",
    "demos",
    "theoryExercises",
    "leadSheet",
}
QUARTET = "beethoven/opus18no1/movement2.krn"
FEW = [QUARTET, "corelli/opus3no1/1grave.xml", "josquin/milleRegrets.abc", "essenFolksong/erk5.abc"]
FEW_SETTINGS = {"max_pieces_per_collection": 3}
FEW_IDS = [
    "scores/beethoven/opus18no1/movement2",
    "scores/corelli/opus3no1/1grave",
    "scores/josquin/milleRegrets",
    "scores/essenFolksong/erk5/5",
    "scores/essenFolksong/erk5/14",
    "scores/essenFolksong/erk5/23",
]
EMPTY_MUSICXML = """<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1">
  <part-list><score-part id="P1"><part-name>Silence</part-name></score-part></part-list>
  <part id="P1"><measure number="1">
    <attributes><divisions>1</divisions><time><beats>4</beats><beat-type>4</beat-type></time></attributes>
    <note><rest/><duration>4</duration></note>
  </measure></part>
</score-partwise>
"""


@pytest.fixture(scope="module")
def root() -> Path:
    return scores.corpus_root()


@pytest.fixture(scope="module")
def few(root: Path) -> tuple[list[Piece], dict, DropCounts]:
    dropped = DropCounts()
    pieces, record = scores.score_pieces(FEW_SETTINGS, dropped, workers=1, files=[root / name for name in FEW])
    return pieces, record, dropped


def test_the_allow_list_is_exactly_the_agreed_one_and_everything_else_is_reserved(root: Path) -> None:
    folders = {path.name for path in root.iterdir() if path.is_dir() and not path.name.startswith("_")}

    assert set(scores.ALLOWED_COLLECTIONS) == AGREED_ALLOWED
    assert len(scores.ALLOWED_COLLECTIONS) == len(AGREED_ALLOWED)
    assert NAMED_RESERVED <= scores.RESERVED_COLLECTIONS
    assert not scores.RESERVED_COLLECTIONS & AGREED_ALLOWED
    assert folders == AGREED_ALLOWED | scores.RESERVED_COLLECTIONS  # a new music21 collection needs a decision


def test_no_piece_of_a_reserved_collection_can_come_out(root: Path, tmp_path: Path) -> None:
    files = scores.collection_files(root)
    entries, _ = scores.piece_entries(files, root)
    ids = [entry.piece_id for entry in entries]

    assert {scores.collection_of(path, root) for path in files} == AGREED_ALLOWED
    assert {piece_id.split("/")[1] for piece_id in ids} == AGREED_ALLOWED
    assert len(ids) == len(set(ids)) > 10_000
    assert not any(path.suffix in (".rntxt", ".mus", ".musx") for path in files)
    for reserved in ("bach/bwv1.6.mxl", "joplin/maple_leaf_rag.mxl"):
        with pytest.raises(UserError, match="reserved for evaluation"):
            scores.score_pieces({}, DropCounts(), workers=1, files=[root / reserved])
    with pytest.raises(UserError, match="not inside"):
        scores.piece_entries([tmp_path / "corelli" / "x.xml"], root)
    for collection in AGREED_ALLOWED:  # a reserved folder next to the allowed ones is never even listed
        (tmp_path / collection).mkdir()
    (tmp_path / "joplin").mkdir()
    shutil.copy(root / "joplin" / "maple_leaf_rag.mxl", tmp_path / "joplin")
    assert scores.collection_files(tmp_path) == []
    with pytest.raises(RuntimeError, match="allowed"):
        scores._check_allowed([Piece("scores/joplin/maple_leaf_rag", np.zeros(0))])


def test_pieces_have_every_part_in_the_piano_range_and_cleaned(few: tuple[list[Piece], dict, DropCounts]) -> None:
    pieces, record, _ = few

    assert [piece.piece_id for piece in pieces] == FEW_IDS
    assert record["skipped"] == {} and record["no_notes"] == [] and record["pieces"] == len(FEW_IDS)
    for piece in pieces:
        notes = piece.notes
        assert len(notes) > 20
        assert notes["key"].min() >= 21 and notes["key"].max() <= 108
        assert notes["velocity"].min() >= 1 and np.all(notes["offset"] > notes["onset"])
        assert np.all(np.diff(notes["onset"]) >= 0)
        for key in np.unique(notes["key"]):  # one piano: a key sounds once at a time
            same_key = notes[notes["key"] == key]
            assert np.all(same_key["onset"][1:] >= same_key["offset"][:-1])
    quartet = pieces[0].notes
    assert quartet["key"].min() == 36 and quartet["key"].max() >= 90  # the cello's C to the first violin's top
    assert record["collections"]["essenFolksong"] == {"files": 1, "pieces_available": 27, "pieces_read": 3, "pieces": 3}


def test_a_quartet_gives_four_voices_and_josquins_tunes_are_his_voices(root: Path) -> None:
    quartet = scores.read_entry(scores.Entry("beethoven", root / QUARTET, "opus18no1/movement2"))
    josquin = scores.read_entry(scores.Entry("josquin", root / "josquin/milleRegrets.abc", "milleRegrets"))

    for reading in (quartet, josquin):
        assert reading.parts == 4
        assert np.all(np.bincount(reading.part, minlength=4) > 50)
    mean_keys = [reading.key[reading.part == part].mean() for reading in (quartet,) for part in range(4)]
    assert mean_keys == sorted(mean_keys, reverse=True)  # violin 1, violin 2, viola, cello
    assert not quartet.tempo_drawn and quartet.repeats_expanded  # the Humdrum copy carries Beethoven's tempo
    assert josquin.tempo_drawn


def test_an_end_repeat_after_another_repeats_from_there(root: Path) -> None:
    tune = scores.Entry("oneills1850", root / "oneills1850/0701-0720.abc", "0701-0720", 720)  # |: A :| B :|
    score = converter.parse(str(tune.path), forceSource=True, number=720)
    written = score_reading.part_columns(score, expand_repeats=False)
    as_music21_expands = score_reading.part_columns(score)  # A A B A B

    played = scores.read_entry(tune)

    assert played.repeats_expanded and len(played.key) == 2 * len(written.key)  # A A B B
    assert len(as_music21_expands.key) > 2.5 * len(written.key)


def test_the_same_pieces_twice_whatever_the_workers(root: Path, few: tuple[list[Piece], dict, DropCounts]) -> None:
    pieces, record, dropped = few
    dropped_again = DropCounts()

    again, record_again = scores.score_pieces(
        FEW_SETTINGS, dropped_again, workers=2, files=[root / name for name in FEW]
    )

    assert [piece.piece_id for piece in again] == [piece.piece_id for piece in pieces]
    for first, second in zip(pieces, again):
        np.testing.assert_array_equal(first.notes, second.notes)
    assert record_again == record and dropped_again == dropped


def test_an_unreadable_file_or_one_without_notes_is_skipped_and_counted(root: Path, tmp_path: Path) -> None:
    corelli = tmp_path / "corelli"
    corelli.mkdir()
    shutil.copy(root / "corelli/opus3no1/1grave.xml", corelli / "1grave.xml")
    (corelli / "broken.xml").write_text("<score-partwise><part id='P1'><measure>not music", encoding="utf-8")
    (corelli / "silence.xml").write_text(EMPTY_MUSICXML, encoding="utf-8")

    pieces, record = scores.score_pieces({}, DropCounts(), workers=1, files=sorted(corelli.iterdir()), root=tmp_path)

    assert [piece.piece_id for piece in pieces] == ["scores/corelli/1grave"]
    assert list(record["skipped"]) == ["scores/corelli/broken"]
    assert record["no_notes"] == ["scores/corelli/silence"]
    assert record["collections"]["corelli"] == {"files": 3, "pieces_available": 3, "pieces_read": 3, "pieces": 1}


def test_selection_is_spread_out_per_collection_and_settings_are_checked(root: Path) -> None:
    oneills = [root / "oneills1850/0732-0758_bs.abc", root / "oneills1850/0732-0758_mh.abc"]
    entries, repeated = scores.piece_entries(oneills, root)

    assert scores.spread(10, 3) == [1, 5, 8] and scores.spread(4, 0) == scores.spread(4, 9) == [0, 1, 2, 3]
    assert {entry.path.name for entry in entries} == {"0732-0758_bs.abc"}  # the second transcription: same numbers
    assert len(entries) == len(repeated) == 27 and repeated["scores/oneills1850/0732-0758_mh/732"].endswith("_bs/732")
    chosen = scores.select_entries(entries, {"max_pieces_per_collection": 3, "max_pieces": 0})
    assert [entry.number for entry in chosen] == [736, 745, 754]
    assert len(scores.select_entries(entries, {"max_pieces_per_collection": 0, "max_pieces": 2})) == 2
    assert scores.checked_settings(None) == defaults("corpus")["scores"] and scores.GENERATOR_VERSION == 1
    with pytest.raises(UserError, match="max_pieces_per_collection"):
        scores.checked_settings({"max_pieces_per_collection": -1})
    with pytest.raises(UserError, match="unknown"):
        scores.checked_settings({"max_piece": 3})


def test_keys_fold_into_the_piano_and_tempo_and_velocity_follow_the_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    folded, moved = scores.fold_into_piano(np.array([10, 21, 60, 108, 115, 130]))
    np.testing.assert_array_equal(folded, [22, 21, 60, 108, 103, 106])
    assert moved == 3

    quarters = np.array([0.5, 0.5, 1.0, 0.25])
    folk = scores.unmarked_seconds_per_quarter("scores/essenFolksong/erk5/5", "essenFolksong", quarters)
    breves = scores.unmarked_seconds_per_quarter("scores/palestrina/Agnus", "palestrina", np.array([2.0, 2.0, 4.0]))
    assert 60 / 160 <= folk <= 60 / 90  # quarters at 90..160 per minute
    assert 60 / (120 * 2) <= breves <= 60 / (60 * 2)  # half notes at 60..120 per minute

    part = np.array([0, 0, 1, 1, 1])
    key = np.array([72, 74, 48, 50, 52])
    louder = scores.humanized_velocities("scores/x/y", part, 2, key)
    monkeypatch.setattr(scores, "MELODY_BOOST", 0.0)
    plain = scores.humanized_velocities("scores/x/y", part, 2, key)
    np.testing.assert_array_equal(louder - plain, [8, 8, 0, 0, 0])  # the upper part is the melody


def test_variants_of_one_tune_share_a_split_group() -> None:
    assert scores.split_group("scores/essenFolksong/variant0/3") == scores.split_group(
        "scores/essenFolksong/variant0/7"
    )
    assert scores.split_group("scores/essenFolksong/erk5/3") == "scores/essenFolksong/erk5/3"
    assert scores.split_group("scores/beethoven/opus18no1/movement2") == "scores/beethoven/opus18no1/movement2"
