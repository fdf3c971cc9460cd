"""The built-in ``pianistic`` corpus: generated piano music written the way piano pieces are written.

``procedural`` covers the keyboard with abstract textures; the music users bring (rags, sonatas, nocturnes)
has harmony, two hands and a pedal. A piece here is a chain of sections of a few bars, each with its own key
and mode, meter, tempo (40..200 bpm), register and dynamics:

- harmony: a progression (I-IV-V-I, ii-V-I, the circle of fifths, secondary dominants, modal mixture, the
  Neapolitan, ...) in the section's key and mode, at a random harmonic rhythm, ending on its cadence;
- texture: a left-hand accompaniment (Alberti bass, stride, broken chords, a bass line doubled in octaves or
  tenths, sustained bass) under a right-hand part (a melody, sometimes doubled in octaves, thirds or sixths;
  repeated notes; a melody ornamented with trills, turns and mordents; fast diatonic or chromatic runs;
  parallel octaves), or one texture for both hands (block chords of 6..10 keys, arpeggios over 3..5 octaves);
- performance: the sustain pedal (note-offs held until the pedal is lifted at the next change of harmony),
  rubato (a tempo swell over each phrase, a ritardando into the cadence), dynamics (a hairpin over the section,
  an arch over each phrase, accents on downbeats, the melody above the accompaniment) and velocity jitter.

Textures are written in the section's beats (one small function each, :data:`TEXTURES`); they find chord and
scale tones through :class:`Ladder` tables, one row per chord. Keys off the keyboard are folded by octaves,
then notes are cleaned and made playable on one piano (:func:`builder.corpus.notes.clean_notes`,
:func:`builder.corpus.notes.merge_unisons`). Piece ``index`` draws from ``numpy.random.default_rng([seed,
index])``, so a piece does not depend on how many pieces are made, and the same settings give the same notes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from builder.corpus.generated import generator_settings
from builder.corpus.notes import DropCounts, Piece, clean_notes, merge_unisons
from pianoscribe.constants import HIGHEST_KEY, LOWEST_KEY

GENERATOR_VERSION = 1
DEFAULT_SETTINGS: dict[str, Any] = {"pieces": 300, "seconds": 60.0, "seed": 0}  # the size of ``procedural``

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

# Form and time
METERS = {"2/4": (2, 2), "3/4": (3, 2), "4/4": (4, 2), "6/8": (2, 3), "9/8": (3, 3), "12/8": (4, 3)}  # beats, division
TEMPO_RANGE = (40.0, 200.0)  # a section's base tempo, beats per minute (a compound meter's beat is dotted)
SECTION_SECONDS = (4.0, 14.0)  # a section's length is drawn here, then rounded to whole bars ...
SECTION_BARS = (2, 12)  # ... within these
PHRASE_BARS = (1, 2, 4)  # phrase lengths (dividing the section's bars): rubato, melody cadences, dynamics arcs
RUBATO_PROBABILITY = 0.7
RUBATO_DEPTH = 0.2  # the tempo swells within each phrase by up to this fraction, faster mid-phrase
RITARDANDO_PROBABILITY = 0.6
RITARDANDO = (0.15, 0.4)  # the last bar slows to 85%..60% of the tempo
GRID_PER_BEAT = 32  # resolution of the tempo curve
TAIL_BEATS = 16  # the tempo curve runs on after the section, for notes that ring past its end
BREATH_PROBABILITY = 0.3  # a pause between sections (a fermata, a breath)
BREATH_SECONDS = (0.1, 0.8)
HOME_KEY_PROBABILITY = 0.5  # a section is in the piece's home key, else a related key (fifths, relative) ...
RELATED_KEY_PROBABILITY = 0.3  # ... or any key
RELATED_KEYS = (3, 5, 7, 9)  # semitones from home: relative major, subdominant, dominant, relative minor

# The hands. Rates are notes per second a figure aims at; the subdivision of the beat nearest to it is used.
BOTH_HANDS_PROBABILITY = 0.25  # a section is one texture for both hands, else left hand + right hand
RIGHT_HAND_GAP = (1, 8)  # semitones between the left hand's reach and the right hand's register
RIGHT_HAND_WIDTH = (14, 27)  # semitones of the right hand's register
RIGHT_HAND_HIGHEST_LOW = 84
FIGURE_SUBDIVISIONS = {2: (2, 4), 3: (3, 6)}  # notes per beat of accompaniment figures, simple / compound
FIGURE_RATE = (4.0, 10.0)
LINE_SUBDIVISIONS = {2: (1, 2, 4), 3: (1, 3)}
ALBERTI_PATTERNS = {2: (0, 2, 1, 2), 3: (0, 2, 1, 2, 1, 2)}  # chord tones above the anchor: low-high-middle-high
HELD_BASS_PROBABILITY = 0.4  # the low note of a figure held through it (a finger pedal)
STRIDE_CHORD_TOP = (29, 31)  # the off-beat chord's top is this far above the bar's root: at least two octaves
BASS_OCTAVE_PROBABILITY = 0.6  # a stride or sustained bass in octaves
BROKEN_CHORD_PATTERNS = ((0, 2, 4, 2), (0, 2, 3, 4, 3, 2), (0, 2, 4, 5, 4, 2), (0, 1, 2, 3, 4, 3, 2, 1))
BROKEN_CHORD_RING = (1.5, 3.0)  # a broken chord's notes ring over this many of the following ones
BASS_LINE_SUBDIVISIONS = {2: (1, 2), 3: (1, 3)}
BASS_LINE_RATE = (1.5, 5.0)
BASS_WALK_SPAN = 4  # a bass line walks at most this many chord tones from the root before turning
TENTH_PROBABILITY = 0.4  # the bass line doubled a tenth above, else an octave below
INNER_VOICE_ABOVE = (10, 17)  # a sustained bass's chord starts this far above it
SUSTAINED_CHORD_DELAYS = (0.0, 0.5, 1.0)  # beats after the bass the tenor chord comes in
MELODY_MAX_RATE = 10.0  # notes per second in a melody's densest rhythm
MELODY_CELLS = {  # onsets within a beat and a weight; () holds the previous note through the beat
    2: (((), 1.5), ((0.0,), 5.0), ((0.0, 0.5), 5.0), ((0.0, 0.75), 1.5), ((0.5,), 0.7), ((0.0, 0.25, 0.5), 1.0),
        ((0.0, 0.5, 0.75), 1.0), ((0.0, 0.25, 0.5, 0.75), 1.2)),
    3: (((), 1.5), ((0.0,), 4.0), ((0.0, 2 / 3), 4.0), ((0.0, 1 / 3, 2 / 3), 4.0), ((0.0, 0.5), 0.7),
        ((2 / 3,), 0.5)),
}  # fmt: skip
MELODY_STEPS = np.array([-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 7])  # scale steps from one note to the next
MELODY_STEP_WEIGHTS = np.array([0.01, 0.02, 0.05, 0.13, 0.27, 0.04, 0.27, 0.13, 0.05, 0.02, 0.005, 0.005])
MELODY_BREATH = 0.2  # beats of silence before a phrase's next start
MELODY_DOUBLINGS = {"none": 0.5, "octave": 0.2, "third": 0.15, "sixth": 0.15}  # a second voice below the melody
DOUBLING_STEPS = {"third": -2, "sixth": -5}  # scale steps below the melody
LEGATO_GATE = (0.85, 1.0)  # length / time to the next note of the voice
DETACHED_GATE = (0.5, 0.9)
REPEAT_RATE = (6.0, 12.0)
REPEAT_GATE = (0.4, 0.8)
ORNAMENT_RATE = (10.0, 15.0)  # notes per second within trills, turns and mordents
ORNAMENTS = {  # scale steps from the main note, played at the ornament rate (the last note takes the rest)
    "plain": (0,),
    "mordent": (0, -1, 0),
    "inverted mordent": (0, 1, 0),
    "turn": (1, 0, -1, 0),
    "trill": (1, 0),  # repeated while the note lasts, then the termination (-1, 0)
}
ORNAMENT_WEIGHTS = (0.35, 0.15, 0.15, 0.15, 0.2)
ORNAMENT_TABLE = np.array([[*pattern, *[0] * (4 - len(pattern))] for pattern in ORNAMENTS.values()])
PLAIN, TRILL = list(ORNAMENTS).index("plain"), list(ORNAMENTS).index("trill")
RUN_SUBDIVISIONS = (4, 6, 8, 12, 16)  # notes per beat of a run: up to 16 at slow tempi
RUN_RATE = (11.0, 16.0)
RUN_BEATS = (1, 2, 4)  # a run fills the end of a chord, this many beats at most
RUN_SPAN = (30, 48)  # semitones of the register runs move in
CHROMATIC_RUN_PROBABILITY = 0.25
RUN_TURN_PROBABILITY = 0.25  # a run goes the other way than its place in the register suggests
OCTAVE_RATE = (2.0, 7.0)
OCTAVE_TURN_PROBABILITY = 0.2
FILLED_OCTAVE_PROBABILITY = 0.35  # octaves with a chord tone inside
BLOCK_SPACING_BEATS = (0.5, 1.0, 2.0)
BLOCK_MAX_RATE = 4.0  # chords per second
BLOCK_SIZE = (6, 10)  # keys struck together by both hands
BLOCK_DRIFT = 6  # semitones the right hand's lowest chord note wanders above the register's bottom
ARPEGGIO_SUBDIVISIONS = {2: (4, 6, 8), 3: (3, 6, 12)}
ARPEGGIO_RATE = (8.0, 14.0)
ARPEGGIO_OCTAVES = (3, 5)

# Dynamics (MIDI velocity) and humanizing
LEVEL_RANGE = (20.0, 95.0)  # a section's accompaniment level
HAIRPIN = 15.0  # the level at the start, middle and end moves by up to this: crescendo, diminuendo, swell
PHRASE_ARCH = 8.0  # louder mid-phrase by up to this
MELODY_BOOST = (8.0, 20.0)  # the melody above the accompaniment
BASS_BOOST = 4.0
ACCENT = (4.0, 12.0)  # on downbeats; a third of it on the other beats
VELOCITY_JITTER = (2.0, 7.0)
ONSET_JITTER_SECONDS = 0.004
MIN_NOTE_SECONDS = 0.03
ACCOMPANIMENT, BASS, MELODY = 0, 1, 2  # roles, for dynamics


class Part(NamedTuple):
    """What a texture plays, in the section's beats: onsets, lengths (before the pedal), keys and roles."""

    onset: np.ndarray
    duration: np.ndarray
    key: np.ndarray
    role: np.ndarray


