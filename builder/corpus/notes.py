"""The note data model every source is reduced to: one array layout, one cleaning rule, one piece id.

``NOTE_DTYPE`` rows (onset and offset in seconds, MIDI key 21..108, velocity 1..127), pieces with stable ids,
corpora of pieces. Cleaning drops (and counts) keys outside the piano and notes without length; a piano plays
a key once at a time (``merge_unisons``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pianoscribe.constants import HIGHEST_KEY, LOWEST_KEY

NOTE_DTYPE = np.dtype([("onset", "<f8"), ("offset", "<f8"), ("key", "u1"), ("velocity", "u1")])


@dataclass
class Piece:
    """One piece: its stable id (the split and the dataset refer to it) and its notes sorted by (onset, key)."""

    piece_id: str
    notes: np.ndarray


@dataclass
class Corpus:
    """A named list of pieces; ``attrs`` records where they came from and what was dropped on the way."""

    name: str
    pieces: list[Piece]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class DropCounts:
    """Notes removed while cleaning, so a summary can say how much of a source did not make it."""

    out_of_range: int = 0
    zero_length: int = 0

    def add(self, other: DropCounts) -> None:
        self.out_of_range += other.out_of_range
        self.zero_length += other.zero_length

    def as_dict(self) -> dict[str, int]:
        return {"out_of_range": self.out_of_range, "zero_length": self.zero_length}


def clean_notes(
    onset: np.ndarray, offset: np.ndarray, key: np.ndarray, velocity: np.ndarray, dropped: DropCounts | None = None
) -> np.ndarray:
    """Build a ``NOTE_DTYPE`` array: drop (and count) keys outside 21..108 and notes without length, sort.

    Velocities are clipped to 1..127 (MIDI velocity 0 means note-off, so a sounding note has at least 1).
    Sorting by (onset, key, offset, velocity) makes equal content give equal arrays whatever the source order.
    """
    onset = np.asarray(onset, dtype=np.float64)
    offset = np.asarray(offset, dtype=np.float64)
    key = np.asarray(key, dtype=np.int64)
    velocity = np.rint(np.asarray(velocity, dtype=np.float64))
    in_range = (key >= LOWEST_KEY) & (key <= HIGHEST_KEY)
    has_length = offset > onset
    if dropped is not None:
        dropped.out_of_range += int(np.count_nonzero(~in_range))
        dropped.zero_length += int(np.count_nonzero(in_range & ~has_length))
    keep = in_range & has_length
    notes = np.empty(int(np.count_nonzero(keep)), dtype=NOTE_DTYPE)
    notes["onset"] = onset[keep]
    notes["offset"] = offset[keep]
    notes["key"] = key[keep]
    notes["velocity"] = np.clip(velocity[keep], 1, 127)
    order = np.lexsort((notes["velocity"], notes["offset"], notes["key"], notes["onset"]))
    return notes[order]


def merge_unisons(notes: np.ndarray) -> np.ndarray:
    """Make notes playable on one piano: a key sounds once at a time, a re-strike ends the previous note.

    Ensemble scores (chorale voices doubling each other) and generated textures can strike a key that is
    already sounding; on a piano that is one key, so the earlier note ends where the later one starts and
    exact doublings (same key, same onset) collapse into the longest of them.
    """
    by_key = np.lexsort((notes["offset"], notes["onset"], notes["key"]))
    ordered = notes[by_key].copy()
    same_key_next = ordered["key"][1:] == ordered["key"][:-1]
    next_onset = ordered["onset"][1:]
    cut = same_key_next & (next_onset < ordered["offset"][:-1])
    ordered["offset"][:-1][cut] = next_onset[cut]
    playable = ordered[ordered["offset"] > ordered["onset"]]
    return playable[np.lexsort((playable["velocity"], playable["offset"], playable["key"], playable["onset"]))]


def stable_seed(text: str) -> int:
    """A seed derived from a string (a piece id), the same on every machine and Python run."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
