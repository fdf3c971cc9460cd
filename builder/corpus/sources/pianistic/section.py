"""What every pianistic texture is given (a ``Section``) and returns (a ``Part``), and the building blocks and
articulations the textures share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from builder.corpus.sources.pianistic.harmony import Harmony

FIGURE_SUBDIVISIONS = {2: (2, 4), 3: (3, 6)}  # notes per beat of accompaniment figures, simple / compound
FIGURE_RATE = (4.0, 10.0)
LINE_SUBDIVISIONS = {2: (1, 2, 4), 3: (1, 3)}
BROKEN_CHORD_RING = (1.5, 3.0)  # a broken chord's notes ring over this many of the following ones
LEGATO_GATE = (0.85, 1.0)  # length / time to the next note of the voice
DETACHED_GATE = (0.5, 0.9)
ACCOMPANIMENT, BASS, MELODY = 0, 1, 2  # roles, for dynamics


class Part(NamedTuple):
    """What a texture plays, in the section's beats: onsets, lengths (before the pedal), keys and roles."""

    onset: np.ndarray
    duration: np.ndarray
    key: np.ndarray
    role: np.ndarray


@dataclass(frozen=True)
class Section:
    """A few bars in one meter, key, tempo, register and dynamics, played in one or two textures."""

    start: float  # seconds into the piece where beat 0 falls
    beats: int  # whole bars
    beats_per_bar: int
    division: int  # 2: simple meter (beats in halves), 3: compound (in thirds)
    bpm: float  # base tempo
    tonic: int
    mode: str
    progression: str
    harmony: Harmony
    textures: tuple[str, ...]  # (left hand, right hand) or (both hands,)
    bass: int  # the left hand's anchor: its bass notes lie at or above it (within an octave)
    low: int  # the right hand's register
    high: int
    phrase_beats: int
    pedal: bool
    dynamics: np.ndarray  # accompaniment velocity at the start, middle and end
    arch: float
    melody_boost: float
    accent: float
    velocity_jitter: float
    tempo: tuple[np.ndarray, np.ndarray]  # beats on a fine grid, and the seconds after ``start`` they fall at

    def seconds_at(self, beats: np.ndarray) -> np.ndarray:
        return self.start + np.interp(beats, *self.tempo)

    @property
    def seconds(self) -> float:
        return float(np.interp(self.beats, *self.tempo))


# Building blocks of the textures


def make_part(onset: Any, duration: Any, key: Any, role: Any) -> Part:
    """A part from arrays (or scalars) that broadcast together, flattened."""
    onset, duration, key, role = np.broadcast_arrays(onset, duration, key, role)
    return Part(onset.ravel().astype(np.float64), duration.ravel().astype(np.float64), key.ravel(), role.ravel())


def chosen_part(member: np.ndarray, onset: Any, duration: Any, key: Any, role: Any) -> Part:
    """A part from 2-D arrays (events x chord members, or anything broadcasting to them), where ``member``."""
    return make_part(*(np.broadcast_to(column, member.shape)[member] for column in (onset, duration, key, role)))


def join_parts(*parts: Part) -> Part:
    return Part(*(np.concatenate(column) for column in zip(*parts)))


def subdivision_near(section: Section, choices: tuple[int, ...], rate: float) -> int:
    """The subdivision among ``choices`` (notes per beat) whose notes per second come nearest ``rate``."""
    per_second = np.asarray(choices, dtype=np.float64) * section.bpm / 60.0
    return int(choices[int(np.argmin(np.abs(np.log(per_second / rate))))])


def grid_of(section: Section, per_beat: int) -> tuple[np.ndarray, np.ndarray]:
    """Evenly spaced onsets through the section and the chord each falls in."""
    beats = np.arange(section.beats * per_beat) / per_beat
    return beats, section.harmony.unit_at(beats)


def index_in_chord(section: Section, beats: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """How many grid onsets since the current chord began (chords start on grid points)."""
    first = np.searchsorted(beats, section.harmony.start - 1e-9)
    return np.arange(len(beats)) - first[unit]


def root_at_or_above(section: Section, key: Any, unit: Any) -> np.ndarray:
    """The chord's root at or above ``key`` (within an octave)."""
    return key + (section.harmony.root[unit] - key) % 12


def bounce(position: Any, low: Any, high: Any) -> np.ndarray:
    """Fold positions into low..high, turning at both ends (a line reversing at the edge of its range)."""
    span = np.maximum(np.asarray(high) - low, 1)
    folded = np.mod(np.asarray(position) - low, 2 * span)
    return low + np.where(folded > span, 2 * span - folded, folded)