class Sounded(NamedTuple):
    """A section's notes as played, in seconds of the piece (keys on the keyboard, velocities unclipped)."""

    onset: np.ndarray
    offset: np.ndarray
    key: np.ndarray
    velocity: np.ndarray
    role: np.ndarray


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


@dataclass(frozen=True)
class Texture:
    """An entry of the texture table: which hand plays it, how, and what it needs of the section."""

    hand: str  # "left", "right" or "both" (a both-hands texture fills its section alone)
    make: Callable[[np.random.Generator, Section], Part]
    pedal: float  # chance a section is pedalled (a section takes the least of its textures')
    bass: tuple[int, int] = (36, 48)  # range of the section's bass anchor (set by the left or both-hands texture)
    reach: int = 14  # semitones above the anchor the left hand reaches; the right hand's register starts above


def pianistic_pieces(settings: dict[str, Any], dropped: DropCounts) -> tuple[list[Piece], dict[str, Any]]:
    """``settings["pieces"]`` pieces of ``settings["seconds"]`` each, ids ``pianistic/<seed>/<index:05d>``."""
    pieces_count, seconds, seed = checked_settings(settings)
    pieces = []
    by_texture = dict.fromkeys(TEXTURES, 0)
    by_mode = dict.fromkeys(MODES, 0)
    by_progression = dict.fromkeys(PROGRESSIONS, 0)
    pedalled = 0
    for index in range(pieces_count):
        notes, sections = pianistic_notes(np.random.default_rng([seed, index]), seconds, dropped)
        for section in sections:
            for texture in section.textures:
                by_texture[texture] += 1
            by_mode[section.mode] += 1
            by_progression[section.progression] += 1
            pedalled += section.pedal
        pieces.append(Piece(piece_id=f"pianistic/{seed}/{index:05d}", notes=notes))
    record = {
        "source": "pianistic",
        "seed": seed,
        "pieces": pieces_count,
        "seconds": seconds,
        "generator_version": GENERATOR_VERSION,
        "sections": sum(by_mode.values()),
        "pedalled_sections": pedalled,
        "sections_by_texture": by_texture,
        "sections_by_mode": by_mode,
        "sections_by_progression": by_progression,
    }
    return pieces, record


