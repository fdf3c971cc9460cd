"""Left-hand pianistic textures: accompaniments under a melody (Alberti and stride basses, broken chords, a bass
line in octaves or tenths, a sustained bass under a tenor chord)."""

from __future__ import annotations

import numpy as np

from builder.corpus.sources.pianistic.section import (
    ACCOMPANIMENT,
    BASS,
    BROKEN_CHORD_RING,
    DETACHED_GATE,
    FIGURE_RATE,
    FIGURE_SUBDIVISIONS,
    LEGATO_GATE,
    Part,
    Section,
    bounce,
    grid_of,
    index_in_chord,
    join_parts,
    make_part,
    root_at_or_above,
    subdivision_near,
)
from pianoscribe.constants import LOWEST_KEY

ALBERTI_PATTERNS = {2: (0, 2, 1, 2), 3: (0, 2, 1, 2, 1, 2)}  # chord tones above the anchor: low-high-middle-high
HELD_BASS_PROBABILITY = 0.4  # the low note of a figure held through it (a finger pedal)
STRIDE_CHORD_TOP = (29, 31)  # the off-beat chord's top is this far above the bar's root: at least two octaves
BASS_OCTAVE_PROBABILITY = 0.6  # a stride or sustained bass in octaves
BROKEN_CHORD_PATTERNS = ((0, 2, 4, 2), (0, 2, 3, 4, 3, 2), (0, 2, 4, 5, 4, 2), (0, 1, 2, 3, 4, 3, 2, 1))
BASS_LINE_SUBDIVISIONS = {2: (1, 2), 3: (1, 3)}
BASS_LINE_RATE = (1.5, 5.0)
BASS_WALK_SPAN = 4  # a bass line walks at most this many chord tones from the root before turning
TENTH_PROBABILITY = 0.4  # the bass line doubled a tenth above, else an octave below
INNER_VOICE_ABOVE = (10, 17)  # a sustained bass's chord starts this far above it
SUSTAINED_CHORD_DELAYS = (0.0, 0.5, 1.0)  # beats after the bass the tenor chord comes in


# Left-hand textures


def alberti(rng: np.random.Generator, section: Section) -> Part:
    """Alberti bass: a close chord in the tenor broken low-high-middle-high, restarting at each chord."""
    per_beat = subdivision_near(section, FIGURE_SUBDIVISIONS[section.division], rng.uniform(*FIGURE_RATE))
    beats, unit = grid_of(section, per_beat)
    pattern = np.array(ALBERTI_PATTERNS[section.division])
    which = pattern[index_in_chord(section, beats, unit) % len(pattern)]
    key = section.harmony.chord.step(unit, section.bass, which)
    duration = np.full(len(beats), rng.uniform(*LEGATO_GATE) / per_beat)
    if rng.random() < HELD_BASS_PROBABILITY:
        duration = np.where(which == 0, len(pattern) / per_beat, duration)
    return make_part(beats, duration, key, np.where(which == 0, BASS, ACCOMPANIMENT))


def stride(rng: np.random.Generator, section: Section) -> Part:
    """Stride: the root (or the fifth below, later in the bar) on the strong beats, often in octaves, and a
    chord two octaves higher on the off-beats (waltz-like in triple meter)."""
    harmony = section.harmony
    beats = np.arange(section.beats, dtype=np.float64)
    unit = harmony.unit_at(beats)
    in_bar = np.arange(section.beats) % section.beats_per_bar
    chord_beat = (in_bar % 2 == 1) | ((section.beats_per_bar == 3) & (in_bar == 2))
    root = root_at_or_above(section, section.bass, unit)
    fifth_below = np.where(root - 5 >= LOWEST_KEY, root - 5, root + 7)
    bass = np.where((in_bar == 0) | np.isin(beats, harmony.start), root, fifth_below)[~chord_beat]
    top = root[chord_beat] + int(rng.integers(STRIDE_CHORD_TOP[0], STRIDE_CHORD_TOP[1] + 1))
    chord = harmony.chord.step(unit[chord_beat, None], top[:, None] + 1, -1 - np.arange(int(rng.integers(3, 5))))
    bass_length, chord_length = rng.uniform(0.5, 0.9), rng.uniform(0.3, 0.6)
    parts = [
        make_part(beats[~chord_beat], bass_length, bass, BASS),
        make_part(beats[chord_beat, None], chord_length, chord, ACCOMPANIMENT),
    ]
    if rng.random() < BASS_OCTAVE_PROBABILITY:
        parts.append(make_part(beats[~chord_beat], bass_length, bass - 12, BASS))
    return join_parts(*parts)


