"""Right-hand pianistic textures: a melody (maybe doubled), repeated notes, ornaments, runs, parallel octaves."""

from __future__ import annotations

import numpy as np

from builder.corpus.sources.pianistic.harmony import Ladder
from builder.corpus.sources.pianistic.section import (
    ACCOMPANIMENT,
    FIGURE_SUBDIVISIONS,
    LEGATO_GATE,
    LINE_SUBDIVISIONS,
    MELODY,
    Part,
    Section,
    bounce,
    grid_of,
    index_in_chord,
    join_parts,
    make_part,
    subdivision_near,
)
from pianoscribe.constants import HIGHEST_KEY

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
    position = bounce(rng.integers(low, high + 1) + np.cumsum(steps) - steps[0], low, high)
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
    parts = [make_part(onset, duration, key, MELODY)]
    if doubling == "octave":
        parts.append(make_part(onset, duration, key - 12, MELODY))
    elif doubling in DOUBLING_STEPS:
        scale = section.harmony.scale
        parts.append(
            make_part(onset, duration, scale.at(unit, scale.index(unit, key) + DOUBLING_STEPS[doubling]), MELODY)
        )
    return join_parts(*parts)


def repeated_notes(rng: np.random.Generator, section: Section) -> Part:
    """Repeated notes, octaves or chords at a quick pulse, the top moving from chord to chord."""
    harmony = section.harmony
    per_beat = subdivision_near(section, FIGURE_SUBDIVISIONS[section.division], rng.uniform(*REPEAT_RATE))
    beats, unit = grid_of(section, per_beat)
    chords = len(harmony.start)
    line = np.clip(section.low + 7 + np.cumsum(rng.integers(-4, 5, chords)), section.low + 5, section.high)
    top = harmony.chord.nearest(np.arange(chords), line)[unit]
    duration = rng.uniform(*REPEAT_GATE) / per_beat
    form = rng.integers(3)
    if form == 0:
        return make_part(beats, duration, top, MELODY)
    if form == 1:
        below = (top - 12)[:, None]
    else:
        below = harmony.chord.step(unit[:, None], top[:, None], np.array([-1, -2]))
    return join_parts(
        make_part(beats, duration, top, MELODY), make_part(beats[:, None], duration, below, ACCOMPANIMENT)
    )


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
    return make_part(start, length, played, MELODY)


def runs(rng: np.random.Generator, section: Section) -> Part:
    """Fast scale runs (in the chord-scale or chromatic, up to 16 notes per beat) filling the end of each chord,
    from a held chord tone, turning at the edges of their range; the next chord starts where a run ends."""
    harmony = section.harmony
    chords = len(harmony.start)
    chromatic = rng.random() < CHROMATIC_RUN_PROBABILITY
    ladder = Ladder.of(np.ones((chords, 12), dtype=bool)) if chromatic else harmony.scale
    per_beat = subdivision_near(section, RUN_SUBDIVISIONS, rng.uniform(*RUN_RATE))
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
        key = int(ladder.at(chord, bounce(end, bottom[chord], top[chord])))
    run = np.repeat(each, count)
    k = np.arange(len(run)) - np.repeat(np.cumsum(count) - count, count)
    position = ladder.index(run, start[run]) + direction[run] * (k + first[run])
    keys = ladder.at(run, bounce(position, bottom[run], top[run]))
    onsets = harmony.end[run] - run_beats[run] + k / per_beat
    gate = rng.uniform(*LEGATO_GATE)
    has_held = held > 0
    return join_parts(
        make_part(harmony.start[has_held], held[has_held] * gate, start[has_held], MELODY),
        make_part(onsets, gate / per_beat, keys, MELODY),
    )


def parallel_octaves(rng: np.random.Generator, section: Section) -> Part:
    """A line in octaves, mostly by step with turns, chord tones at each chord; sometimes filled with a third
    note between."""
    harmony = section.harmony
    per_beat = subdivision_near(section, LINE_SUBDIVISIONS[section.division], rng.uniform(*OCTAVE_RATE))
    beats, unit = grid_of(section, per_beat)
    turn = rng.random(len(beats)) < OCTAVE_TURN_PROBABILITY
    steps = np.cumprod(np.where(turn, -1, 1)) * rng.choice((-1, 1)) * rng.choice((1, 1, 1, 2), len(beats))
    low = harmony.scale.index(0, section.low + 12)
    high = harmony.scale.index(0, max(section.high, section.low + 19))
    top = harmony.scale.at(unit, bounce(rng.integers(low, high + 1) + np.cumsum(steps), low, high))
    top = np.where(index_in_chord(section, beats, unit) == 0, harmony.chord.nearest(unit, top), top)
    duration = rng.uniform(*LEGATO_GATE) / per_beat
    parts = [make_part(beats, duration, top, MELODY), make_part(beats, duration, top - 12, MELODY)]
    if rng.random() < FILLED_OCTAVE_PROBABILITY:
        parts.append(make_part(beats, duration, harmony.chord.step(unit, top - 11, 0), ACCOMPANIMENT))
    return join_parts(*parts)
