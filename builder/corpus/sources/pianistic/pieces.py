"""Pianistic pieces: sections back to back (meter, key, tempo curve, register, dynamics), each played in its
textures, with the pedal, and humanized."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from builder.corpus.generated import generator_settings
from builder.corpus.notes import DropCounts, Piece, clean_notes, merge_unisons
from builder.corpus.sources.pianistic.harmony import MODE_WEIGHTS, MODES, PROGRESSIONS, draw_harmony
from builder.corpus.sources.pianistic.section import Section
from builder.corpus.sources.pianistic.textures import BOTH_HANDS, LEFT_HAND, RIGHT_HAND, TEXTURES
from pianoscribe.constants import HIGHEST_KEY, LOWEST_KEY

GENERATOR_VERSION = 1

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


class Sounded(NamedTuple):
    """A section's notes as played, in seconds of the piece (keys on the keyboard, velocities unclipped)."""

    onset: np.ndarray
    offset: np.ndarray
    key: np.ndarray
    velocity: np.ndarray
    role: np.ndarray


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
