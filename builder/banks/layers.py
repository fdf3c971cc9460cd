"""Velocity layers: which layer plays a velocity, and softer layers derived from one loud recording.

Derived layers (one recorded layer, ``bank.layers`` wanted): the recording is the top layer; layer ``l``
below it gets ``DERIVED_DB_PER_LAYER`` dB less gain per layer step (scaled so the span over the bank's
velocity range is the same for any layer count: -3 dB per tenth of the velocity range, -27 dB from the top to
the bottom of ten layers, within the 25..35 dB attack-level span of a grand piano from pp to ff) and a
2nd-order Butterworth low-pass whose cutoff is a number of harmonics of the key's fundamental falling
log-linearly with velocity from ``DERIVED_TOP_HARMONICS`` (just below the top) to ``DERIVED_BOTTOM_HARMONICS``
(the bottom layer): softer hammer blows excite fewer partials. Cutoffs above 0.45 x the sample rate are
skipped. This is a caricature of a real piano's velocity response (no change of attack shape or inharmonic
balance); it is recorded in ``attrs["derivation"]``.
"""

from __future__ import annotations

import numpy as np

from pianoscribe import keyboard
from pianoscribe.constants import SAMPLE_RATE

MAX_LAYERS = 32
DERIVED_DB_PER_LAYER = 3.0  # per layer step when there are 10 layers (scaled by 10 / L otherwise)
DERIVED_TOP_HARMONICS = 48.0  # low-pass cutoff / f0 of the layer just below the recorded one (10 layers)
DERIVED_BOTTOM_HARMONICS = 4.0  # ... and of the bottom layer
DERIVED_FILTER_ORDER = 2


def layer_velocities(n_layers: int) -> np.ndarray:
    """Nominal MIDI velocity of each layer: the rounded centre of its band of ``layer_for_velocity``."""
    centres = (np.arange(n_layers) + 0.5) / n_layers * 127.0
    return np.clip(np.round(centres), 1, 127).astype(np.float32)


def layer_for_velocity(velocity_midi: float | np.ndarray, n_layers: int) -> int | np.ndarray:
    """Layer playing a MIDI velocity: ``min(floor(velocity / 127 * L), L - 1)``, so 127 never overruns."""
    layer = np.minimum(np.floor(np.asarray(velocity_midi, dtype=np.float64) / 127.0 * n_layers), n_layers - 1)
    layer = np.maximum(layer, 0).astype(np.int64)
    return int(layer) if layer.ndim == 0 else layer


def derived_layers(recording: np.ndarray, key: int, n_layers: int) -> list[np.ndarray]:
    """Softer layers from one loud recording: gain and a key-relative low-pass (see the module docstring)."""
    from scipy import signal  # here, not at the top: `builder synth` imports this module and never filters

    layers = []
    for layer in range(n_layers):
        steps_below_top = n_layers - 1 - layer
        if steps_below_top == 0:
            layers.append(recording)
            continue
        gain_db, cutoff_hz = derived_layer_shape(key, layer, n_layers)
        shaped = recording.astype(np.float64)
        if cutoff_hz < 0.45 * SAMPLE_RATE:
            sos = signal.butter(DERIVED_FILTER_ORDER, cutoff_hz, btype="low", fs=SAMPLE_RATE, output="sos")
            shaped = signal.sosfilt(sos, shaped)
        layers.append((shaped * 10.0 ** (gain_db / 20.0)).astype(np.float32))
    return layers


def derived_layer_shape(key: int, layer: int, n_layers: int) -> tuple[float, float]:
    """(gain dB, low-pass cutoff Hz) of a derived layer; the top layer is (0, inf)."""
    steps_below_top = n_layers - 1 - layer
    if steps_below_top == 0:
        return 0.0, float("inf")
    gain_db = -DERIVED_DB_PER_LAYER * steps_below_top * 10.0 / n_layers
    # position of this layer between the bottom (0) and the layer just below the top (1)
    position = 1.0 if n_layers == 2 else layer / (n_layers - 2)
    harmonics = DERIVED_BOTTOM_HARMONICS * (DERIVED_TOP_HARMONICS / DERIVED_BOTTOM_HARMONICS) ** position
    return gain_db, keyboard.key_frequency(key) * harmonics


def derivation_attrs(n_layers: int) -> dict:
    cutoffs = {
        keyboard.note_name(key): [
            round(derived_layer_shape(key, layer, n_layers)[1], 1) for layer in range(n_layers - 1)
        ]
        for key in (21, 60, 108)
    }
    gains = [round(derived_layer_shape(60, layer, n_layers)[0], 2) for layer in range(n_layers)]
    return {
        "derivation": (
            f"one recorded layer (the top); layers below: {DERIVED_DB_PER_LAYER * 10 / n_layers:g} dB "
            f"less per step and a order-{DERIVED_FILTER_ORDER} Butterworth low-pass at f0 x "
            f"{DERIVED_BOTTOM_HARMONICS:g} (bottom) .. f0 x {DERIVED_TOP_HARMONICS:g} (below the top), "
            f"log-spaced, skipped above {0.45 * SAMPLE_RATE:g} Hz"
        ),
        "derived_gain_db": gains,
        "derived_cutoff_hz_examples": cutoffs,
    }
