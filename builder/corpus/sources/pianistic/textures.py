"""The table of pianistic textures: which hand plays each, how, and what it needs of its section."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from builder.corpus.sources.pianistic.both_hands import arpeggio, block_chords
from builder.corpus.sources.pianistic.left_hand import alberti, broken_chords, octave_bass, stride, sustained_bass
from builder.corpus.sources.pianistic.right_hand import melody, ornaments, parallel_octaves, repeated_notes, runs
from builder.corpus.sources.pianistic.section import Part, Section


@dataclass(frozen=True)
class Texture:
    """An entry of the texture table: which hand plays it, how, and what it needs of the section."""

    hand: str  # "left", "right" or "both" (a both-hands texture fills its section alone)
    make: Callable[[np.random.Generator, Section], Part]
    pedal: float  # chance a section is pedalled (a section takes the least of its textures')
    bass: tuple[int, int] = (36, 48)  # range of the section's bass anchor (set by the left or both-hands texture)
    reach: int = 14  # semitones above the anchor the left hand reaches; the right hand's register starts above


TEXTURES: dict[str, Texture] = {
    "alberti": Texture("left", alberti, pedal=0.2, bass=(40, 50), reach=14),
    "stride": Texture("left", stride, pedal=0.3, bass=(26, 33), reach=42),
    "broken_chords": Texture("left", broken_chords, pedal=0.8, bass=(28, 43), reach=30),
    "octave_bass": Texture("left", octave_bass, pedal=0.4, bass=(28, 40), reach=30),
    "sustained_bass": Texture("left", sustained_bass, pedal=1.0, bass=(24, 40), reach=30),
    "melody": Texture("right", melody, pedal=1.0),
    "repeated_notes": Texture("right", repeated_notes, pedal=1.0),
    "ornaments": Texture("right", ornaments, pedal=0.6),
    "runs": Texture("right", runs, pedal=0.3),
    "parallel_octaves": Texture("right", parallel_octaves, pedal=0.7),
    "block_chords": Texture("both", block_chords, pedal=0.6, bass=(28, 36), reach=24),
    "arpeggio": Texture("both", arpeggio, pedal=0.9, bass=(33, 40), reach=0),
}
LEFT_HAND = tuple(name for name, texture in TEXTURES.items() if texture.hand == "left")
RIGHT_HAND = tuple(name for name, texture in TEXTURES.items() if texture.hand == "right")
BOTH_HANDS = tuple(name for name, texture in TEXTURES.items() if texture.hand == "both")
