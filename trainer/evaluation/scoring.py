"""mir_eval scores of transcriptions against references, per piece and pooled over pieces.

- frame precision/recall/F1 with ``mir_eval.multipitch`` on the 1024-hop grid: a key is active in a frame
  when a note sounds at the frame's centre (the same rule for reference and transcription);
- note-onset precision/recall/F1 with ``mir_eval.transcription`` (onset within 50 ms, pitch within 50 cents,
  offsets ignored).
``overall`` pools every frame and every note of all pieces (micro average); ``pieces`` has each one.
"""

from __future__ import annotations

import warnings
from typing import Any

import mir_eval
import numpy as np

from pianoscribe.constants import BUFFER_SIZE, LOWEST_KEY, N_KEYS, SAMPLE_RATE
from pianoscribe.keyboard import key_frequency, note_name
from trainer.inference.decode import notes_to_roll

ONSET_TOLERANCE_SECONDS = 0.05
PIECE_GAP_SECONDS = 10.0  # silence between pieces when pooling them into one mir_eval call
REGISTER_KEYS = 12  # keys per register in frame_f1_by_register


def score_pieces(
    references: list[np.ndarray], estimates: list[np.ndarray], n_frames: list[int], piece_ids: list[str]
) -> dict[str, Any]:
    """mir_eval frame and note-onset scores per piece and pooled over all pieces (``overall``)."""
    per_piece = {
        piece_id: score_piece(reference, estimate, frames)
        for piece_id, reference, estimate, frames in zip(piece_ids, references, estimates, n_frames)
    }
    # pool: lay the pieces end to end with silence between them, and score that as one recording
    # (the gap is a whole number of frames, so each piece keeps its own frame grid)
    gap_frames = int(round(PIECE_GAP_SECONDS * SAMPLE_RATE / BUFFER_SIZE))
    offsets_in_frames = np.cumsum([0] + [frames + gap_frames for frames in n_frames[:-1]])
    pooled_reference = _shifted_concatenation(references, offsets_in_frames * BUFFER_SIZE / SAMPLE_RATE)
    pooled_estimate = _shifted_concatenation(estimates, offsets_in_frames * BUFFER_SIZE / SAMPLE_RATE)
    total_frames = int(offsets_in_frames[-1] + n_frames[-1]) if n_frames else 0
    overall = score_piece(pooled_reference, pooled_estimate, total_frames)
    overall["pieces"] = len(piece_ids)
    return {
        "overall": overall,
        "frame_f1_by_register": frame_f1_by_register(pooled_reference, pooled_estimate, total_frames),
        "pieces": per_piece,
    }


def frame_f1_by_register(reference: np.ndarray, estimate: np.ndarray, n_frames: int) -> dict[str, dict[str, float]]:
    """Frame P/R/F1 per octave of keys (A0-G#1, A1-G#2, ..., A7-C8): where on the keyboard a system fails.

    Counted key by key on the same grid and rule as the frame scores (for exact piano-key pitches these are
    mir_eval's counts split by key).
    """
    reference_roll = notes_to_roll(reference, n_frames, values="binary") > 0
    estimate_roll = notes_to_roll(estimate, n_frames, values="binary") > 0
    true_positive = (reference_roll & estimate_roll).sum(axis=0)
    reference_count, estimate_count = reference_roll.sum(axis=0), estimate_roll.sum(axis=0)
    registers = {}
    for first in range(0, N_KEYS, REGISTER_KEYS):
        keys = slice(first, min(first + REGISTER_KEYS, N_KEYS))
        hits, wanted, found = (
            int(true_positive[keys].sum()),
            int(reference_count[keys].sum()),
            int(estimate_count[keys].sum()),
        )
        precision = hits / found if found else 0.0
        recall = hits / wanted if wanted else 0.0
        name = f"{note_name(LOWEST_KEY + first)}-{note_name(LOWEST_KEY + keys.stop - 1)}"
        registers[name] = {
            "frame_precision": precision,
            "frame_recall": recall,
            "frame_f1": _f1(precision, recall),
            "reference_frames": wanted,
        }
    return registers


def score_piece(reference: np.ndarray, estimate: np.ndarray, n_frames: int) -> dict[str, float]:
    """Frame P/R/F1 (multipitch on frame centres) and note-onset P/R/F1 of one recording."""
    frame = _frame_scores(reference, estimate, n_frames)
    note = _note_onset_scores(reference, estimate)
    return {
        **frame,
        **note,
        "reference_notes": len(reference),
        "estimated_notes": len(estimate),
        "frames": int(n_frames),
    }


def _frame_scores(reference: np.ndarray, estimate: np.ndarray, n_frames: int) -> dict[str, float]:
    centres = (np.arange(n_frames) + 0.5) * BUFFER_SIZE / SAMPLE_RATE
    reference_hz = _frame_frequencies(notes_to_roll(reference, n_frames, values="binary"))
    estimate_hz = _frame_frequencies(notes_to_roll(estimate, n_frames, values="binary"))
    if n_frames == 0:
        return {"frame_precision": 0.0, "frame_recall": 0.0, "frame_f1": 0.0}
    with warnings.catch_warnings():  # "frequencies are all empty" is a legitimate silent piece, scored 0
        warnings.simplefilter("ignore", UserWarning)
        scores = mir_eval.multipitch.evaluate(centres, reference_hz, centres, estimate_hz)
    precision, recall = float(scores["Precision"]), float(scores["Recall"])
    return {"frame_precision": precision, "frame_recall": recall, "frame_f1": _f1(precision, recall)}


def _note_onset_scores(reference: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    if len(reference) == 0 or len(estimate) == 0:
        return {"note_precision": 0.0, "note_recall": 0.0, "note_f1": 0.0}
    precision, recall, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(
        *_intervals_and_hz(reference),
        *_intervals_and_hz(estimate),
        onset_tolerance=ONSET_TOLERANCE_SECONDS,
        offset_ratio=None,
    )
    return {"note_precision": float(precision), "note_recall": float(recall), "note_f1": float(f1)}


def _frame_frequencies(roll: np.ndarray) -> list[np.ndarray]:
    key_hz = np.array([key_frequency(key) for key in range(21, 109)])
    return [key_hz[np.flatnonzero(row)] for row in roll]


def _intervals_and_hz(notes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    intervals = np.stack([notes["onset"], np.maximum(notes["offset"], notes["onset"] + 1e-3)], axis=1)
    return intervals.astype(np.float64), np.array([key_frequency(int(key)) for key in notes["key"]])


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
