"""The built-in ``procedural`` corpus: generated piano textures over all 88 keys, reproducible from a seed.

The chorales never reach the lowest and highest keys and have one texture, so this generator supplies what
they lack: chords, scales (parallel lines), arpeggios, random clusters and melody-over-chords, each section with
its own tempo (45..190 bpm, 1..4 events per beat), register (a sixth of sections pinned to each end of the
keyboard), 1..10 notes struck together, velocity ramp (15..122) with jitter, articulation (staccato to
overlapping legato) and, in about a third of sections, pedal-like sustain (note-offs held to the next pedal
change). Pedal and legato can make more than 10 keys sound at once; what is bounded is how many are struck
together. Notes are then made playable on one piano (:func:`builder.corpus.notes.merge_unisons`).

Piece ``index`` draws from ``numpy.random.default_rng([seed, index])``, so a piece does not depend on how many
pieces are made, and the same seed gives the same corpus bytes. Work is vectorized per section.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from builder.corpus.generated import generator_settings
from builder.corpus.notes import DropCounts, Piece, clean_notes, merge_unisons
from pianoscribe.constants import HIGHEST_KEY, LOWEST_KEY

GENERATOR_VERSION = 1
MAX_POLYPHONY = 10
SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "chromatic": tuple(range(12)),
    "pentatonic": (0, 2, 4, 7, 9),
    "whole_tone": (0, 2, 4, 6, 8, 10),
    "octatonic": (0, 1, 3, 4, 6, 7, 9, 10),
}
CHORD_TEMPLATES = (
    (0, 4, 7),
    (0, 3, 7),
    (0, 4, 7, 10),
    (0, 3, 7, 10),
    (0, 4, 7, 11),
    (0, 5, 7),
    (0, 3, 6, 9),
    (0, 2, 7),
    (0, 4, 8),
)
CHORD_STACK_INTERVALS = np.array([3, 4, 5, 7, 8, 9, 12])
TEXTURES = ("chords", "scale", "arpeggio", "cluster", "melody_and_chords")
ONSET_JITTER_SECONDS = 0.004
MIN_NOTE_SECONDS = 0.03


@dataclass
class Section:
    """The style of a stretch of a piece; every texture reads its timing, register and dynamics from here."""

    start: float
    end: float
    step: float  # seconds between consecutive events of one voice
    polyphony: int  # at most this many notes struck together
    low: int  # register, MIDI keys inclusive
    high: int
    velocity_from: float  # velocity ramps linearly across the section
    velocity_to: float
    velocity_jitter: float
    gate: float  # note length / time to the voice's next event
    pedal_period: float  # 0 = no pedal; else notes are held to the next multiple of this after the start


def procedural_pieces(settings: dict[str, Any], dropped: DropCounts) -> tuple[list[Piece], dict[str, Any]]:
    """``settings["pieces"]`` pieces of ``settings["seconds"]`` each, ids ``procedural/<seed>/<index:05d>``."""
    pieces_count, seconds, seed = checked_settings(settings)
    pieces = []
    texture_counts = dict.fromkeys(TEXTURES, 0)
    for index in range(pieces_count):
        rng = np.random.default_rng([seed, index])
        notes, textures = procedural_notes(rng, seconds, dropped)
        for texture in textures:
            texture_counts[texture] += 1
        pieces.append(Piece(piece_id=f"procedural/{seed}/{index:05d}", notes=notes))
    record = {
        "source": "procedural",
        "seed": seed,
        "pieces": pieces_count,
        "seconds": seconds,
        "generator_version": GENERATOR_VERSION,
        "sections_by_texture": texture_counts,
    }
    return pieces, record


def checked_settings(settings: dict[str, Any]) -> tuple[int, float, int]:
    """(pieces, seconds, seed) from the ``corpus.procedural`` section, or a UserError naming the bad key."""
    return generator_settings(settings, "procedural")


def procedural_notes(
    rng: np.random.Generator, seconds: float, dropped: DropCounts | None = None
) -> tuple[np.ndarray, list[str]]:
    """One piece of ``seconds``: sections of random textures back to back; returns its notes and textures."""
    columns: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    textures: list[str] = []
    time = 0.0
    while time < seconds:
        section = random_section(rng, time, min(time + rng.uniform(2.5, 8.0), seconds))
        texture = TEXTURES[rng.integers(len(TEXTURES))]
        onset, duration, key = TEXTURE_GENERATORS[texture](rng, section)
        columns.append(_finish_section(rng, section, onset, duration, key))
        textures.append(texture)
        time = section.end
    onset, offset, key, velocity = (np.concatenate(column) for column in zip(*columns))
    notes = merge_unisons(clean_notes(onset, offset, key, velocity, dropped))
    # Humanize timing only now, so keys doubled within one chord have merged exactly instead of leaving
    # millisecond-long notes; the jitter moves whole notes, so lengths stay as drawn.
    shift = rng.normal(0.0, ONSET_JITTER_SECONDS, len(notes))
    shift = np.maximum(shift, -notes["onset"])
    notes["onset"] += shift
    notes["offset"] = np.minimum(notes["offset"] + shift, seconds)
    notes = limit_polyphony(merge_unisons(notes[notes["offset"] > notes["onset"]]), MAX_POLYPHONY)
    # A note cut to a blip (stolen or re-struck right after its onset) would only teach spurious onsets.
    return notes[notes["offset"] - notes["onset"] >= MIN_NOTE_SECONDS / 2], textures


def limit_polyphony(notes: np.ndarray, limit: int) -> np.ndarray:
    """End the oldest sounding note when a new one would make more than ``limit`` keys sound at once.

    Pedal and legato pile notes up; a cap keeps every texture inside the 1..10 polyphony the corpus
    promises, the way a synthesizer steals its oldest voice. One pass in onset order (a heap of offsets for
    notes that end by themselves, a heap of onsets for the oldest still sounding).
    """
    import heapq

    onset, offset = notes["onset"], notes["offset"].copy()
    order = np.argsort(onset, kind="stable")
    ending: list[tuple[float, int]] = []  # (offset, index) of sounding notes
    oldest: list[int] = []  # positions in ``order`` of sounding notes (earliest onset first)
    sounding = np.zeros(len(notes), dtype=bool)
    count = 0
    for position, index in enumerate(order.tolist()):
        now = onset[index]
        while ending and ending[0][0] <= now:
            _, ended = heapq.heappop(ending)
            if sounding[ended] and offset[ended] <= now:
                sounding[ended] = False
                count -= 1
        while count >= limit:
            stolen = int(order[heapq.heappop(oldest)])
            if sounding[stolen]:
                offset[stolen] = now
                sounding[stolen] = False
                count -= 1
        sounding[index] = True
        count += 1
        heapq.heappush(ending, (offset[index], index))
        heapq.heappush(oldest, position)
    limited = notes.copy()
    limited["offset"] = offset
    return limited[limited["offset"] > limited["onset"]]


def random_section(rng: np.random.Generator, start: float, end: float) -> Section:
    """Draw a section's style; a sixth of registers touch key 21 and a sixth key 108, so the ends are covered."""
    beats_per_minute = rng.uniform(45.0, 190.0)
    step = max(60.0 / beats_per_minute / rng.integers(1, 5), 0.06)
    width = int(rng.integers(12, HIGHEST_KEY - LOWEST_KEY + 1))  # keys above the lowest of the register
    placement = rng.random()
    if placement < 1 / 6:
        low = LOWEST_KEY
    elif placement < 2 / 6:
        low = HIGHEST_KEY - width
    else:
        low = int(rng.integers(LOWEST_KEY, HIGHEST_KEY - width + 1))
    high = low + width
    velocity_from, velocity_to = rng.uniform(15.0, 122.0, 2)
    pedal_period = step * int(rng.integers(2, 9)) if rng.random() < 0.35 else 0.0
    return Section(
        start=start,
        end=end,
        step=step,
        polyphony=int(rng.integers(1, MAX_POLYPHONY + 1)),
        low=low,
        high=high,
        velocity_from=velocity_from,
        velocity_to=velocity_to,
        velocity_jitter=rng.uniform(2.0, 12.0),
        gate=rng.uniform(0.2, 1.5),
        pedal_period=pedal_period,
    )