def checked_settings(settings: dict[str, Any]) -> tuple[int, float, int]:
    """(pieces, seconds, seed) from the ``corpus.pianistic`` section, or a UserError naming the bad key."""
    return generator_settings(settings, "pianistic")


def pianistic_notes(
    rng: np.random.Generator, seconds: float, dropped: DropCounts | None = None
) -> tuple[np.ndarray, list[Section]]:
    """One piece of ``seconds``: sections back to back (a breath between some); its notes and its sections."""
    home = int(rng.integers(12))
    columns: list[Sounded] = []
    sections: list[Section] = []
    time = 0.0
    while time < seconds:
        section = draw_section(rng, time, home)
        columns.append(section_notes(rng, section))
        sections.append(section)
        time = section.start + section.seconds
        if rng.random() < BREATH_PROBABILITY:
            time += rng.uniform(*BREATH_SECONDS)
    onset, offset, key, velocity, _ = (np.concatenate(column) for column in zip(*columns))
    keep = onset < seconds
    notes = merge_unisons(
        clean_notes(onset[keep], np.minimum(offset[keep], seconds), key[keep], velocity[keep], dropped)
    )
    # Humanize timing only now, so keys doubled within one chord have merged exactly; the jitter moves whole
    # notes, so lengths (and the pedal's holds) stay as drawn.
    shift = np.maximum(rng.normal(0.0, ONSET_JITTER_SECONDS, len(notes)), -notes["onset"])
    notes["onset"] += shift
    notes["offset"] = np.minimum(notes["offset"] + shift, seconds)
    notes = merge_unisons(notes[notes["offset"] > notes["onset"]])
    # A note cut to a blip (re-struck right after its onset) would only teach spurious onsets.
    return notes[notes["offset"] - notes["onset"] >= MIN_NOTE_SECONDS / 2], sections


def draw_section(rng: np.random.Generator, start: float, home: int, textures: tuple[str, ...] | None = None) -> Section:
    """Draw a section's meter, tempo, key, harmony, textures (or use ``textures``), register and dynamics."""
    meter = list(METERS)[rng.integers(len(METERS))]
    beats_per_bar, division = METERS[meter]
    bpm = float(rng.uniform(*TEMPO_RANGE))
    bars = int(np.clip(round(rng.uniform(*SECTION_SECONDS) * bpm / 60.0 / beats_per_bar), *SECTION_BARS))
    beats = bars * beats_per_bar
    choice = rng.random()
    if choice < HOME_KEY_PROBABILITY:
        tonic = home
    elif choice < HOME_KEY_PROBABILITY + RELATED_KEY_PROBABILITY:
        tonic = (home + int(rng.choice(RELATED_KEYS))) % 12
    else:
        tonic = int(rng.integers(12))
    mode = list(MODES)[rng.choice(len(MODES), p=MODE_WEIGHTS)]
    progression = list(PROGRESSIONS)[rng.integers(len(PROGRESSIONS))]
    harmony = draw_harmony(rng, beats, beats_per_bar, tonic, mode, PROGRESSIONS[progression])
    if textures is None:
        textures = _draw_textures(rng)
    lowest = TEXTURES[textures[0]]  # the left-hand (or both-hands) texture places the bass
    bass = int(rng.integers(lowest.bass[0], lowest.bass[1] + 1))
    low = min(bass + lowest.reach + int(rng.integers(*RIGHT_HAND_GAP)), RIGHT_HAND_HIGHEST_LOW)
    high = min(low + int(rng.integers(*RIGHT_HAND_WIDTH)), HIGHEST_KEY)
    phrase_beats = beats_per_bar * int(rng.choice([length for length in PHRASE_BARS if bars % length == 0]))
    return Section(
        start=start,
        beats=beats,
        beats_per_bar=beats_per_bar,
        division=division,
        bpm=bpm,
        tonic=tonic,
        mode=mode,
        progression=progression,
        harmony=harmony,
        textures=textures,
        bass=bass,
        low=low,
        high=high,
        phrase_beats=phrase_beats,
        pedal=bool(rng.random() < min(TEXTURES[name].pedal for name in textures)),
        dynamics=rng.uniform(*LEVEL_RANGE) + rng.uniform(-HAIRPIN, HAIRPIN, 3),
        arch=float(rng.uniform(0.0, PHRASE_ARCH)),
        melody_boost=float(rng.uniform(*MELODY_BOOST)),
        accent=float(rng.uniform(*ACCENT)),
        velocity_jitter=float(rng.uniform(*VELOCITY_JITTER)),
        tempo=_tempo_map(rng, beats, bpm, phrase_beats, beats_per_bar),
    )


