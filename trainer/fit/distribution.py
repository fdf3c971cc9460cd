"""How ``trainer fit`` spreads training over devices (``fit.strategy``).

- ``default``: TensorFlow's default strategy, one device: exactly what every fit did before (resumes bit for bit).
- ``mirrored``: ``tf.distribute.MirroredStrategy`` over the visible GPUs: one replica of the model per GPU,
  gradients all-reduced every step. With R replicas a step takes R batches of ``fit.batch_size`` slices (the
  global batch is R x ``batch_size``, so an epoch has R times fewer steps) and the learning rate is R x
  ``fit.learning_rate`` (the linear scaling rule: each example moves the weights as much as on one device).
  With no GPU it is one replica on the CPU, and says so.

The model is built, compiled and restored from a checkpoint inside the strategy's scope, so its variables and
the optimizer's are mirrored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

STRATEGIES = ("default", "mirrored")


@dataclass
class Distribution:
    """A strategy (None: the default one) and its number of replicas."""

    name: str
    strategy: tf.distribute.Strategy | None
    replicas: int

    def scope(self) -> AbstractContextManager[Any]:
        """Where the model and its optimizer must be made (a no-op for the default strategy)."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def scaled(self, settings: dict[str, Any]) -> dict[str, Any]:
        """The ``fit`` settings for the whole step: the global batch and the linearly scaled learning rate."""
        if self.replicas == 1:
            return settings
        return {
            **settings,
            "batch_size": int(settings["batch_size"]) * self.replicas,
            "learning_rate": float(settings["learning_rate"]) * self.replicas,
        }


def distribution(name: str, say: Callable[[str], None]) -> Distribution:
    """The strategy ``fit.strategy`` names (checked by the caller); ``say`` hears when mirrored finds no GPU."""
    if name == "default":
        return Distribution(name, None, 1)
    gpus = tf.config.list_physical_devices("GPU")
    strategy = tf.distribute.MirroredStrategy()
    if not gpus:
        say("fit.strategy mirrored: no GPU visible; training on the CPU (1 replica)")
    else:
        say(f"fit.strategy mirrored: {strategy.num_replicas_in_sync} replicas on {len(gpus)} GPUs")
    return Distribution(name, strategy, int(strategy.num_replicas_in_sync))