def _finish_section(
    rng: np.random.Generator, section: Section, onset: np.ndarray, duration: np.ndarray, key: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Apply the pedal and draw velocities along the section's ramp."""
    offset = onset + np.maximum(duration, MIN_NOTE_SECONDS)
    if section.pedal_period > 0:
        changes = np.ceil((offset - section.start) / section.pedal_period)
        offset = np.maximum(offset, section.start + changes * section.pedal_period)
    progress = (onset - section.start) / max(section.end - section.start, 1e-9)
    level = section.velocity_from + (section.velocity_to - section.velocity_from) * progress
    velocity = level + rng.normal(0.0, section.velocity_jitter, len(onset))
    keep = onset < section.end
    return onset[keep], offset[keep], key[keep], velocity[keep]


def _event_times(section: Section, spacing: float) -> np.ndarray:
    return np.arange(section.start, section.end, spacing)


def _into_register(key: np.ndarray, low: int, high: int) -> np.ndarray:
    """Shift keys by octaves into [low, high] (keeping pitch class), then clip what a narrow range cannot hold."""
    above = np.maximum(key - high, 0)
    key = key - 12 * np.ceil(above / 12).astype(np.int64)
    below = np.maximum(low - key, 0)
    key = key + 12 * np.ceil(below / 12).astype(np.int64)
    return np.clip(key, LOWEST_KEY, HIGHEST_KEY)


def _reflect(position: np.ndarray, top: int) -> np.ndarray:
    """Fold a walk into 0..top, bouncing off both ends (a scale turning around at the edge of its register)."""
    if top <= 0:
        return np.zeros_like(position)
    period = 2 * top
    folded = np.mod(position, period)
    return np.where(folded > top, period - folded, folded)


def _struck_together(rng: np.random.Generator, count: int, polyphony: int) -> np.ndarray:
    """[count, MAX_POLYPHONY] mask of which of up to 10 chord members sound at each event."""
    sizes = rng.integers(1, polyphony + 1, count)
    return np.arange(MAX_POLYPHONY)[None, :] < sizes[:, None]


def chords(rng: np.random.Generator, section: Section) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block chords: stacked thirds, fourths, fifths and octaves on random roots, 1..polyphony notes each."""
    spacing = section.step * int(rng.integers(1, 5))
    times = _event_times(section, spacing)
    roots = rng.integers(section.low, section.high + 1, len(times))
    stacks = np.cumsum(rng.choice(CHORD_STACK_INTERVALS, (len(times), MAX_POLYPHONY - 1)), axis=1)
    keys = roots[:, None] + np.concatenate([np.zeros((len(times), 1), dtype=np.int64), stacks], axis=1)
    members = _struck_together(rng, len(times), section.polyphony)
    onset = np.broadcast_to(times[:, None], keys.shape)[members]
    duration = spacing * section.gate * rng.lognormal(0.0, 0.15, int(members.sum()))
    return onset, duration, _into_register(keys[members], section.low, section.high)


def scale(rng: np.random.Generator, section: Section) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale runs that turn at the register's edges, in up to four parallel voices (thirds, fifths, ...)."""
    steps = SCALES[list(SCALES)[rng.integers(len(SCALES))]]
    tonic = int(rng.integers(12))
    all_keys = np.arange(LOWEST_KEY, HIGHEST_KEY + 1)
    in_scale = all_keys[np.isin((all_keys - tonic) % 12, steps)]
    pitches = in_scale[(in_scale >= section.low) & (in_scale <= section.high)]
    if len(pitches) < 2:
        pitches = in_scale
    times = _event_times(section, section.step)
    turns = np.where(rng.random(len(times)) < 0.08, -1, 1)
    direction = np.cumprod(turns) * rng.choice([-1, 1])
    position = int(rng.integers(len(pitches))) + np.cumsum(direction * rng.choice([1, 1, 1, 2], len(times)))
    voices = min(section.polyphony, 4)
    voice_offsets = np.arange(voices) * int(rng.choice([2, 4, 5, 7]))
    degree = _reflect(position[:, None] + voice_offsets[None, :], len(pitches) - 1)
    keys = pitches[degree]
    onset = np.broadcast_to(times[:, None], keys.shape).ravel()
    duration = section.step * section.gate * rng.lognormal(0.0, 0.2, onset.size)
    return onset, duration, keys.ravel()


def arpeggio(rng: np.random.Generator, section: Section) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broken chords up and down the register, a new chord every bar; notes ring on, giving polyphony."""
    template = np.array(CHORD_TEMPLATES[rng.integers(len(CHORD_TEMPLATES))])
    times = _event_times(section, section.step)
    bar_events = int(rng.integers(4, 13))
    bar = np.arange(len(times)) // bar_events
    roots = rng.integers(section.low, section.low + 12, int(bar[-1]) + 1 if len(times) else 1)
    span = max((section.high - section.low) // 12, 1) * len(template)
    direction = np.where(np.arange(len(times)) // max(span, 1) % 2 == 0, 1, -1) * rng.choice([-1, 1])
    degree = _reflect(int(rng.integers(span)) + np.cumsum(direction), span)
    keys = roots[bar] + 12 * (degree // len(template)) + template[degree % len(template)]
    ring = section.step * rng.uniform(1.0, max(section.polyphony, 1.0) + 0.5)
    duration = ring * rng.lognormal(0.0, 0.2, len(times))
    return times, duration, _into_register(keys, section.low, section.high)


def cluster(rng: np.random.Generator, section: Section) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random keys anywhere in the register at random times: no harmony, any spacing."""
    rate = rng.uniform(0.3, 1.0) / section.step
    count = int(rng.poisson(rate * (section.end - section.start)))
    times = np.sort(rng.uniform(section.start, section.end, count))
    keys = rng.integers(section.low, section.high + 1, (count, MAX_POLYPHONY))
    members = _struck_together(rng, count, section.polyphony)
    onset = np.broadcast_to(times[:, None], keys.shape)[members]
    duration = rng.exponential(2.0 * section.step * section.gate, onset.size)
    return onset, duration, keys[members]


def melody_and_chords(rng: np.random.Generator, section: Section) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A one-voice line over block chords: the register split in two, polyphony shared."""
    middle = (section.low + section.high) // 2
    lower = Section(
        **{**section.__dict__, "high": max(middle, section.low + 12), "polyphony": max(section.polyphony - 1, 1)}
    )
    upper = Section(
        **{
            **section.__dict__,
            "low": min(middle, section.high - 12),
            "polyphony": 1,
            "step": section.step / int(rng.integers(1, 3)),
        }
    )
    parts = [chords(rng, lower), scale(rng, upper)]
    return tuple(np.concatenate(column) for column in zip(*parts))  # type: ignore[return-value]


TEXTURE_GENERATORS = {
    "chords": chords,
    "scale": scale,
    "arpeggio": arpeggio,
    "cluster": cluster,
    "melody_and_chords": melody_and_chords,
}
