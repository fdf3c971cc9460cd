"""mir_eval scores of transcriptions against references, per piece and pooled over pieces.

- frame precision/recall/F1 on the 1024-hop grid: a key is active in a frame when a note sounds at the frame's
  centre (the same rule for reference and transcription); counted on the rolls, which for exact piano-key
  pitches is ``mir_eval.multipitch``'s count;
- note-onset precision/recall/F1 with ``mir_eval.transcription`` (onset within 50 ms, pitch within 50 cents,
  offsets ignored), and note-with-offset F1 (mir_eval's default offset rule: within 20 % of the note or 50 ms);
- velocity: the mean absolute MIDI-velocity error of the notes matched by onset and pitch (``velocity_mae``),
  and ``mir_eval.transcription_velocity``'s F1 (a match must also have the right velocity after mir_eval's
  linear rescaling of the estimate, offsets ignored).
Pooling lays the pieces end to end with silence between them and scores that as one recording (a micro
average over every frame and note).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pianoscribe.constants import BUFFER_SIZE, LOWEST_KEY, N_KEYS, SAMPLE_RATE
from pianoscribe.keyboard import note_name
from trainer.evaluation import matching
from trainer.inference.decode import notes_to_roll

ONSET_TOLERANCE_SECONDS = 0.05
PIECE_GAP_SECONDS = 10.0  # silence between pieces when pooling them into one mir_eval call
REGISTER_KEYS = 12  # keys per register in frame_f1_by_register


def score_pieces(
    references: list[np.ndarray], estimates: list[np.ndarray], n_frames: list[int], piece_ids: list[str]
) -> dict[str, Any]:
    """Scores per piece and pooled over all of them (``overall``, ``frame_f1_by_register``)."""
    return {
        "overall": score_group(references, estimates, n_frames),
        "frame_f1_by_register": octave_group(references, estimates, n_frames),
        "pieces": {
            piece_id: score_piece(reference, estimate, frames)
            for piece_id, reference, estimate, frames in zip(piece_ids, references, estimates, n_frames)
        },
    }


def frame_f1_by_register(reference: np.ndarray, estimate: np.ndarray, n_frames: int) -> dict[str, dict[str, float]]:
    """Frame P/R/F1 per octave of keys (A0-G#1, A1-G#2, ..., A7-C8): where on the keyboard a system fails.

    Counted key by key on the same grid and rule as the frame scores (for exact piano-key pitches these are
    mir_eval's counts split by key).
    """
    hits, wanted, found = _frame_counts_per_key(reference, estimate, n_frames)
    registers = {}
    for first in range(0, N_KEYS, REGISTER_KEYS):
        keys = slice(first, min(first + REGISTER_KEYS, N_KEYS))
        name = f"{note_name(LOWEST_KEY + first)}-{note_name(LOWEST_KEY + keys.stop - 1)}"
        registers[name] = {
            **_frame_precision_recall(int(hits[keys].sum()), int(wanted[keys].sum()), int(found[keys].sum())),
            "reference_frames": int(wanted[keys].sum()),
        }
    return registers


def score_piece(reference: np.ndarray, estimate: np.ndarray, n_frames: int) -> dict[str, float]:
    """Frame P/R/F1 (multipitch on frame centres), note-onset P/R/F1, note-with-offset F1 and the velocity
    scores of one recording."""
    return {
        **_frame_scores(reference, estimate, n_frames),
        **_note_scores(reference, estimate),
        "reference_notes": len(reference),
        "estimated_notes": len(estimate),
        "frames": int(n_frames),
    }


def score_group(references: list[np.ndarray], estimates: list[np.ndarray], n_frames: list[int]) -> dict[str, Any]:
    """Every score of a group of recordings pooled into one (see the module docstring), with the group's size."""
    reference, estimate, total_frames = _pooled(references, estimates, n_frames)
    return {**score_piece(reference, estimate, total_frames), "pieces": len(references)}


def octave_group(references: list[np.ndarray], estimates: list[np.ndarray], n_frames: list[int]) -> dict[str, Any]:
    """Frame P/R/F1 per octave of keys of a group of recordings, pooled."""
    return frame_f1_by_register(*_pooled(references, estimates, n_frames))


def _pooled(
    references: list[np.ndarray], estimates: list[np.ndarray], n_frames: list[int]
) -> tuple[np.ndarray, np.ndarray, int]:
    """The recordings end to end with silence between them (a whole number of frames: each keeps its grid)."""
    gap_frames = int(round(PIECE_GAP_SECONDS * SAMPLE_RATE / BUFFER_SIZE))
    offsets_in_frames = np.cumsum([0] + [frames + gap_frames for frames in n_frames[:-1]])
    seconds = offsets_in_frames * BUFFER_SIZE / SAMPLE_RATE
    total_frames = int(offsets_in_frames[-1] + n_frames[-1]) if n_frames else 0
    return _shifted_concatenation(references, seconds), _shifted_concatenation(estimates, seconds), total_frames


def _frame_scores(reference: np.ndarray, estimate: np.ndarray, n_frames: int) -> dict[str, float]:
    """Counted on the two binary rolls: for exact piano-key pitches on one shared grid this is what
    ``mir_eval.multipitch`` computes (tested against it), a hundred times faster."""
    hits, wanted, found = _frame_counts_per_key(reference, estimate, n_frames)
    return _frame_precision_recall(int(hits.sum()), int(wanted.sum()), int(found.sum()))


def _frame_counts_per_key(
    reference: np.ndarray, estimate: np.ndarray, n_frames: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per key: frames sounding in both, in the reference, in the estimate."""
    reference_roll = notes_to_roll(reference, n_frames, values="binary") > 0
    estimate_roll = notes_to_roll(estimate, n_frames, values="binary") > 0
    return (reference_roll & estimate_roll).sum(axis=0), reference_roll.sum(axis=0), estimate_roll.sum(axis=0)


def _frame_precision_recall(hits: int, wanted: int, found: int) -> dict[str, float]:
    precision = hits / found if found else 0.0
    recall = hits / wanted if wanted else 0.0
    return {"frame_precision": precision, "frame_recall": recall, "frame_f1": _f1(precision, recall)}


def _note_scores(reference: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    """Note-onset P/R/F1, note-with-offset F1 and the velocity scores, counted as mir_eval's
    ``transcription`` and ``transcription_velocity`` count them (``trainer.evaluation.matching``)."""
    if len(reference) == 0 or len(estimate) == 0:
        return {
            "note_precision": 0.0,
            "note_recall": 0.0,
            "note_f1": 0.0,
            "note_offset_f1": 0.0,
            "velocity_mae": 0.0,
            "note_velocity_f1": 0.0,
            "matched_notes": 0,
        }
    reference_intervals, estimate_intervals = _intervals(reference), _intervals(estimate)
    reference_keys, estimate_keys = np.asarray(reference["key"]), np.asarray(estimate["key"])
    matched = matching.match_notes(
        reference_intervals, reference_keys, estimate_intervals, estimate_keys, ONSET_TOLERANCE_SECONDS, None
    )
    with_offsets = matching.match_notes(
        reference_intervals, reference_keys, estimate_intervals, estimate_keys, ONSET_TOLERANCE_SECONDS
    )
    with_velocities = matching.velocity_matches(matched, reference["velocity"], estimate["velocity"])
    precision, recall = len(matched) / len(estimate), len(matched) / len(reference)
    errors = [abs(int(reference["velocity"][r]) - int(estimate["velocity"][e])) for r, e in matched]
    return {
        "note_precision": precision,
        "note_recall": recall,
        "note_f1": _f1(precision, recall),
        "note_offset_f1": _f1(len(with_offsets) / len(estimate), len(with_offsets) / len(reference)),
        "velocity_mae": float(np.mean(errors)) if errors else 0.0,
        "note_velocity_f1": _f1(len(with_velocities) / len(estimate), len(with_velocities) / len(reference)),
        "matched_notes": len(matched),
    }


def _intervals(notes: np.ndarray) -> np.ndarray:
    """[onset, offset] per note, every note at least 1 ms long (mir_eval refuses empty intervals)."""
    return np.stack([notes["onset"], np.maximum(notes["offset"], notes["onset"] + 1e-3)], axis=1).astype(np.float64)


def _shifted_concatenation(note_lists: list[np.ndarray], offsets: np.ndarray) -> np.ndarray:
    if not note_lists:
        from builder.corpus import NOTE_DTYPE

        return np.zeros(0, dtype=NOTE_DTYPE)
    shifted = []
    for notes, offset in zip(note_lists, offsets):
        moved = np.array(notes, copy=True)
        moved["onset"] += offset
        moved["offset"] += offset
        shifted.append(moved)
    return np.concatenate(shifted)


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
