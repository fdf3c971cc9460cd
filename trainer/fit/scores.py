"""The test split's scores after every epoch: loss, frame and onset precision/recall/F1 at the best threshold,
and the energy head's error."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from pianoscribe.constants import N_KEYS
from trainer.fit.losses import weighted_binary_crossentropy
from trainer.model.info import HEADS

THRESHOLDS = np.array([0.01, 0.02, 0.03, 0.05, 0.07, *np.round(np.arange(0.1, 0.96, 0.05), 2)], dtype=np.float32)
SCORES = (
    "loss",
    "frame_precision",
    "frame_recall",
    "frame_f1",
    "frame_threshold",
    "onset_precision",
    "onset_recall",
    "onset_f1",
    "onset_threshold",
    "energy_mae",
)


def score_split(model: keras.Model, batches: tf.data.Dataset, settings: dict[str, Any]) -> dict[str, float]:
    """The test-split row of an epoch: loss, frame and onset precision/recall/F1 at the best-F1 threshold, energy error.

    Frame scores are per (slice, key) on ``key_active``; onset scores per (slice, key) on ``key_onset``;
    ``energy_mae`` is the mean absolute error of the energy head over sounding keys (x127 ~ velocity steps);
    ``loss`` is the training loss (same weights) on the test split.
    """
    predict = _predict_function(model)
    cross_entropy = {
        head: weighted_binary_crossentropy(settings["positive_weight"][head]) for head in ("active", "onset")
    }
    at_or_above = {head: np.zeros((2, THRESHOLDS.size), dtype=np.int64) for head in ("active", "onset")}
    positives = dict.fromkeys(at_or_above, 0)
    loss_sums = dict.fromkeys(HEADS, 0.0)
    energy_error, sounding, cells = 0.0, 0, 0
    for fft_magnitude, targets in batches:
        predicted = {key: value.numpy() for key, value in predict(fft_magnitude).items()}
        truths = {key: value.numpy() for key, value in targets.items()}
        for head in at_or_above:
            truth = truths[head].astype(bool).ravel()
            probability = predicted[head].ravel()
            for row, selected in enumerate((probability[truth], probability[~truth])):
                at_or_above[head][row] += _count_at_or_above(selected)
            positives[head] += int(truth.sum())
            # the training loss itself: a mean over the keys of each frame, summed back over the keys
            loss_sums[head] += float(keras.ops.sum(cross_entropy[head](truths[head], predicted[head]))) * N_KEYS
        active = truths["active"].astype(bool)
        energy_error += float(np.abs(predicted["energy"][active] - truths["energy"][active]).sum())
        loss_sums["energy"] += float(np.sum(np.square(predicted["energy"] - truths["energy"])))
        sounding += int(active.sum())
        cells += active.size
    weights = settings["loss_weights"]
    scores: dict[str, float] = {"loss": sum(weights[head] * loss_sums[head] for head in HEADS) / max(cells, 1)}
    for head, prefix in (("active", "frame"), ("onset", "onset")):
        true_positive, false_positive = at_or_above[head]
        precision = true_positive / np.maximum(true_positive + false_positive, 1)
        recall = true_positive / max(positives[head], 1)
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        best = int(np.argmax(f1))
        scores.update(
            {
                f"{prefix}_precision": float(precision[best]),
                f"{prefix}_recall": float(recall[best]),
                f"{prefix}_f1": float(f1[best]),
                f"{prefix}_threshold": round(float(THRESHOLDS[best]), 4),
            }
        )
    scores["energy_mae"] = energy_error / max(sounding, 1)
    return scores


def _count_at_or_above(probability: np.ndarray) -> np.ndarray:
    """How many probabilities are >= each of THRESHOLDS (one pass: bin, then cumulative from the top)."""
    thresholds_passed = np.searchsorted(THRESHOLDS, probability, side="right")
    histogram = np.bincount(thresholds_passed, minlength=THRESHOLDS.size + 1)
    return np.cumsum(histogram[::-1])[::-1][1:]


def _predict_function(model: keras.Model):
    @tf.function(reduce_retracing=True, autograph=False)
    def predict(fft_magnitude):
        return model(fft_magnitude, training=False)

    return predict