def broken_chords(rng: np.random.Generator, section: Section) -> Part:
    """Broken chords (nocturne style): from the root up the chord's tones over one to two octaves and back,
    the root held, the other notes ringing into the next ones."""
    per_beat = subdivision_near(section, FIGURE_SUBDIVISIONS[section.division], rng.uniform(*FIGURE_RATE))
    beats, unit = grid_of(section, per_beat)
    pattern = np.array(BROKEN_CHORD_PATTERNS[rng.integers(len(BROKEN_CHORD_PATTERNS))])
    position = index_in_chord(section, beats, unit) % len(pattern)
    key = section.harmony.chord.step(unit, root_at_or_above(section, section.bass, unit), pattern[position])
    duration = np.where(position == 0, len(pattern) / per_beat, rng.uniform(*BROKEN_CHORD_RING) / per_beat)
    return make_part(beats, duration, key, np.where(position == 0, BASS, ACCOMPANIMENT))


def octave_bass(rng: np.random.Generator, section: Section) -> Part:
    """A bass line doubled an octave below or a tenth above: the root at each chord, then a walk through the
    chord's tones, and a scale step leading into the next root."""
    harmony = section.harmony
    per_beat = subdivision_near(section, BASS_LINE_SUBDIVISIONS[section.division], rng.uniform(*BASS_LINE_RATE))
    beats, unit = grid_of(section, per_beat)
    position = index_in_chord(section, beats, unit)
    chords = len(harmony.start)
    root = root_at_or_above(section, section.bass, np.arange(chords))
    following = root + (np.append(root[1:], root[-1]) - root + 6) % 12 - 6  # the next root, its nearest octave
    direction = rng.choice((-1, 1), chords)[unit]
    walk = harmony.chord.step(unit, root[unit], direction * bounce(position, 0, BASS_WALK_SPAN))
    before = harmony.chord.step(unit, root[unit], direction * bounce(position - 1, 0, BASS_WALK_SPAN))
    target = following[unit]
    leading = np.where(before > target, harmony.scale.step(unit, target + 1, 0), harmony.scale.step(unit, target, -1))
    last = (position == np.bincount(unit, minlength=chords)[unit] - 1) & (position > 0) & (unit < chords - 1)
    line = np.where(last, leading, walk)
    if rng.random() < TENTH_PROBABILITY:
        double = harmony.scale.at(unit, harmony.scale.index(unit, line) + 9)
    else:
        double = line - 12
    duration = rng.uniform(*DETACHED_GATE) / per_beat
    return make_part(np.concatenate([beats, beats]), duration, np.concatenate([line, double]), BASS)


def sustained_bass(rng: np.random.Generator, section: Section) -> Part:
    """A bass note (often in octaves) at each change of harmony, held under a chord in the tenor."""
    harmony = section.harmony
    chords = np.arange(len(harmony.start))
    root = root_at_or_above(section, section.bass, chords)
    length = harmony.end - harmony.start
    inner = harmony.chord.step(
        chords[:, None], root[:, None] + int(rng.integers(*INNER_VOICE_ABOVE)), np.arange(int(rng.integers(2, 4)))
    )
    delay = np.minimum(rng.choice(SUSTAINED_CHORD_DELAYS), length / 2)
    parts = [
        make_part(harmony.start, length, root, BASS),
        make_part((harmony.start + delay)[:, None], (length - delay)[:, None], inner, ACCOMPANIMENT),
    ]
    if rng.random() < BASS_OCTAVE_PROBABILITY:
        parts.append(make_part(harmony.start, length, root - 12, BASS))
    return join_parts(*parts)
