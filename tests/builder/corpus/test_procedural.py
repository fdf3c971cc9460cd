"""Procedural corpus: the whole keyboard, bounded polyphony, sane notes, and bytes that follow the seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from builder import corpus
from builder.corpus import DropCounts
from builder.corpus.sources import procedural
from pianoscribe.errors import UserError


def _settings(seed: int = 0, pieces: int = 12, seconds: float = 30.0) -> dict:
    return {"procedural": {"pieces": pieces, "seconds": seconds, "seed": seed}, "chorales": {"max_pieces": 0}}


def _sounding_at_onsets(notes: np.ndarray) -> np.ndarray:
    onsets, offsets = np.sort(notes["onset"]), np.sort(notes["offset"])
    return np.searchsorted(onsets, notes["onset"], side="right") - np.searchsorted(
        offsets, notes["onset"], side="right"
    )


def test_covers_the_whole_keyboard_with_playable_notes() -> None:
    built = corpus.build_corpus(["procedural"], name="procedural", settings=_settings())
    notes = np.concatenate([piece.notes for piece in built.pieces])

    assert notes["key"].min() == 21 and notes["key"].max() == 108
    assert len(np.unique(notes["key"])) == 88
    assert notes["velocity"].min() >= 1 and notes["velocity"].max() <= 127 and notes["velocity"].std() > 15
    assert (notes["offset"] - notes["onset"]).min() >= procedural.MIN_NOTE_SECONDS / 2
    assert notes["offset"].max() <= 30.0
    assert built.attrs["dropped"] == {"out_of_range": 0, "zero_length": 0}
    for piece in built.pieces:
        assert np.all(np.diff(piece.notes["onset"]) >= 0)
        assert _sounding_at_onsets(piece.notes).max() <= procedural.MAX_POLYPHONY
        for key in np.unique(piece.notes["key"]):  # one key never sounds twice at once
            same_key = piece.notes[piece.notes["key"] == key]
            assert np.all(same_key["onset"][1:] >= same_key["offset"][:-1])
    polyphony = np.concatenate([_sounding_at_onsets(piece.notes) for piece in built.pieces])
    assert polyphony.min() == 1 and polyphony.max() == procedural.MAX_POLYPHONY
    assert [piece.piece_id for piece in built.pieces][:2] == ["procedural/0/00000", "procedural/0/00001"]
    assert set(built.attrs["sources"][0]["sections_by_texture"]) == set(procedural.TEXTURES)


def test_same_seed_gives_the_same_bytes_and_another_seed_other_bytes(tmp_path: Path) -> None:
    for name, seed in [("a", 3), ("b", 3), ("c", 4)]:
        built = corpus.build_corpus(["procedural"], name="procedural", settings=_settings(seed, pieces=4))
        corpus.write_corpus(built, tmp_path / f"{name}.h5")

    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    assert (tmp_path / "a.h5").read_bytes() != (tmp_path / "c.h5").read_bytes()


def test_a_piece_does_not_depend_on_how_many_are_made() -> None:
    few, _ = procedural.procedural_pieces(_settings(pieces=2)["procedural"], DropCounts())
    more, _ = procedural.procedural_pieces(_settings(pieces=5)["procedural"], DropCounts())

    for short, long in zip(few, more):
        np.testing.assert_array_equal(short.notes, long.notes)


def test_limit_polyphony_ends_the_oldest_notes() -> None:
    notes = corpus.clean_notes([0.0, 0.1, 0.2, 0.3], [5.0, 5.0, 5.0, 5.0], [60, 62, 64, 65], [80] * 4)

    limited = procedural.limit_polyphony(notes, 2)

    assert limited["offset"].tolist() == [0.2, 0.3, 5.0, 5.0]


@pytest.mark.parametrize(
    "bad, problem",
    [
        ({"pieces": 0}, "pieces"),
        ({"seconds": 0.1}, "seconds"),
        ({"seed": -1}, "seed"),
        ({"pieces": "many"}, "pieces: 'many' is not a number"),
        ({"pieces": 2.5}, "not a whole number"),
    ],
)
def test_bad_settings_name_the_parameter(bad: dict, problem: str) -> None:
    settings = {"pieces": 2, "seconds": 10.0, "seed": 0, **bad}
    with pytest.raises(UserError, match=problem):
        procedural.procedural_pieces(settings, DropCounts())
