"""Pianistic textures for both hands at once: block chords of 6..10 keys, arpeggios over 3..5 octaves."""

from __future__ import annotations

import numpy as np

from builder.corpus.sources.pianistic.section import (
    ACCOMPANIMENT,
    BASS,
    BROKEN_CHORD_RING,
    MELODY,
    Part,
    Section,
    bounce,
    chosen_part,
    grid_of,
    join_parts,
    make_part,
    root_at_or_above,
    subdivision_near,
)

BLOCK_SPACING_BEATS = (0.5, 1.0, 2.0)
BLOCK_MAX_RATE = 4.0  # chords per second
BLOCK_SIZE = (6, 10)  # keys struck together by both hands
BLOCK_DRIFT = 6  # semitones the right hand's lowest chord note wanders above the register's bottom
ARPEGGIO_SUBDIVISIONS = {2: (4, 6, 8), 3: (3, 6, 12)}
ARPEGGIO_RATE = (8.0, 14.0)
ARPEGGIO_OCTAVES = (3, 5)


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
    root = root_at_or_above(section, section.bass, unit)
    left_keys = np.stack([root, root + 12, harmony.chord.step(unit, root, 2)], axis=1)
    bottom = section.low + np.clip(np.cumsum(rng.integers(-2, 3, len(onset))), 0, BLOCK_DRIFT)
    right_keys = harmony.chord.step(unit[:, None], bottom[:, None], np.arange(BLOCK_SIZE[1] - 2))
    right = size - left
    right_role = np.where(np.arange(BLOCK_SIZE[1] - 2) == right[:, None] - 1, MELODY, ACCOMPANIMENT)
    length = (np.append(onset[1:], section.beats) - onset) * rng.uniform(0.6, 1.0)
    return join_parts(
        chosen_part(
            np.arange(3) < left[:, None],
            onset[:, None],
            length[:, None],
            left_keys,
            np.array([BASS, ACCOMPANIMENT, ACCOMPANIMENT]),
        ),
        chosen_part(
            np.arange(BLOCK_SIZE[1] - 2) < right[:, None], onset[:, None], length[:, None], right_keys, right_role
        ),
    )


def arpeggio(rng: np.random.Generator, section: Section) -> Part:
    """Sweeping arpeggios over 3..5 octaves, up and down through the chord's triad without a break, from the
    root held below; the top of each sweep is the melody."""
    harmony = section.harmony
    per_beat = subdivision_near(section, ARPEGGIO_SUBDIVISIONS[section.division], rng.uniform(*ARPEGGIO_RATE))
    beats, unit = grid_of(section, per_beat)
    octaves = min(int(rng.integers(ARPEGGIO_OCTAVES[0], ARPEGGIO_OCTAVES[1] + 1)), max(3, (len(beats) - 3) // 3))
    top = 3 * octaves  # triad tones above the anchor: the sweep spans `octaves` over the bass
    step = bounce(np.arange(len(beats)), 0, top)
    key = harmony.triad.step(unit, section.bass, step)
    ring = rng.uniform(*BROKEN_CHORD_RING) / per_beat
    bass = section.bass - 12 + (harmony.root - section.bass) % 12  # the root an octave under the anchor
    return join_parts(
        make_part(beats, ring, key, np.where(step == top, MELODY, ACCOMPANIMENT)),
        make_part(harmony.start, harmony.end - harmony.start, bass, BASS),
    )
