"""mir_eval's note matching, pair for pair, without its ``n_reference x n_estimate`` matrices.

``mir_eval.transcription.match_notes`` compares every reference note with every estimated note. A pooled
group of evaluation pieces has tens of thousands of notes on each side, so those matrices take gigabytes
and most of ``trainer evaluate``'s time. Piano-key pitches are whole semitones apart, so a note can only
match a note of its own key (the tolerance is 50 cents). Here the same hit test runs key by key, the hits
are put in mir_eval's order, and mir_eval's own bipartite matcher pairs them: the same pairs, faster
(``tests/trainer/evaluation/test_evaluate.py`` checks this against mir_eval).
"""

from __future__ import annotations

import mir_eval
import numpy as np

ROUNDING_DECIMALS = mir_eval.transcription.N_DECIMALS  # mir_eval rounds time distances before comparing them
OFFSET_MIN_TOLERANCE_SECONDS = 0.05  # mir_eval's default offset rule: 20 % of the note, at least 50 ms
OFFSET_RATIO = 0.2
VELOCITY_TOLERANCE = 0.1  # mir_eval.transcription_velocity's default, on velocities rescaled to [0, 1]


def match_notes(
    reference_intervals: np.ndarray,
    reference_keys: np.ndarray,
    estimate_intervals: np.ndarray,
    estimate_keys: np.ndarray,
    onset_tolerance: float,
    offset_ratio: float | None = OFFSET_RATIO,
) -> list[tuple[int, int]]:
    """``mir_eval.transcription.match_notes`` (not strict) for notes given as piano keys: (reference, estimate)
    index pairs, sorted."""
    reference_keys, estimate_keys = np.asarray(reference_keys), np.asarray(estimate_keys)
    pairs = []
    for key in np.intersect1d(reference_keys, estimate_keys):
        references, estimates = np.flatnonzero(reference_keys == key), np.flatnonzero(estimate_keys == key)
        hit = _close(reference_intervals[references, 0], estimate_intervals[estimates, 0], onset_tolerance)
        if offset_ratio is not None:
            durations = reference_intervals[references, 1] - reference_intervals[references, 0]
            tolerance = np.maximum(offset_ratio * durations, OFFSET_MIN_TOLERANCE_SECONDS).reshape(-1, 1)
            hit &= _close(reference_intervals[references, 1], estimate_intervals[estimates, 1], tolerance)
        rows, columns = np.nonzero(hit)
        pairs.append(np.stack([references[rows], estimates[columns]], axis=1))
    if not pairs:
        return []
    hits = np.concatenate(pairs)
    hits = hits[np.lexsort((hits[:, 1], hits[:, 0]))]  # np.where's order on the full matrix: reference, then estimate
    graph: dict[int, list[int]] = {}
    for reference_index, estimate_index in hits.tolist():
        graph.setdefault(estimate_index, []).append(reference_index)
    return sorted(mir_eval.util._bipartite_match(graph).items())


def velocity_matches(
    matching: list[tuple[int, int]], reference_velocities: np.ndarray, estimate_velocities: np.ndarray
) -> list[tuple[int, int]]:
    """The pairs of ``matching`` whose velocities agree the way ``mir_eval.transcription_velocity`` counts it:
    reference velocities scaled to [0, 1], estimates mapped onto them by a least-squares line, within 0.1."""
    if not matching:
        return []
    reference_velocities = np.asarray(reference_velocities, np.float64)
    estimate_velocities = np.asarray(estimate_velocities, np.float64)
    lowest, highest = np.min(reference_velocities), np.max(reference_velocities)
    scaled_reference = (reference_velocities - lowest) / float(max(1, highest - lowest))
    pairs = np.array(matching)
    matched_reference, matched_estimate = scaled_reference[pairs[:, 0]], estimate_velocities[pairs[:, 1]]
    slope, intercept = np.linalg.lstsq(
        np.vstack([matched_estimate, np.ones(len(matched_estimate))]).T, matched_reference, rcond=None
    )[0]
    within = np.abs(slope * matched_estimate + intercept - matched_reference) < VELOCITY_TOLERANCE
    return [tuple(pair) for pair in pairs[within].tolist()]


def _close(reference: np.ndarray, estimate: np.ndarray, tolerance: float | np.ndarray) -> np.ndarray:
    distances = np.around(np.abs(np.subtract.outer(reference, estimate)), decimals=ROUNDING_DECIMALS)
    return np.less_equal(distances, tolerance)
