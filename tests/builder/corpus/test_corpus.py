"""Corpus: MIDI reading (tracks merged, drums skipped, CC64), cleaning, corrupt files, the corpus file, built-ins."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pretty_midi
import pytest

from builder import corpus
from builder.corpus import NOTE_DTYPE, Corpus, DropCounts, Piece
from builder.corpus.sources.midi import notes_from_midi
from pianoscribe.defaults import defaults
from pianoscribe.errors import UserError

SMALL_PROCEDURAL = {"procedural": {"pieces": 3, "seconds": 6.0, "seed": 0}, "chorales": {"max_pieces": 0}}


class Printed:
    """A console stand-in that keeps what was printed (``ensure_corpus`` only needs ``print``)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def print(self, text: str) -> None:
        self.lines.append(text)


def _write_midi(
    path: Path,
    notes_by_track: list[list[tuple[int, float, float]]],
    pedal: list[tuple[float, int]] = (),
    drum_notes: list[tuple[int, float, float]] = (),
) -> Path:
    """A real MIDI file: one piano track per list, sustain-pedal events on the first, optionally a drum track."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    for track_index, track_notes in enumerate(notes_by_track):
        instrument = pretty_midi.Instrument(program=0, name=f"piano {track_index}")
        instrument.notes = [
            pretty_midi.Note(velocity=80, pitch=pitch, start=start, end=end) for pitch, start, end in track_notes
        ]
        if track_index == 0:
            instrument.control_changes = [
                pretty_midi.ControlChange(number=64, value=value, time=time) for time, value in pedal
            ]
        midi.instruments.append(instrument)
    if drum_notes:
        drums = pretty_midi.Instrument(program=0, is_drum=True, name="drums")
        drums.notes = [
            pretty_midi.Note(velocity=100, pitch=pitch, start=start, end=end) for pitch, start, end in drum_notes
        ]
        midi.instruments.append(drums)
    midi.write(str(path))
    return path


def _note(notes: np.ndarray, key: int, onset: float) -> np.void:
    match = notes[(notes["key"] == key) & np.isclose(notes["onset"], onset, atol=1e-3)]
    assert len(match) == 1, f"expected one note {key} at {onset}, found {match}"
    return match[0]


def test_sustain_pedal_extends_note_offs(tmp_path: Path) -> None:
    path = _write_midi(
        tmp_path / "pedal.mid",
        [
            [
                (60, 0.0, 0.5),  # released while the pedal is down (0.25..1.5): sounds until 1.5
                (64, 0.0, 0.2),  # released before the pedal goes down: unchanged
                (67, 1.0, 2.0),  # released after the pedal comes up: unchanged
                (72, 2.5, 2.7),  # pedal down again from 2.6 and never released: sounds to the end of the file
                (62, 0.3, 0.4),  # re-struck at 1.2 while still sustained: the first ends at the new onset
                (62, 1.2, 1.3),
            ]
        ],
        pedal=[(0.25, 127), (0.9, 100), (1.5, 0), (2.6, 64)],
    )

    notes = notes_from_midi(path)

    assert _note(notes, 60, 0.0)["offset"] == pytest.approx(1.5, abs=1e-3)
    assert _note(notes, 64, 0.0)["offset"] == pytest.approx(0.2, abs=1e-3)
    assert _note(notes, 67, 1.0)["offset"] == pytest.approx(2.0, abs=1e-3)
    assert _note(notes, 72, 2.5)["offset"] == pytest.approx(2.7, abs=1e-3)  # the file ends at the last note-off
    assert _note(notes, 62, 0.3)["offset"] == pytest.approx(1.2, abs=1e-3)
    assert _note(notes, 62, 1.2)["offset"] == pytest.approx(1.5, abs=1e-3)
    assert notes.dtype == NOTE_DTYPE
    assert np.all(np.diff(notes["onset"]) >= 0)


def test_tracks_merge_drums_are_skipped_and_bad_notes_counted(tmp_path: Path) -> None:
    path = _write_midi(
        tmp_path / "two.mid",
        [[(60, 0.0, 1.0), (10, 0.0, 1.0)], [(48, 0.5, 1.0), (120, 0.5, 1.0)]],
        drum_notes=[(36, 0.0, 0.1)],
    )
    dropped = DropCounts()

    notes = notes_from_midi(path, dropped)

    assert notes["key"].tolist() == [60, 48]
    assert notes["velocity"].tolist() == [80, 80]
    assert dropped.out_of_range == 2 and dropped.zero_length == 0


def test_cleaning_drops_and_counts_and_sorts() -> None:
    dropped = DropCounts()

    notes = corpus.clean_notes([1.0, 0.0, 0.5, 0.2], [2.0, 1.0, 0.5, 0.1], [60, 109, 62, 64], [0, 90, 80, 300], dropped)

    assert notes[["onset", "key", "velocity"]].tolist() == [(1.0, 60, 1)]  # velocity clipped into 1..127
    assert dropped.as_dict() == {"out_of_range": 1, "zero_length": 2}


def test_corrupt_midi_is_skipped_with_a_warning_or_fatal_when_strict(tmp_path: Path) -> None:
    folder = tmp_path / "songs"
    (folder / "sub").mkdir(parents=True)
    _write_midi(folder / "sub" / "good.mid", [[(60, 0.0, 1.0)]])
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")
    warnings: list[str] = []

    built = corpus.build_corpus([str(folder)], name="songs", settings=defaults("corpus"), warn=warnings.append)

    assert [piece.piece_id for piece in built.pieces] == ["midi/sub/good.mid"]
    assert len(warnings) == 1 and "broken.mid" in warnings[0]
    assert built.attrs["skipped_files"] == [str(folder / "broken.mid")]
    assert "skipped 1 files" in corpus.describe_corpus(built)
    with pytest.raises(UserError, match="broken.mid"):
        corpus.build_corpus([str(folder)], name="songs", settings=defaults("corpus"), strict=True)


def test_sources_that_are_not_corpora_are_user_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("C4")
    for source, problem in [
        (str(tmp_path / "missing"), "no such file"),
        (str(tmp_path / "empty"), "no .mid"),
        (str(tmp_path / "notes.txt"), "not a MIDI"),
    ]:
        with pytest.raises(UserError, match=problem):
            corpus.build_corpus([source], name="x", settings=defaults("corpus"))


def test_the_same_piece_id_twice_is_refused(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        _write_midi(tmp_path / folder / "song.mid", [[(60, 0.0, 1.0)]])

    with pytest.raises(UserError, match="midi/song.mid"):
        corpus.build_corpus([str(tmp_path / "a"), str(tmp_path / "b")], name="x", settings=defaults("corpus"))


def _small_corpus() -> Corpus:
    first = corpus.clean_notes([0.0, 0.5], [1.0, 0.75], [21, 108], [1, 127])
    second = corpus.clean_notes([0.25], [2.0], [60], [64])
    return Corpus(
        name="small",
        pieces=[Piece("midi/a.mid", first), Piece("midi/ü/b.mid", second)],
        attrs={"sources": [{"source": "test"}], "dropped": {"out_of_range": 3, "zero_length": 1}},
    )


def test_corpus_file_round_trips_and_is_byte_deterministic(tmp_path: Path) -> None:
    original = _small_corpus()

    corpus.write_corpus(original, tmp_path / "one.h5")
    corpus.write_corpus(_small_corpus(), tmp_path / "two.h5")
    back = corpus.read_corpus(tmp_path / "one.h5")

    assert (tmp_path / "one.h5").read_bytes() == (tmp_path / "two.h5").read_bytes()
    assert back.name == "small" and back.attrs == original.attrs
    assert [piece.piece_id for piece in back.pieces] == ["midi/a.mid", "midi/ü/b.mid"]
    for read, written in zip(back.pieces, original.pieces):
        np.testing.assert_array_equal(read.notes, written.notes)
    assert not any(path.name.startswith(".") for path in tmp_path.iterdir())  # no temporary left behind
    summary = corpus.describe_corpus(back)
    assert "2 pieces, 3 notes, 3 s of music" in summary and "3 out-of-range" in summary


def test_reading_something_else_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "text.h5").write_text("not hdf5")
    with h5py.File(tmp_path / "other.h5", "w") as file:
        file.create_dataset("audio", data=np.zeros(3))

    for name, problem in [("text.h5", "not an HDF5 file"), ("other.h5", "not a corpus"), ("missing.h5", "no such")]:
        with pytest.raises(UserError, match=problem) as caught:
            corpus.read_corpus(tmp_path / name)
        assert name in str(caught.value)


def test_merge_unisons_makes_one_key_sound_once() -> None:
    notes = corpus.clean_notes([0.0, 0.0, 1.0, 3.0], [2.0, 1.5, 1.2, 4.0], [60, 60, 60, 62], [50, 60, 70, 80])

    merged = corpus.merge_unisons(notes)

    assert merged[["onset", "offset", "key"]].tolist() == [(0.0, 1.0, 60), (1.0, 1.2, 60), (3.0, 4.0, 62)]
    assert merged["velocity"].tolist() == [50, 70, 80]  # of the doubling at 0 the longest (velocity 50) stays


def test_names_and_paths() -> None:
    assert corpus.default_name("chorales") == "chorales"
    assert corpus.default_name("../shared/reference/midi-json/bwv1.6.json") == "bwv1.6"
    assert corpus.default_name("some/folder/") == "folder"
    assert corpus.corpus_path("procedural", Path("data")) == Path("data/corpus/procedural.h5")
    assert corpus.corpus_path("elsewhere/mine.h5", Path("data")) == Path("elsewhere/mine.h5")
    assert corpus.corpus_path("mine.h5", Path("data")) == Path("mine.h5")
    assert corpus.corpus_path("bwv1.6", Path("data")) == Path("data/corpus/bwv1.6.h5")


def test_ensure_corpus_builds_a_missing_builtin_and_rebuilds_a_stale_one(tmp_path: Path) -> None:
    printed = Printed()

    path = corpus.ensure_corpus("procedural", tmp_path, SMALL_PROCEDURAL, printed)
    first_bytes = path.read_bytes()
    again = corpus.ensure_corpus("procedural", tmp_path, SMALL_PROCEDURAL, printed)
    other_seed = {**SMALL_PROCEDURAL, "procedural": {**SMALL_PROCEDURAL["procedural"], "seed": 1}}
    corpus.ensure_corpus("procedural", tmp_path, other_seed, printed)

    assert path == tmp_path / "corpus" / "procedural.h5" and again == path
    assert "missing" in printed.lines[0] and path.name in printed.lines[1]
    assert len(printed.lines) == 4 and "other settings" in printed.lines[2]
    assert path.read_bytes() != first_bytes
    assert corpus.read_corpus(path).pieces[0].piece_id == "procedural/1/00000"
    with pytest.raises(UserError, match="no such corpus"):
        corpus.ensure_corpus("mine", tmp_path, SMALL_PROCEDURAL, printed)


def test_midi_json_folder_holds_one_file_per_piece(tmp_path: Path) -> None:
    written = corpus.write_midi_json_folder(_small_corpus(), tmp_path / "out")

    files = sorted(path.relative_to(tmp_path / "out").as_posix() for path in (tmp_path / "out").rglob("*.json"))
    assert written == 2 and files == ["midi/a.mid.json", "midi/ü/b.mid.json"]
    back = corpus.build_corpus([str(tmp_path / "out")], name="back", settings=defaults("corpus"))
    assert [piece.piece_id for piece in back.pieces] == ["midi-json/midi/a.mid.json", "midi-json/midi/ü/b.mid.json"]
    for read, original in zip(back.pieces, _small_corpus().pieces):
        np.testing.assert_array_equal(read.notes["key"], original.notes["key"])
        assert np.abs(read.notes["onset"] - original.notes["onset"]).max() < 1 / 44100


def test_stable_seed_does_not_depend_on_the_process() -> None:
    expected = int.from_bytes(hashlib.sha256(b"chorales/bwv1.6").digest()[:8], "little")
    assert corpus.stable_seed("chorales/bwv1.6") == expected
