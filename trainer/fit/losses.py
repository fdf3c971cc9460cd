"""The training objective: weighted cross-entropy for the sparse heads, MSE for energy, Adam with an optional
cosine schedule. One definition, used by training and by the test-split scores."""

from __future__ import annotations

from typing import Any

import keras


def compile_model(model: keras.Model, settings: dict[str, Any], total_steps: int = 0) -> None:
    """Adam (learning rate constant, or cosine-decayed over ``total_steps``); binary cross-entropy with positives
    up-weighted for the sparse heads, MSE for energy; their weighted sum."""
    positive_weight = settings["positive_weight"]
    learning_rate = float(settings["learning_rate"])
    if settings["lr_schedule"] == "cosine" and total_steps > 0:
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, total_steps)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss={
            "active": weighted_binary_crossentropy(positive_weight["active"]),
            "onset": weighted_binary_crossentropy(positive_weight["onset"]),
            "energy": "mse",
        },
        loss_weights=dict(settings["loss_weights"]),
    )


def weighted_binary_crossentropy(positive_weight: float):
    """Cross-entropy where a positive counts ``positive_weight`` times: a key sounds in ~5% of (slice, key)
    cells and starts in ~0.3%, so unweighted the onset head learns to say "never"."""
    positive_weight = float(positive_weight)

    def loss(target, probability):
        probability = keras.ops.clip(probability, 1e-7, 1.0 - 1e-7)
        return -keras.ops.mean(
            positive_weight * target * keras.ops.log(probability) + (1.0 - target) * keras.ops.log(1.0 - probability),
            axis=-1,
        )

    return loss
