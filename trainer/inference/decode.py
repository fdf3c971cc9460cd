"""Per-frame probabilities -> notes (``decode_notes``), and notes -> a per-frame roll (``notes_to_roll``).

A note starts at a peak of the onset head above ``onset_threshold`` (the peak counts ``onset_neighbour_weight``
of its larger neighbouring frame too: a note struck near the boundary of two buffers splits its onset
probability between them) and lasts while the frame head stays
above ``frame_threshold`` (a new onset on the same key ends it: a re-strike); notes shorter than
``min_note_seconds`` are dropped; velocity comes from the energy head at the attack, read off the model's
per-key velocity curve (``trainer.features.energy_to_velocity``). The thresholds come from
the ``decode`` params section shared by ``trainer infer`` and ``trainer evaluate`` (null: the model file's); its
``offline`` sub-section holds the offline model's own (``settings_for_model``): that model's probabilities are
sharper, and it is best with a higher onset threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from builder.corpus.notes import NOTE_DTYPE
from pianoscribe.constants import HOP_SECONDS, LOWEST_KEY, N_KEYS
from pianoscribe.errors import UserError
from pianoscribe.params import apply_overrides
from trainer.features import energy_to_velocity
from trainer.model.info import OFFLINE_ARCH

ATTACK_FRAMES = 2  # velocity = the energy head's peak over the onset frame and the next ones


def settings_for_model(section: dict[str, Any], arch: str) -> dict[str, Any]:
    """The ``decode`` section for a model of architecture ``arch``: an offline model's sub-section over the rest
    (its null values keep the section's); the sub-section itself is dropped."""
    chosen = {name: value for name, value in section.items() if name != OFFLINE_ARCH}
    if arch == OFFLINE_ARCH:
        chosen.update({name: value for name, value in (section.get(OFFLINE_ARCH) or {}).items() if value is not None})
    return chosen


@dataclass(frozen=True)
class DecodeSettings:
    """How probabilities become notes."""

    onset_threshold: float
    frame_threshold: float
    min_note_seconds: float
    velocity_curve: dict[str, Any] | None = None  # the model's (ModelInfo.velocity_curve): energy -> velocity
    onset_neighbour_weight: float = 0.0  # an onset peak is judged on p[t] + this x max(p[t-1], p[t+1])

    @classmethod
    def resolve(cls, section: dict[str, Any], info, overrides: dict[str, Any] | None = None) -> DecodeSettings:
        """The ``decode`` section for this model (``settings_for_model``) with ``overrides`` (given flags: None
        means not given) over it; ``None`` left falls back to what the model file carries (``ModelInfo``)."""
        settings = apply_overrides(settings_for_model(section, getattr(info, "arch", "")), overrides or {})
        values = {}
        for name in ("onset_threshold", "frame_threshold", "min_note_seconds", "onset_neighbour_weight"):
            value: Any = settings.get(name)  # None: the model file's (it holds no neighbour weight: the peak alone)
            value = getattr(info, name, 0.0) if value is None else value
            try:
                value = float(value)
            except (TypeError, ValueError) as error:
                raise UserError(f"decode.{name}: expected a number, got {value!r}") from error
            if name.endswith("threshold") and not 0.0 < value < 1.0:
                raise UserError(f"decode.{name}: must lie strictly between 0 and 1, got {value}")
            if name == "min_note_seconds" and value < 0.0:
                raise UserError(f"decode.{name}: must be >= 0, got {value}")
            if name == "onset_neighbour_weight" and not 0.0 <= value <= 1.0:
                raise UserError(f"decode.{name}: must lie between 0 and 1, got {value}")
            values[name] = value
        return cls(**values, velocity_curve=getattr(info, "velocity_curve", None))


def decode_notes(
    frame_probability: np.ndarray, onset_probability: np.ndarray, energy: np.ndarray, decode: DecodeSettings
) -> np.ndarray:
    """Per-frame heads ``[frames, 88]`` -> notes (``NOTE_DTYPE``), vectorized over keys and frames.

    A note of key ``k`` starts at frame ``t`` where the onset head has a local peak that reaches
    ``onset_threshold`` with ``onset_neighbour_weight`` times its larger neighbour added (``_onset_peaks``), or
    where the frame head rises above ``frame_threshold`` with no onset peak within one frame and then reaches
    ``onset_threshold`` itself before it falls (a clearly sounding note must not be lost for a weak
    onset, but a flicker just above ``frame_threshold`` is not a note). It ends at the first later frame where
    the frame head drops below ``frame_threshold`` or the onset head peaks again on that key (a re-strike); it
    lasts at least its onset frame. Onset time = the start of the onset frame (the onset lies in that buffer,
    or, when it falls in a buffer's last samples, in the one before: the heads often fire a frame late,
    measured median +4 ms from the frame centre); offset = the end of the last frame held. Notes therefore
    cover whole frames, and map back onto exactly the frames held.
    """
    onset_probability = np.asarray(onset_probability, np.float32)
    n_frames = onset_probability.shape[0]
    if n_frames == 0:
        return np.zeros(0, dtype=NOTE_DTYPE)
    onset_peak = _onset_peaks(onset_probability, decode.onset_threshold, decode.onset_neighbour_weight)
    held = np.asarray(frame_probability, np.float32) >= decode.frame_threshold
    # key-major with a sentinel frame at the end, so "first stop after t" is one searchsorted for all notes
    stop = np.ones((N_KEYS, n_frames + 1), dtype=bool)
    stop[:, :n_frames] = ~held.T | onset_peak.T
    stop_flat = np.flatnonzero(stop)
    rising = held & ~np.vstack([np.zeros((1, N_KEYS), bool), held[:-1]])
    near_onset_peak = onset_peak.copy()
    near_onset_peak[1:] |= onset_peak[:-1]
    near_onset_peak[:-1] |= onset_peak[1:]
    start = onset_peak | (rising & ~near_onset_peak)
    start_key, start_frame = np.nonzero(start.T)
    start_flat = start_key * (n_frames + 1) + start_frame
    end_flat = stop_flat[np.searchsorted(stop_flat, start_flat, side="right")]
    end_frame = end_flat - start_key * (n_frames + 1)  # exclusive; >= start_frame + 1
    onset_seconds = start_frame * HOP_SECONDS
    offset_seconds = end_frame * HOP_SECONDS
    keep = offset_seconds - onset_seconds >= decode.min_note_seconds - 1e-9
    keep &= onset_peak[start_frame, start_key] | (
        _run_maxima(frame_probability, start_flat, end_flat, n_frames) >= decode.onset_threshold
    )
    start_key, start_frame, onset_seconds, offset_seconds = (
        start_key[keep],
        start_frame[keep],
        onset_seconds[keep],
        offset_seconds[keep],
    )
    attack = np.asarray(energy, np.float32)
    attack_frames = np.minimum(start_frame[:, None] + np.arange(ATTACK_FRAMES + 1)[None, :], n_frames - 1)
    attack_energy = attack[attack_frames, start_key[:, None]].max(axis=1)
    notes = np.zeros(len(start_key), dtype=NOTE_DTYPE)
    notes["onset"] = onset_seconds
    notes["offset"] = offset_seconds
    notes["key"] = start_key + LOWEST_KEY
    notes["velocity"] = energy_to_velocity(attack_energy, start_key, decode.velocity_curve)
    return notes[np.lexsort((notes["key"], notes["onset"]))]


def _run_maxima(
    frame_probability: np.ndarray, start_flat: np.ndarray, end_flat: np.ndarray, n_frames: int
) -> np.ndarray:
    """Maximum of the frame head over each note's frames (indices into the key-major layout with a sentinel)."""
    if len(start_flat) == 0:
        return np.zeros(0, np.float32)
    key_major = np.zeros((N_KEYS, n_frames + 1), np.float32)
    key_major[:, :n_frames] = np.asarray(frame_probability, np.float32).T
    bounds = np.stack([start_flat, end_flat], axis=1).ravel()  # [start, end) pairs; every end < size (sentinel)
    return np.maximum.reduceat(key_major.ravel(), bounds)[::2]


def _onset_peaks(onset_probability: np.ndarray, threshold: float, neighbour_weight: float = 0.0) -> np.ndarray:
    """Frames where the onset head is a local maximum in time (first of a plateau) and, with ``neighbour_weight``
    times the larger of the frames either side added, reaches ``threshold``.

    The head says which buffer holds a note's first sample; a note struck near the end of a buffer is heard in
    that buffer and the next, and the head then splits its probability between them (0.6 then 0.8 where a
    clear onset reads 0.99): counting the neighbour finds those notes, and a single frame's 0.99 still passes.
    """
    before = np.vstack([np.full((1, N_KEYS), -np.inf, np.float32), onset_probability[:-1]])
    after = np.vstack([onset_probability[1:], np.full((1, N_KEYS), -np.inf, np.float32)])
    neighbour = np.maximum(np.maximum(before, after), 0.0)
    pooled = onset_probability + np.float32(neighbour_weight) * neighbour
    return (pooled >= threshold) & (onset_probability > before) & (onset_probability >= after)


def notes_to_roll(notes: np.ndarray, n_frames: int, values: str = "velocity") -> np.ndarray:
    """Notes on the 1024-hop grid ``[frames, 88]``: a key is on in frame i when a note sounds at its centre.

    ``values="velocity"`` fills velocity/127 (comparable with the energy head), ``"binary"`` fills 1.
    """
    roll = np.zeros((n_frames, N_KEYS), dtype=np.float32)
    centres = (np.arange(n_frames) + 0.5) * HOP_SECONDS
    for note in notes:
        first, last = np.searchsorted(centres, [note["onset"], note["offset"]], side="left")
        value = 1.0 if values == "binary" else float(note["velocity"]) / 127.0
        roll[first:last, int(note["key"]) - LOWEST_KEY] = np.maximum(
            roll[first:last, int(note["key"]) - LOWEST_KEY], value
        )
    return roll
