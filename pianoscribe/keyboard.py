"""Note names <-> MIDI key numbers, and the 88-key index convention shared by every file.

A piano key is its MIDI number, 21 (A0) .. 108 (C8); arrays 88 wide are indexed by ``key - LOWEST_KEY``.
Names use scientific pitch notation (C4 = 60) with sharps or flats: ``A0``, ``Bb3``, ``C#4``, ``Cb4`` (= B3).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, overload

from pianoscribe.constants import HIGHEST_KEY, LOWEST_KEY

if TYPE_CHECKING:
    import numpy as np

_PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACCIDENTAL = {"": 0, "#": 1, "♯": 1, "b": -1, "♭": -1, "##": 2, "bb": -2}
_SHARP_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
_FLAT_NAMES = ["C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B"]
NOTE_NAME_PATTERN = re.compile(r"^([A-Ga-g])(##|bb|#|b|♯|♭)?(-?\d)$")


def note_number(name: str) -> int:
    """MIDI number of a note name (``"A0"`` -> 21, ``"Bb3"`` -> 58, ``"C#4"`` -> 61, ``"C8"`` -> 108).

    The letter may be lower case; the octave changes at C (``"B#3"`` is 60, ``"Cb4"`` is 59).
    Raises ``ValueError`` for anything that is not a note name or lies outside MIDI 0..127.
    """
    match = NOTE_NAME_PATTERN.match(name.strip())
    if match is None:
        raise ValueError(f"not a note name: {name!r} (expected e.g. A0, Bb3, C#4)")
    letter, accidental, octave = match.groups()
    number = 12 * (int(octave) + 1) + _PITCH_CLASS[letter.upper()] + _ACCIDENTAL[accidental or ""]
    if not 0 <= number <= 127:
        raise ValueError(f"note {name!r} is outside MIDI 0..127")
    return number


def note_name(number: int, flats: bool = False) -> str:
    """Name of a MIDI number, with sharps by default (61 -> ``"C#4"``) or flats (61 -> ``"Db4"``)."""
    if not 0 <= number <= 127:
        raise ValueError(f"MIDI number {number} is outside 0..127")
    names = _FLAT_NAMES if flats else _SHARP_NAMES
    return f"{names[number % 12]}{number // 12 - 1}"


def is_piano_key(number: int) -> bool:
    """Whether a MIDI number is one of the 88 piano keys (21..108)."""
    return LOWEST_KEY <= number <= HIGHEST_KEY


@overload
def key_frequency(number: float) -> float: ...
@overload
def key_frequency(number: np.ndarray) -> np.ndarray: ...
def key_frequency(number):
    """Equal-tempered fundamental in Hz (A4 = 69 = 440 Hz), of one key or an array of them."""
    return 440.0 * 2.0 ** ((number - 69) / 12.0)


def stretch_cents(number: int | float, flat_at_a0: float, sharp_at_c8: float) -> float:
    """Railsback-like stretch tuning in cents: a square law in ``(number - 64) / 43``, 0 at E4, ``-flat_at_a0`` at
    A0 and ``+sharp_at_c8`` 43 keys above E4 (B7; C8 gets 4.7 % more). A real piano's octaves are tuned wide, to
    match its inharmonic partials."""
    distance = (number - 64) / 43.0
    return float((sharp_at_c8 if distance > 0 else flat_at_a0) * distance * abs(distance))
