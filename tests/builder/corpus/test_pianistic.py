"""Pianistic corpus: piano textures over real harmony, playable notes, and notes that follow the seed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest

from builder.corpus import DropCounts, Piece
from builder.corpus.sources import pianistic
from builder.corpus.sources.pianistic import harmony, left_hand, pieces, right_hand
from builder.corpus.sources.pianistic.section import ACCOMPANIMENT, BASS, MELODY, Section, subdivision_near
from builder.corpus.sources.pianistic.textures import TEXTURES
from pianoscribe.defaults import defaults
from pianoscribe.errors import UserError


def _pieces(pieces: int, seconds: float = 30.0, seed: int = 0) -> tuple[list[Piece], dict, DropCounts]:
    dropped = DropCounts()
    made, record = pianistic.pianistic_pieces({"pieces": pieces, "seconds": seconds, "seed": seed}, dropped)
    return made, record, dropped


def _sections(texture: str, count: int = 8) -> Iterator[tuple[np.random.Generator, Section]]:
    """Sections drawn with ``texture`` forced (a right-hand texture over an Alberti bass), one per seed."""
    hands = ("alberti", texture) if TEXTURES[texture].hand == "right" else (texture,)
    for seed in range(count):
        rng = np.random.default_rng(seed)
        yield rng, pieces.draw_section(rng, 0.0, home=seed % 12, textures=hands)


def _held_past_the_next_onset(sounded: pieces.Sounded) -> float:
    """Share of notes still sounding when the next (later) onset comes."""
    later = np.append(np.unique(sounded.onset), np.inf)
    following = later[np.searchsorted(later, sounded.onset, side="right")]
    return float(np.mean(sounded.offset > following + 1e-9))


def test_same_seed_gives_the_same_notes_and_a_piece_does_not_depend_on_how_many_are_made() -> None:
    few, _, _ = _pieces(3, seconds=20.0)
    again, _, _ = _pieces(3, seconds=20.0)
    more, _, _ = _pieces(10, seconds=20.0)
    other, _, _ = _pieces(3, seconds=20.0, seed=1)

    assert [piece.piece_id for piece in more][:3] == ["pianistic/0/00000", "pianistic/0/00001", "pianistic/0/00002"]
    for piece, same, longer in zip(few, again, more):
        np.testing.assert_array_equal(piece.notes, same.notes)
        np.testing.assert_array_equal(piece.notes, longer.notes)
    assert not np.array_equal(few[0].notes, other[0].notes)
    assert other[0].piece_id == "pianistic/1/00000"


def test_every_texture_appears_and_every_note_is_playable() -> None:
    made, record, dropped = _pieces(8, seconds=60.0)
    notes = np.concatenate([piece.notes for piece in made])

    assert set(record["sections_by_texture"]) == set(TEXTURES)
    assert min(record["sections_by_texture"].values()) > 0, record["sections_by_texture"]
    assert record["generator_version"] == pianistic.GENERATOR_VERSION and record["pedalled_sections"] > 0
    assert notes["key"].min() >= 21 and notes["key"].max() <= 108
    assert np.all(notes["offset"] - notes["onset"] >= pieces.MIN_NOTE_SECONDS / 2)
    assert notes["velocity"].min() >= 1 and notes["velocity"].max() <= 127 and notes["velocity"].std() > 15
    assert notes["onset"].min() >= 0 and notes["offset"].max() <= 60.0
    assert dropped.out_of_range == 0  # folded onto the keyboard instead
    for piece in made:
        assert np.all(np.diff(piece.notes["onset"]) >= 0)
        by_key = piece.notes[np.lexsort((piece.notes["onset"], piece.notes["key"]))]
        same_key = by_key["key"][1:] == by_key["key"][:-1]
        assert np.all(by_key["onset"][1:][same_key] >= by_key["offset"][:-1][same_key])  # one key sounds once


def test_keys_off_the_keyboard_fold_by_octaves() -> None:
    folded = pieces.onto_keyboard(np.array([9, 20, 21, 60, 108, 109, 125]))

    assert folded.tolist() == [21, 32, 21, 60, 108, 97, 101]


def test_block_chords_strike_six_to_ten_keys_together() -> None:
    sizes = []
    for rng, section in _sections("block_chords"):
        sounded = pieces.section_notes(rng, section)
        onsets, counts = np.unique(sounded.onset, return_counts=True)
        for onset in onsets:
            assert len(np.unique(sounded.key[sounded.onset == onset])) == np.count_nonzero(sounded.onset == onset)
        sizes.extend(counts.tolist())

    assert set(sizes) == set(range(6, 11))


def test_stride_spans_two_octaves_and_arpeggios_three() -> None:
    for texture, octaves in (("stride", 2), ("arpeggio", 3)):
        for rng, section in _sections(texture):
            sounded = pieces.section_notes(rng, section)
            assert sounded.key.max() - sounded.key.min() >= 12 * octaves, (texture, section.bpm)


def test_stride_leaps_from_the_bass_to_an_off_beat_chord() -> None:
    for rng, section in _sections("stride"):
        part = left_hand.stride(rng, section)
        bass_beats = np.unique(part.onset[part.role == BASS])
        chord_beats = np.unique(part.onset[part.role == ACCOMPANIMENT])

        assert 0.0 in bass_beats and not np.isin(chord_beats, bass_beats).any()
        for beat in chord_beats:
            previous = part.key[part.onset == bass_beats[bass_beats < beat].max()]
            assert part.key[part.onset == beat].max() - previous.min() >= 12


def test_runs_are_fast_and_stepwise_up_to_16_notes_a_beat() -> None:
    for rng, section in _sections("runs"):
        part = right_hand.runs(rng, section)
        order = np.argsort(part.onset, kind="stable")
        gaps = np.diff(section.seconds_at(part.onset[order]))
        steps = np.abs(np.diff(part.key[order]))
        fast = gaps < 0.1

        assert fast.mean() > 0.5, section.bpm
        assert np.mean((steps[fast] >= 1) & (steps[fast] <= 2)) > 0.9
    slow = replace(section, bpm=45.0)
    assert subdivision_near(slow, right_hand.RUN_SUBDIVISIONS, 14.0) == 16


def test_the_pedal_holds_notes_until_the_harmony_changes() -> None:
    for seed, (_, section) in enumerate(_sections("melody")):  # over an Alberti bass, played legato
        pedalled = pieces.section_notes(np.random.default_rng(seed), replace(section, pedal=True))
        dry = pieces.section_notes(np.random.default_rng(seed), replace(section, pedal=False))
        lifts = section.seconds_at(np.append(section.harmony.start[1:], section.beats))
        extended = pedalled.offset > dry.offset

        np.testing.assert_array_equal(pedalled.onset, dry.onset)
        assert np.all(pedalled.offset >= dry.offset) and extended.any()
        assert np.all(np.isin(pedalled.offset[extended], lifts))
        assert _held_past_the_next_onset(pedalled) > 0.8 > 0.6 > _held_past_the_next_onset(dry)


def test_the_melody_sings_above_the_accompaniment() -> None:
    for rng, section in _sections("melody"):
        sounded = pieces.section_notes(rng, section)

        assert sounded.velocity[sounded.role == MELODY].mean() > sounded.velocity[sounded.role == ACCOMPANIMENT].mean()
        assert sounded.key[sounded.role == MELODY].mean() > sounded.key[sounded.role == ACCOMPANIMENT].mean()


def test_ornaments_alternate_with_a_neighbouring_note() -> None:
    trills = 0
    for rng, section in _sections("ornaments", count=12):
        part = right_hand.ornaments(rng, section)
        order = np.argsort(part.onset, kind="stable")
        key = part.key[order]
        # a trill or turn: a key, its neighbour, the key again, played quickly
        quick = np.diff(section.seconds_at(part.onset[order])) < 0.1
        back = (key[2:] == key[:-2]) & (np.abs(key[1:-1] - key[:-2]) <= 2) & (key[1:-1] != key[:-2])
        trills += int(np.count_nonzero(back & quick[1:] & quick[:-1]))
    assert trills > 20


def test_tempo_bends_with_rubato_and_slows_into_the_cadence() -> None:
    ritardandos = 0
    for seed in range(30):
        section = pieces.draw_section(np.random.default_rng(seed), 0.0, home=0)
        beat_seconds = np.diff(section.seconds_at(np.arange(section.beats + 1.0)))

        assert np.all(60.0 / beat_seconds > 40.0 * 0.6 * 0.85) and np.all(60.0 / beat_seconds < 200.0 * 1.1)
        ritardandos += beat_seconds[-1] > 1.1 * np.median(beat_seconds)
    assert 5 < ritardandos < 30


def test_progressions_are_spelled_in_their_key() -> None:
    rng = np.random.default_rng(0)

    assert harmony.chord_of("V/5", "major", rng)[1].tolist() == [2, 6, 9, 0]  # D F# A C: the dominant of G in C
    assert harmony.chord_of("5", "minor", rng)[1].tolist() == [7, 11, 2, 5]  # G B D F: C minor's major dominant
    assert harmony.chord_of("m6", "major", rng)[1][:3].tolist() == [8, 0, 3]  # Ab C Eb: bVI borrowed from minor
    assert harmony.chord_of("N", "minor", rng)[1].tolist() == [1, 5, 8]  # Db F Ab: the Neapolitan
    chords = harmony.draw_harmony(rng, 32, 4, tonic=2, mode="major", symbols=("1", "V/5", "5", "1"))
    assert chords.start[0] == 0 and chords.end[-1] == 32 and chords.root[-1] == 2  # ends on D, its tonic
    assert chords.root.tolist()[-3:] == [4, 9, 2]  # E7 A D
    v_of_v = int(np.flatnonzero(chords.root == 4)[-1])  # E7 in D major: G# replaces G in its chord and scale
    assert 68 in chords.chord.keys[v_of_v] and 68 in chords.scale.keys[v_of_v]
    assert 67 not in chords.scale.keys[v_of_v] and 67 in chords.scale.keys[-1]


@pytest.mark.parametrize(
    "bad, problem",
    [
        ({"pieces": 0}, "corpus.pianistic.pieces: 0"),
        ({"pieces": "many"}, "corpus.pianistic.pieces: 'many' is not a number"),
        ({"pieces": 2.5}, "corpus.pianistic.pieces: 2.5 is not a whole number"),
        ({"seconds": 0.5}, "corpus.pianistic.seconds"),
        ({"seed": -1}, "corpus.pianistic.seed"),
        ({"seed": None}, "corpus.pianistic.seed"),
    ],
)
def test_bad_settings_name_the_parameter(bad: dict, problem: str) -> None:
    settings = {**defaults("corpus")["pianistic"], **bad}
    with pytest.raises(UserError, match=problem):
        pianistic.pianistic_pieces(settings, DropCounts())
    with pytest.raises(UserError, match="corpus.pianistic.seconds: missing"):
        pianistic.pianistic_pieces({"pieces": 1, "seed": 0}, DropCounts())