def _draw_textures(rng: np.random.Generator) -> tuple[str, ...]:
    if rng.random() < BOTH_HANDS_PROBABILITY:
        return (BOTH_HANDS[rng.integers(len(BOTH_HANDS))],)
    return LEFT_HAND[rng.integers(len(LEFT_HAND))], RIGHT_HAND[rng.integers(len(RIGHT_HAND))]


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


def _tempo_map(
    rng: np.random.Generator, beats: int, bpm: float, phrase_beats: int, beats_per_bar: int
) -> tuple[np.ndarray, np.ndarray]:
    """Beats on a fine grid and the seconds they fall at: a swell over each phrase, a ritardando at the end."""
    grid = np.arange((beats + TAIL_BEATS) * GRID_PER_BEAT + 1) / GRID_PER_BEAT
    middle = grid[:-1] + 0.5 / GRID_PER_BEAT
    depth = rng.uniform(0.0, RUBATO_DEPTH) if rng.random() < RUBATO_PROBABILITY else 0.0
    factor = 1.0 + depth * (np.sin(np.pi * (middle % phrase_beats) / phrase_beats) - 2.0 / np.pi)
    if rng.random() < RITARDANDO_PROBABILITY:
        x = np.clip((middle - (beats - beats_per_bar)) / beats_per_bar, 0.0, 1.0)
        factor *= 1.0 - rng.uniform(*RITARDANDO) * x * x * (3.0 - 2.0 * x)
    return grid, np.concatenate([[0.0], np.cumsum(60.0 / (bpm * factor) / GRID_PER_BEAT)])


def section_notes(rng: np.random.Generator, section: Section) -> Sounded:
    """Play a section: its textures, the pedal, the tempo curve, the dynamics; keys folded onto the keyboard."""
    onset, duration, key, role = (
        np.concatenate(column) for column in zip(*(TEXTURES[name].make(rng, section) for name in section.textures))
    )
    keep = (onset < section.beats) & (duration > 0)
    onset, duration, key, role = onset[keep], duration[keep], key[keep], role[keep]
    release = onset + duration
    if section.pedal:  # the pedal is lifted (and pressed again) at each change of harmony: keys ring to it
        lifts = np.append(section.harmony.start[1:], section.beats)
        after = np.searchsorted(lifts, release, side="left")
        release = np.where(after < len(lifts), lifts[np.minimum(after, len(lifts) - 1)], release)
    return Sounded(
        onset=section.seconds_at(onset),
        offset=section.seconds_at(release),
        key=onto_keyboard(key),
        velocity=_velocity(rng, section, onset, role),
        role=role,
    )


def onto_keyboard(key: np.ndarray) -> np.ndarray:
    """Fold keys above or below the piano by whole octaves onto it (keeping their pitch class)."""
    key = key - 12 * np.ceil(np.maximum(key - HIGHEST_KEY, 0) / 12).astype(np.int64)
    return key + 12 * np.ceil(np.maximum(LOWEST_KEY - key, 0) / 12).astype(np.int64)


def _velocity(rng: np.random.Generator, section: Section, onset: np.ndarray, role: np.ndarray) -> np.ndarray:
    """The section's hairpin, an arch over each phrase, accents on the beats, the role's boost, jitter."""
    curve = np.interp(onset / section.beats, (0.0, 0.5, 1.0), section.dynamics)
    arch = section.arch * np.sin(np.pi * (onset % section.phrase_beats) / section.phrase_beats)
    on_beat = np.isclose(onset, np.round(onset))
    downbeat = on_beat & (np.round(onset) % section.beats_per_bar == 0)
    accent = np.where(downbeat, section.accent, np.where(on_beat, section.accent / 3.0, 0.0))
    boost = np.array([0.0, BASS_BOOST, section.melody_boost])[role]
    return curve + arch + accent + boost + rng.normal(0.0, section.velocity_jitter, len(onset))


# Building blocks of the textures


def _part(onset: Any, duration: Any, key: Any, role: Any) -> Part:
    """A part from arrays (or scalars) that broadcast together, flattened."""
    onset, duration, key, role = np.broadcast_arrays(onset, duration, key, role)
    return Part(onset.ravel().astype(np.float64), duration.ravel().astype(np.float64), key.ravel(), role.ravel())


