"""Note names <-> MIDI numbers: the anchors of the piano, sharps, flats, and the round trip."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pianoscribe import keyboard as notes
from pianoscribe.constants import N_KEYS


@pytest.mark.parametrize(
    "name, number",
    [
        ("A0", 21),
        ("Bb0", 22),
        ("A#0", 22),
        ("B0", 23),
        ("C1", 24),
        ("Bb3", 58),
        ("C4", 60),
        ("C#4", 61),
        ("Db4", 61),
        ("A4", 69),
        ("Gb5", 78),
        ("F#5", 78),
        ("C8", 108),
        ("c4", 60),
        ("bb3", 58),
        ("Cb4", 59),
        ("B#3", 60),
        ("E#4", 65),
        ("Fb4", 64),
        ("C♯4", 61),
        ("D♭4", 61),
        ("C-1", 0),
        ("G9", 127),
    ],
)
def test_note_number_knows_sharps_flats_and_octave_boundaries(name, number):
    assert notes.note_number(name) == number


@pytest.mark.parametrize("bad", ["H3", "A", "Bb", "4", "A10", "Abb", "G#9", "Cb-1", "", "Piano"])
def test_note_number_rejects_what_is_not_a_note(bad):
    with pytest.raises(ValueError):
        notes.note_number(bad)


def test_note_name_spells_with_sharps_or_flats():
    assert notes.note_name(21) == "A0"
    assert notes.note_name(61) == "C#4"
    assert notes.note_name(61, flats=True) == "Db4"
    assert notes.note_name(58, flats=True) == "Bb3"
    assert notes.note_name(108) == "C8"


@given(st.integers(0, 127), st.booleans())
def test_names_round_trip(number, flats):
    assert notes.note_number(notes.note_name(number, flats=flats)) == number


def test_piano_range_and_frequency():
    assert N_KEYS == 88
    assert notes.is_piano_key(21) and notes.is_piano_key(108)
    assert not notes.is_piano_key(20) and not notes.is_piano_key(109)
    assert notes.key_frequency(69) == pytest.approx(440.0)
    assert notes.key_frequency(21) == pytest.approx(27.5)


def test_stretch_tuning_is_flat_in_the_bass_zero_at_e4_and_sharp_in_the_treble():
    assert notes.stretch_cents(21, 20.0, 30.0) == pytest.approx(-20.0)
    assert notes.stretch_cents(64, 20.0, 30.0) == 0.0
    assert notes.stretch_cents(107, 20.0, 30.0) == pytest.approx(30.0)
    assert notes.stretch_cents(40, 20.0, 30.0) < notes.stretch_cents(50, 20.0, 30.0) < 0
