"""The harmony of a pianistic section: modes, progressions, chords, and the ladders the textures step along."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Harmony. Progression symbols: "1".."7" the chord on that degree of the mode; "m6" the chord on that degree of
# the parallel mode (modal mixture: iv, bIII, bVI, bVII in major); "V/5" the dominant seventh of that degree (a
# secondary dominant); "N" the Neapolitan (the major triad on the lowered second degree).
MODES = {  # semitones of the seven degrees above the tonic
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),  # its "5" is the major dominant seventh, as in common-practice minor
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}
MODE_WEIGHTS = (0.4, 0.25, 0.07, 0.08, 0.05, 0.05, 0.1)
PROGRESSIONS = {
    "I-IV-V-I": ("1", "4", "5", "1"),
    "I-vi-IV-V": ("1", "6", "4", "5"),
    "ii-V-I": ("2", "5", "1"),
    "I-vi-ii-V-I": ("1", "6", "2", "5", "1"),
    "circle of fifths": ("1", "4", "7", "3", "6", "2", "5", "1"),
    "descending tetrachord": ("1", "7", "6", "5"),  # i-bVII-bVI-V in minor
    "V/V": ("1", "2", "V/5", "5", "1"),
    "secondary dominants": ("1", "V/4", "4", "V/2", "2", "V/5", "5", "1"),
    "chain of dominants": ("1", "V/6", "V/2", "V/5", "5", "1"),  # III7-VI7-II7-V7-I
    "mixture iv": ("1", "4", "m4", "1"),
    "mixture bVI-bVII": ("1", "m6", "m7", "1"),
    "mixture bIII": ("1", "m3", "m6", "5", "1"),
    "Neapolitan": ("1", "6", "N", "5", "1"),
}
SEVENTH_PROBABILITY = 0.3  # a diatonic chord carries its seventh (the dominant twice as often)
DOMINANT_SEVENTH = np.array([0, 4, 7, 10])
NEAPOLITAN = np.array([1, 5, 8])  # over the tonic: its root, third and fifth, semitones
HARMONIC_RHYTHM_BARS = (0.5, 1.0, 2.0)  # bars per chord (a section draws one; any chord may last twice as long)
CHORD_LENGTH_MULTIPLES = (1, 1, 1, 2)
KEY_SPACE = 128  # ladders list the keys 0..127; textures fold onto the keyboard at the end


@dataclass(frozen=True)
class Ladder:
    """Per chord of a section, the keys 0..127 whose pitch class is in a set, to step along member by member."""

    keys: np.ndarray  # [U, W] each row's members, ascending (padded at the end)
    below: np.ndarray  # [U, KEY_SPACE + 1]: below[u, k] = how many members of row u lie under key k
    count: np.ndarray  # [U] members per row

    @classmethod
    def of(cls, member: np.ndarray) -> Ladder:
        """From a [U, 12] table of which pitch classes are in each row's set."""
        mask = member[:, np.arange(KEY_SPACE) % 12]
        count = mask.sum(axis=1)
        rows, columns = np.nonzero(mask)
        position = np.arange(len(columns)) - np.repeat(np.cumsum(count) - count, count)
        keys = np.zeros((len(mask), int(count.max())), dtype=np.int64)
        keys[rows, position] = columns
        below = np.concatenate([np.zeros((len(mask), 1), dtype=np.int64), np.cumsum(mask, axis=1)], axis=1)
        return cls(keys, below, count)

    def index(self, unit: Any, key: Any) -> np.ndarray:
        """Position in the row of the lowest member at or above ``key``."""
        return self.below[unit, np.clip(key, 0, KEY_SPACE)]

    def at(self, unit: Any, index: Any) -> np.ndarray:
        """The member at a position (clamped to the row)."""
        return self.keys[unit, np.clip(index, 0, self.count[unit] - 1)]

    def step(self, unit: Any, key: Any, steps: Any = 0) -> np.ndarray:
        """The member ``steps`` along from ``key``: 0 the lowest at or above it, -1 the highest below it."""
        return self.at(unit, self.index(unit, key) + steps)

    def nearest(self, unit: Any, key: Any) -> np.ndarray:
        above, under = self.step(unit, key, 0), self.step(unit, key, -1)
        return np.where(above - np.asarray(key) <= np.asarray(key) - under, above, under)


@dataclass(frozen=True)
class Harmony:
    """A section's chords: where each starts and ends (beats), its root, and its tones as ladders."""

    start: np.ndarray  # [U] beats, the first 0
    end: np.ndarray  # [U]
    root: np.ndarray  # [U] pitch class
    chord: Ladder  # root, third, fifth and the seventh when it has one
    triad: Ladder  # root, third and fifth
    scale: Ladder  # the mode with the chord's tones in place of the degrees they alter (the chord-scale)

    def unit_at(self, beats: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.start, beats, side="right") - 1


def chord_of(symbol: str, mode: str, rng: np.random.Generator) -> tuple[int, np.ndarray]:
    """A progression symbol in a mode: its root's degree (0..6) and its tones in semitones above the tonic, one
    per degree of its stack of thirds (root, third, fifth and maybe seventh)."""
    steps = np.array(MODES[mode])
    if symbol == "5" and mode == "minor":
        symbol = "V/1"
    if symbol.startswith("V/"):
        target = int(symbol[2:]) - 1
        return (target + 4) % 7, (steps[target] + 7 + DOMINANT_SEVENTH) % 12
    if symbol == "N":
        return 1, NEAPOLITAN.copy()
    if symbol.startswith("m"):
        steps = np.array(MODES["minor" if steps[2] == 4 else "major"])
        symbol = symbol[1:]
    degree = int(symbol) - 1
    seventh = rng.random() < SEVENTH_PROBABILITY * (2 if degree == 4 else 1)
    return degree, steps[(degree + 2 * np.arange(4 if seventh else 3)) % 7]


def draw_harmony(
    rng: np.random.Generator, beats: int, beats_per_bar: int, tonic: int, mode: str, symbols: tuple[str, ...]
) -> Harmony:
    """Chords at a random harmonic rhythm, the progression repeated so that its last chord ends the section."""
    bars_per_chord = [bars for bars in HARMONIC_RHYTHM_BARS if (bars * beats_per_bar).is_integer()]
    base = int(beats_per_bar * rng.choice(bars_per_chord))
    start = np.concatenate([[0], np.cumsum(base * rng.choice(CHORD_LENGTH_MULTIPLES, beats))])
    start = start[start < beats]
    units = len(start)
    chord, triad, scale = (np.zeros((units, 12), dtype=bool) for _ in range(3))
    root = np.empty(units, dtype=np.int64)
    for unit in range(units):
        degree, tones = chord_of(symbols[(unit - units) % len(symbols)], mode, rng)
        chord_scale = np.array(MODES[mode])
        chord_scale[(degree + 2 * np.arange(len(tones))) % 7] = tones
        chord[unit, (tonic + tones) % 12] = True
        triad[unit, (tonic + tones[:3]) % 12] = True
        scale[unit, (tonic + chord_scale) % 12] = True
        root[unit] = (tonic + tones[0]) % 12
    return Harmony(
        start=start.astype(np.float64),
        end=np.append(start[1:], beats).astype(np.float64),
        root=root,
        chord=Ladder.of(chord),
        triad=Ladder.of(triad),
        scale=Ladder.of(scale),
    )