def _chosen(member: np.ndarray, onset: Any, duration: Any, key: Any, role: Any) -> Part:
    """A part from 2-D arrays (events x chord members, or anything broadcasting to them), where ``member``."""
    return _part(*(np.broadcast_to(column, member.shape)[member] for column in (onset, duration, key, role)))


def _join(*parts: Part) -> Part:
    return Part(*(np.concatenate(column) for column in zip(*parts)))


def _per_beat(section: Section, choices: tuple[int, ...], rate: float) -> int:
    """The subdivision among ``choices`` (notes per beat) whose notes per second come nearest ``rate``."""
    per_second = np.asarray(choices, dtype=np.float64) * section.bpm / 60.0
    return int(choices[int(np.argmin(np.abs(np.log(per_second / rate))))])


def _grid(section: Section, per_beat: int) -> tuple[np.ndarray, np.ndarray]:
    """Evenly spaced onsets through the section and the chord each falls in."""
    beats = np.arange(section.beats * per_beat) / per_beat
    return beats, section.harmony.unit_at(beats)


def _index_in_chord(section: Section, beats: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """How many grid onsets since the current chord began (chords start on grid points)."""
    first = np.searchsorted(beats, section.harmony.start - 1e-9)
    return np.arange(len(beats)) - first[unit]


def _root_from(section: Section, key: Any, unit: Any) -> np.ndarray:
    """The chord's root at or above ``key`` (within an octave)."""
    return key + (section.harmony.root[unit] - key) % 12


def _bounce(position: Any, low: Any, high: Any) -> np.ndarray:
    """Fold positions into low..high, turning at both ends (a line reversing at the edge of its range)."""
    span = np.maximum(np.asarray(high) - low, 1)
    folded = np.mod(np.asarray(position) - low, 2 * span)
    return low + np.where(folded > span, 2 * span - folded, folded)


def _cells(division: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A meter's melody cells as arrays: onsets [C, 4] (padded), counts, densest notes per beat, weights."""
    cells = MELODY_CELLS[division]
    onsets = np.zeros((len(cells), 4))
    counts = np.array([len(cell) for cell, _ in cells])
    densest = np.zeros(len(cells))
    for index, (cell, _) in enumerate(cells):
        onsets[index, : len(cell)] = cell
        if cell:
            densest[index] = 1.0 / np.diff([*cell, 1.0]).min()
    return onsets, counts, densest, np.array([weight for _, weight in cells])


CELL_TABLES = {division: _cells(division) for division in MELODY_CELLS}
HOLD, SINGLE = 0, 1  # the first two cells of every meter


# Left-hand textures


def alberti(rng: np.random.Generator, section: Section) -> Part:
    """Alberti bass: a close chord in the tenor broken low-high-middle-high, restarting at each chord."""
    per_beat = _per_beat(section, FIGURE_SUBDIVISIONS[section.division], rng.uniform(*FIGURE_RATE))
    beats, unit = _grid(section, per_beat)
    pattern = np.array(ALBERTI_PATTERNS[section.division])
    which = pattern[_index_in_chord(section, beats, unit) % len(pattern)]
    key = section.harmony.chord.step(unit, section.bass, which)
    duration = np.full(len(beats), rng.uniform(*LEGATO_GATE) / per_beat)
    if rng.random() < HELD_BASS_PROBABILITY:
        duration = np.where(which == 0, len(pattern) / per_beat, duration)
    return _part(beats, duration, key, np.where(which == 0, BASS, ACCOMPANIMENT))


def stride(rng: np.random.Generator, section: Section) -> Part:
    """Stride: the root (or the fifth below, later in the bar) on the strong beats, often in octaves, and a
    chord two octaves higher on the off-beats (waltz-like in triple meter)."""
    harmony = section.harmony
    beats = np.arange(section.beats, dtype=np.float64)
    unit = harmony.unit_at(beats)
    in_bar = np.arange(section.beats) % section.beats_per_bar
    chord_beat = (in_bar % 2 == 1) | ((section.beats_per_bar == 3) & (in_bar == 2))
    root = _root_from(section, section.bass, unit)
    fifth_below = np.where(root - 5 >= LOWEST_KEY, root - 5, root + 7)
    bass = np.where((in_bar == 0) | np.isin(beats, harmony.start), root, fifth_below)[~chord_beat]
    top = root[chord_beat] + int(rng.integers(STRIDE_CHORD_TOP[0], STRIDE_CHORD_TOP[1] + 1))
    chord = harmony.chord.step(unit[chord_beat, None], top[:, None] + 1, -1 - np.arange(int(rng.integers(3, 5))))
    bass_length, chord_length = rng.uniform(0.5, 0.9), rng.uniform(0.3, 0.6)
    parts = [
        _part(beats[~chord_beat], bass_length, bass, BASS),
        _part(beats[chord_beat, None], chord_length, chord, ACCOMPANIMENT),
    ]
    if rng.random() < BASS_OCTAVE_PROBABILITY:
        parts.append(_part(beats[~chord_beat], bass_length, bass - 12, BASS))
    return _join(*parts)


def broken_chords(rng: np.random.Generator, section: Section) -> Part:
    """Broken chords (nocturne style): from the root up the chord's tones over one to two octaves and back,
    the root held, the other notes ringing into the next ones."""
    per_beat = _per_beat(section, FIGURE_SUBDIVISIONS[section.division], rng.uniform(*FIGURE_RATE))
    beats, unit = _grid(section, per_beat)
    pattern = np.array(BROKEN_CHORD_PATTERNS[rng.integers(len(BROKEN_CHORD_PATTERNS))])
    position = _index_in_chord(section, beats, unit) % len(pattern)
    key = section.harmony.chord.step(unit, _root_from(section, section.bass, unit), pattern[position])
    duration = np.where(position == 0, len(pattern) / per_beat, rng.uniform(*BROKEN_CHORD_RING) / per_beat)
    return _part(beats, duration, key, np.where(position == 0, BASS, ACCOMPANIMENT))


def octave_bass(rng: np.random.Generator, section: Section) -> Part:
    """A bass line doubled an octave below or a tenth above: the root at each chord, then a walk through the
    chord's tones, and a scale step leading into the next root."""
    harmony = section.harmony
    per_beat = _per_beat(section, BASS_LINE_SUBDIVISIONS[section.division], rng.uniform(*BASS_LINE_RATE))
    beats, unit = _grid(section, per_beat)
    position = _index_in_chord(section, beats, unit)
    chords = len(harmony.start)
    root = _root_from(section, section.bass, np.arange(chords))
    following = root + (np.append(root[1:], root[-1]) - root + 6) % 12 - 6  # the next root, its nearest octave
    direction = rng.choice((-1, 1), chords)[unit]
    walk = harmony.chord.step(unit, root[unit], direction * _bounce(position, 0, BASS_WALK_SPAN))
    before = harmony.chord.step(unit, root[unit], direction * _bounce(position - 1, 0, BASS_WALK_SPAN))
    target = following[unit]
    leading = np.where(before > target, harmony.scale.step(unit, target + 1, 0), harmony.scale.step(unit, target, -1))
    last = (position == np.bincount(unit, minlength=chords)[unit] - 1) & (position > 0) & (unit < chords - 1)
    line = np.where(last, leading, walk)
    if rng.random() < TENTH_PROBABILITY:
        double = harmony.scale.at(unit, harmony.scale.index(unit, line) + 9)
    else:
        double = line - 12
    duration = rng.uniform(*DETACHED_GATE) / per_beat
    return _part(np.concatenate([beats, beats]), duration, np.concatenate([line, double]), BASS)


def sustained_bass(rng: np.random.Generator, section: Section) -> Part:
    """A bass note (often in octaves) at each change of harmony, held under a chord in the tenor."""
    harmony = section.harmony
    chords = np.arange(len(harmony.start))
    root = _root_from(section, section.bass, chords)
    length = harmony.end - harmony.start
    inner = harmony.chord.step(
        chords[:, None], root[:, None] + int(rng.integers(*INNER_VOICE_ABOVE)), np.arange(int(rng.integers(2, 4)))
    )
    delay = np.minimum(rng.choice(SUSTAINED_CHORD_DELAYS), length / 2)
    parts = [
        _part(harmony.start, length, root, BASS),
        _part((harmony.start + delay)[:, None], (length - delay)[:, None], inner, ACCOMPANIMENT),
    ]
    if rng.random() < BASS_OCTAVE_PROBABILITY:
        parts.append(_part(harmony.start, length, root - 12, BASS))
    return _join(*parts)


# Right-hand textures


def _melody_rhythm(rng: np.random.Generator, section: Section, densest: float) -> tuple[np.ndarray, np.ndarray]:
    """Onsets and lengths (beats) of a phrased line: rhythm cells per beat, each phrase ending on a long note
    and a breath. ``densest`` bounds the notes per beat."""
    onsets, counts, cell_densest, weights = CELL_TABLES[section.division]
    allowed = (cell_densest <= densest) & (cell_densest * section.bpm / 60.0 <= MELODY_MAX_RATE)
    weights = np.where(allowed, weights, 0.0)
    cell = rng.choice(len(weights), section.beats, p=weights / weights.sum())
    in_phrase = np.arange(section.beats) % section.phrase_beats
    cadence = section.phrase_beats - max(1, min(section.beats_per_bar, section.phrase_beats // 2))
    cell[(in_phrase == cadence) | ((in_phrase == 0) & ((counts[cell] == 0) | (onsets[cell, 0] > 0)))] = SINGLE
    cell[in_phrase > cadence] = HOLD
    count = counts[cell]
    beat = np.repeat(np.arange(section.beats), count)
    onset = beat + onsets[cell[beat], np.arange(len(beat)) - np.repeat(np.cumsum(count) - count, count)]
    phrase = onset // section.phrase_beats
    phrase_end = np.append(phrase[1:] != phrase[:-1], True)
    legato = (np.append(onset[1:], section.beats) - onset) * rng.uniform(*LEGATO_GATE)
    return onset, np.where(phrase_end, (phrase + 1) * section.phrase_beats - onset - MELODY_BREATH, legato)


def _melody_line(
    rng: np.random.Generator, section: Section, densest: float = 4.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A melody in the right hand's register: steps and leaps in the chord-scale (a leap is followed by a step
    back), chord tones on the beats and at phrase ends, the root at the end. Onsets, lengths, keys, chords."""
    harmony = section.harmony
    onset, duration = _melody_rhythm(rng, section, densest)
    unit = harmony.unit_at(onset)
    steps = rng.choice(MELODY_STEPS, len(onset), p=MELODY_STEP_WEIGHTS)
    steps[1:] = np.where(np.abs(steps[:-1]) >= 3, -np.sign(steps[:-1]), steps[1:])
    low, high = harmony.scale.index(0, section.low), harmony.scale.index(0, section.high)
    position = _bounce(rng.integers(low, high + 1) + np.cumsum(steps) - steps[0], low, high)
    key = harmony.scale.at(unit, position)
    phrase = onset // section.phrase_beats
    phrase_end = np.append(phrase[1:] != phrase[:-1], True)
    key = np.where((onset % 1 == 0) | phrase_end, harmony.chord.nearest(unit, key), key)
    key[-1] += (harmony.root[unit[-1]] - key[-1] + 6) % 12 - 6
    return onset, duration, key, unit


def melody(rng: np.random.Generator, section: Section) -> Part:
    """A melody over the accompaniment, sometimes doubled below in octaves, thirds or sixths."""
    onset, duration, key, unit = _melody_line(rng, section)
    doubling = list(MELODY_DOUBLINGS)[rng.choice(len(MELODY_DOUBLINGS), p=list(MELODY_DOUBLINGS.values()))]
    parts = [_part(onset, duration, key, MELODY)]
    if doubling == "octave":
        parts.append(_part(onset, duration, key - 12, MELODY))
    elif doubling in DOUBLING_STEPS:
        scale = section.harmony.scale
        parts.append(_part(onset, duration, scale.at(unit, scale.index(unit, key) + DOUBLING_STEPS[doubling]), MELODY))
    return _join(*parts)


def repeated_notes(rng: np.random.Generator, section: Section) -> Part:
    """Repeated notes, octaves or chords at a quick pulse, the top moving from chord to chord."""
    harmony = section.harmony
    per_beat = _per_beat(section, FIGURE_SUBDIVISIONS[section.division], rng.uniform(*REPEAT_RATE))
    beats, unit = _grid(section, per_beat)
    chords = len(harmony.start)
    line = np.clip(section.low + 7 + np.cumsum(rng.integers(-4, 5, chords)), section.low + 5, section.high)
    top = harmony.chord.nearest(np.arange(chords), line)[unit]
    duration = rng.uniform(*REPEAT_GATE) / per_beat
    form = rng.integers(3)
    if form == 0:
        return _part(beats, duration, top, MELODY)
    if form == 1:
        below = (top - 12)[:, None]
    else:
        below = harmony.chord.step(unit[:, None], top[:, None], np.array([-1, -2]))
    return _join(_part(beats, duration, top, MELODY), _part(beats[:, None], duration, below, ACCOMPANIMENT))


def ornaments(rng: np.random.Generator, section: Section) -> Part:
    """A slower melody whose notes carry trills (from the upper note, with a termination), turns, mordents."""
    onset, duration, key, unit = _melody_line(rng, section, densest=2.0)
    per_beat = rng.uniform(*ORNAMENT_RATE) * 60.0 / section.bpm  # ornament notes per beat
    fits = np.floor(duration * per_beat).astype(np.int64)  # ornament notes that fit in each note
    kind = rng.choice(len(ORNAMENTS), len(onset), p=ORNAMENT_WEIGHTS)
    lengths = np.array([len(pattern) for pattern in ORNAMENTS.values()])
    kind = np.where((fits <= lengths[kind]) | ((kind == TRILL) & (fits < 4)), PLAIN, kind)  # too short: plain
    count = np.where(kind == TRILL, fits, lengths[kind])
    note = np.repeat(np.arange(len(onset)), count)
    k = np.arange(len(note)) - np.repeat(np.cumsum(count) - count, count)  # ornament note k of the note
    last = count[note] - 1
    trill = np.where(k == last - 1, -1, (k + 1) % 2)  # upper, main, upper, ..., then lower, main
    shift = np.where(k == last, 0, np.where(kind[note] == TRILL, trill, ORNAMENT_TABLE[kind[note], np.minimum(k, 3)]))
    main, where = key[note], unit[note]
    played = np.select(
        [shift > 0, shift < 0],
        [section.harmony.scale.step(where, main + 1, 0), section.harmony.scale.step(where, main, -1)],
        main,
    )
    start = onset[note] + k / per_beat
    length = np.where(k == last, onset[note] + duration[note] - start, 1.0 / per_beat)
    return _part(start, length, played, MELODY)


def runs(rng: np.random.Generator, section: Section) -> Part:
    """Fast scale runs (in the chord-scale or chromatic, up to 16 notes per beat) filling the end of each chord,
    from a held chord tone, turning at the edges of their range; the next chord starts where a run ends."""
    harmony = section.harmony
    chords = len(harmony.start)
    chromatic = rng.random() < CHROMATIC_RUN_PROBABILITY
    ladder = Ladder.of(np.ones((chords, 12), dtype=bool)) if chromatic else harmony.scale
    per_beat = _per_beat(section, RUN_SUBDIVISIONS, rng.uniform(*RUN_RATE))
    run_beats = np.minimum(rng.choice(RUN_BEATS), harmony.end - harmony.start)
    held = harmony.end - harmony.start - run_beats
    count = np.round(run_beats * per_beat).astype(np.int64)
    low = max(section.low - 7, 36)
    high = min(low + int(rng.integers(*RUN_SPAN)), HIGHEST_KEY)
    each = np.arange(chords)
    bottom, top = ladder.index(each, low), ladder.index(each, high + 1) - 1
    first = (held > 0).astype(np.int64)  # a held chord tone comes first; else the run starts on the beat
    start, direction = np.empty(chords, dtype=np.int64), np.empty(chords, dtype=np.int64)
    turned = rng.random(chords) < RUN_TURN_PROBABILITY
    key = int(rng.integers(low, high + 1))
    for chord in range(chords):  # each chord's run sets where the next begins
        start[chord] = harmony.chord.nearest(chord, key)
        direction[chord] = (1 if start[chord] < (low + high) / 2 else -1) * (-1 if turned[chord] else 1)
        end = ladder.index(chord, start[chord]) + direction[chord] * (count[chord] + first[chord])
        key = int(ladder.at(chord, _bounce(end, bottom[chord], top[chord])))
    run = np.repeat(each, count)
    k = np.arange(len(run)) - np.repeat(np.cumsum(count) - count, count)
    position = ladder.index(run, start[run]) + direction[run] * (k + first[run])
    keys = ladder.at(run, _bounce(position, bottom[run], top[run]))
    onsets = harmony.end[run] - run_beats[run] + k / per_beat
    gate = rng.uniform(*LEGATO_GATE)
    has_held = held > 0
    return _join(
        _part(harmony.start[has_held], held[has_held] * gate, start[has_held], MELODY),
        _part(onsets, gate / per_beat, keys, MELODY),
    )


def parallel_octaves(rng: np.random.Generator, section: Section) -> Part:
    """A line in octaves, mostly by step with turns, chord tones at each chord; sometimes filled with a third
    note between."""
    harmony = section.harmony
    per_beat = _per_beat(section, LINE_SUBDIVISIONS[section.division], rng.uniform(*OCTAVE_RATE))
    beats, unit = _grid(section, per_beat)
    turn = rng.random(len(beats)) < OCTAVE_TURN_PROBABILITY
    steps = np.cumprod(np.where(turn, -1, 1)) * rng.choice((-1, 1)) * rng.choice((1, 1, 1, 2), len(beats))
    low = harmony.scale.index(0, section.low + 12)
    high = harmony.scale.index(0, max(section.high, section.low + 19))
    top = harmony.scale.at(unit, _bounce(rng.integers(low, high + 1) + np.cumsum(steps), low, high))
    top = np.where(_index_in_chord(section, beats, unit) == 0, harmony.chord.nearest(unit, top), top)
    duration = rng.uniform(*LEGATO_GATE) / per_beat
    parts = [_part(beats, duration, top, MELODY), _part(beats, duration, top - 12, MELODY)]
    if rng.random() < FILLED_OCTAVE_PROBABILITY:
        parts.append(_part(beats, duration, harmony.chord.step(unit, top - 11, 0), ACCOMPANIMENT))
    return _join(*parts)


# Both hands


def block_chords(rng: np.random.Generator, section: Section) -> Part:
    """Full chords in both hands, 6..10 keys at once: root and octave (and fifth) in the left hand, close
    chord tones in the right, its top note the melody."""
    harmony = section.harmony
    spacings = [s for s in BLOCK_SPACING_BEATS if s * 60.0 / section.bpm >= 1.0 / BLOCK_MAX_RATE] or [2.0]
    onset = np.union1d(np.arange(0.0, section.beats, rng.choice(spacings)), harmony.start)
    unit = harmony.unit_at(onset)
    size = rng.integers(BLOCK_SIZE[0], BLOCK_SIZE[1] + 1, len(onset))
    left = rng.integers(2, 4, len(onset))
    root = _root_from(section, section.bass, unit)
    left_keys = np.stack([root, root + 12, harmony.chord.step(unit, root, 2)], axis=1)
    bottom = section.low + np.clip(np.cumsum(rng.integers(-2, 3, len(onset))), 0, BLOCK_DRIFT)
    right_keys = harmony.chord.step(unit[:, None], bottom[:, None], np.arange(BLOCK_SIZE[1] - 2))
    right = size - left
    right_role = np.where(np.arange(BLOCK_SIZE[1] - 2) == right[:, None] - 1, MELODY, ACCOMPANIMENT)
    length = (np.append(onset[1:], section.beats) - onset) * rng.uniform(0.6, 1.0)
    return _join(
        _chosen(
            np.arange(3) < left[:, None],
            onset[:, None],
            length[:, None],
            left_keys,
            np.array([BASS, ACCOMPANIMENT, ACCOMPANIMENT]),
        ),
        _chosen(np.arange(BLOCK_SIZE[1] - 2) < right[:, None], onset[:, None], length[:, None], right_keys, right_role),
    )


def arpeggio(rng: np.random.Generator, section: Section) -> Part:
    """Sweeping arpeggios over 3..5 octaves, up and down through the chord's triad without a break, from the
    root held below; the top of each sweep is the melody."""
    harmony = section.harmony
    per_beat = _per_beat(section, ARPEGGIO_SUBDIVISIONS[section.division], rng.uniform(*ARPEGGIO_RATE))
    beats, unit = _grid(section, per_beat)
    octaves = min(int(rng.integers(ARPEGGIO_OCTAVES[0], ARPEGGIO_OCTAVES[1] + 1)), max(3, (len(beats) - 3) // 3))
    top = 3 * octaves  # triad tones above the anchor: the sweep spans `octaves` over the bass
    step = _bounce(np.arange(len(beats)), 0, top)
    key = harmony.triad.step(unit, section.bass, step)
    ring = rng.uniform(*BROKEN_CHORD_RING) / per_beat
    bass = section.bass - 12 + (harmony.root - section.bass) % 12  # the root an octave under the anchor
    return _join(
        _part(beats, ring, key, np.where(step == top, MELODY, ACCOMPANIMENT)),
        _part(harmony.start, harmony.end - harmony.start, bass, BASS),
    )


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
