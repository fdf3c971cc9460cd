"""The architectures, by name: ``build_model`` and what a model costs (``macs_per_frame``).

Every model takes ``fft_magnitude`` ``[batch, time, 512]`` and returns a dict of ``[batch, time, 88]``
heads: ``active`` and ``onset`` (sigmoid probabilities) and ``energy`` (``features.energy_target`` units).
The featurization layer and a ``ModelInfo`` metadata layer live inside the model, so one ``.keras`` file
carries everything inference needs (see ARCHITECTURE.md, "Model file").

- ``reference``: the reference CNN, applied to each slice alone (context 1): conv 20x32 relu, maxpool 2,
  conv 20x64 relu, maxpool 2, dense 512 relu, dropout, dense 88 (energy), plus sigmoid heads for
  ``active``/``onset`` on the same 512 features so it can be scored like the default.
- ``context``: two cheap paths joined before the heads.
  (1) Spectral: small convolutions along frequency (local peak shapes, whatever the pitch), a dense
  projection of the frame (key-specific layout), a temporal convolution over ``context_frames`` frames.
  (2) Harmonic: for every key, the features at its first ``harmonics`` partials (a fixed interpolation
  matrix, ``HarmonicSampler``), then one convolution over (``context_frames`` frames x 3 neighbouring keys)
  whose weights are shared by all 88 keys — pitch-equivariant, so what it learns about "a note with these
  partials" transfers to keys and pianos it saw less of. This path is what lifts the unseen-piano scores.
  With ``long_fft`` the input's columns after the 512 are each frame's long window (``fft_long_magnitude``:
  4096 samples, 10.8 Hz bins), and the harmonic path also reads every key's partials there: the bass's
  partials, 27.5-55 Hz apart, are resolved only at that resolution.
  Time mixing in both paths sees past frames plus ``lookahead_frames`` future ones, zero-padded at the
  edges, so the output has the input's length and a streaming caller needs a ring of ``context_frames``
  buffers. A training-only random spectral envelope (``SpectralEnvelopeAugment``) imitates other pianos.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from pianoscribe.constants import LONG_BIN_HZ, N_BINS, N_KEYS
from pianoscribe.errors import UserError
from pianoscribe.versions import library_versions
from trainer.model.info import ModelInfo
from trainer.model.layers import (
    FrameContextPadding,
    HarmonicSampler,
    ModelInfoLayer,
    SpectralEnvelopeAugment,
    SpectralFeatures,
    TakeColumns,
)
from trainer.model.model_file import FEATURES_LAYER_NAME, INFO_LAYER_NAME

ARCHITECTURES = ("context", "reference")
HARMONIC_FEATURES_LAYER = "harmonic_conv"  # per-key features [batch, time, 88, filters]; the offline pass reads them


def new_model(
    settings: dict[str, Any],
    window: str,
    feature_mean: np.ndarray,
    feature_std: np.ndarray,
    energy_scale: float,
    long_fft_bins: int = 0,
) -> tuple[keras.Model, ModelInfo]:
    """A fresh model of the ``fit`` settings' architecture and the ``ModelInfo`` it carries (thresholds are set
    after training); ``window`` is the store's analysis window, the rest comes from the train split;
    ``long_fft_bins`` > 0: the input also holds each frame's long window (``fit.context.long_fft``)."""
    arch = settings["arch"]
    context_frames, lookahead_frames = context_of(arch, settings)
    info = ModelInfo(
        arch=arch,
        context_frames=context_frames,
        lookahead_frames=lookahead_frames,
        window=window,
        energy_scale=energy_scale,
        min_note_seconds=float(settings["min_note_seconds"]),
        versions=library_versions("pianoscribe", "tensorflow", "tensorflow-cpu", "keras", "numpy"),
        long_fft_bins=long_fft_bins,
    )
    return build_model(arch, settings, info, feature_mean, feature_std), info


def build_model(
    arch: str, settings: dict[str, Any], info: ModelInfo, feature_mean: np.ndarray, feature_std: np.ndarray
) -> keras.Model:
    """A fresh, uncompiled model ``arch`` with the train split's featurization statistics baked in."""
    if arch not in ARCHITECTURES:
        raise UserError(f"fit.arch: expected one of {', '.join(ARCHITECTURES)}, got {arch!r}")
    long_bins = int(info.long_fft_bins)
    if long_bins and arch != "context":
        raise UserError(f"fit.context.long_fft: only the context architecture reads the long window, not {arch}")
    input_name = "fft_magnitude_and_long" if long_bins else "fft_magnitude"
    fft_magnitude = keras.Input(shape=(None, N_BINS + long_bins), name=input_name, dtype="float32")
    passed = ModelInfoLayer(info.to_dict(), name=INFO_LAYER_NAME)(fft_magnitude)
    envelope_db, bass_cut_db = (settings["context"].get(name, 0.0) for name in ("envelope_db", "bass_cut_db"))
    if arch == "context" and (envelope_db > 0 or bass_cut_db > 0):
        passed = SpectralEnvelopeAugment(
            envelope_db,
            seed=int(settings["seed"]),
            bass_cut_db=bass_cut_db,
            long_fft_bins=long_bins,
            name="envelope_augment",
        )(passed)
    features = SpectralFeatures(
        settings["compression"], feature_mean, feature_std, bins=N_BINS + long_bins, name=FEATURES_LAYER_NAME
    )(passed)
    if arch == "reference":
        hidden = _reference_trunk(features, settings)
    else:
        long_features = None
        if long_bins:
            long_features = TakeColumns(N_BINS, N_BINS + long_bins, name="long_columns")(features)
            features = TakeColumns(0, N_BINS, name="fft_columns")(features)
        hidden = _context_trunk(features, settings, info, long_features)
    outputs = {
        "active": keras.layers.Dense(N_KEYS, activation="sigmoid", name="active")(hidden),
        "onset": keras.layers.Dense(N_KEYS, activation="sigmoid", name="onset")(hidden),
        "energy": keras.layers.Dense(N_KEYS, name="energy")(hidden),
    }
    return keras.Model(fft_magnitude, outputs, name=f"pianoscribe_{arch}")


def context_of(arch: str, settings: dict[str, Any]) -> tuple[int, int]:
    """``(context_frames, lookahead_frames)`` the architecture will use, validated."""
    if arch == "reference":
        return 1, 0
    context_frames, lookahead_frames = int(settings["context_frames"]), int(settings["lookahead_frames"])
    if context_frames < 1:
        raise UserError(f"fit.context_frames: must be >= 1, got {context_frames}")
    if not 0 <= lookahead_frames < context_frames:
        raise UserError(f"fit.lookahead_frames: must be in 0..context_frames-1, got {lookahead_frames}")
    return context_frames, lookahead_frames


def _per_frame_spectrum(features):
    """``[batch, time, bins]`` -> ``[batch, time, bins, 1]``: 2-D layers with a time kernel of 1 act per frame."""
    return keras.layers.Reshape((-1, N_BINS, 1))(features)


def _reference_trunk(features, settings):
    spectrum = _per_frame_spectrum(features)
    hidden = keras.layers.Conv2D(32, (1, 20), activation="relu", name="ref_conv1")(spectrum)
    hidden = keras.layers.MaxPooling2D((1, 2), name="ref_pool1")(hidden)
    hidden = keras.layers.Conv2D(64, (1, 20), activation="relu", name="ref_conv2")(hidden)
    hidden = keras.layers.MaxPooling2D((1, 2), name="ref_pool2")(hidden)
    hidden = keras.layers.Reshape((-1, hidden.shape[2] * hidden.shape[3]), name="ref_flatten")(hidden)
    hidden = keras.layers.Dense(512, activation="relu", name="ref_dense")(hidden)
    return keras.layers.Dropout(settings["reference"]["dropout"], name="ref_dropout")(hidden)


def _context_trunk(features, settings, info: ModelInfo, long_features=None):
    config = settings["context"]
    spectrum = _per_frame_spectrum(features)
    hidden = spectrum
    for index, filters in enumerate(config["freq_filters"]):
        hidden = keras.layers.Conv2D(
            filters, (1, config["freq_kernel"]), padding="same", activation="relu", name=f"freq_conv{index + 1}"
        )(hidden)
    if config["freq_pool"] > 1:
        hidden = keras.layers.MaxPooling2D((1, config["freq_pool"]), name="freq_pool")(hidden)
    hidden = keras.layers.Reshape((-1, hidden.shape[2] * hidden.shape[3]), name="freq_flatten")(hidden)
    hidden = keras.layers.Dense(config["frame_units"], activation="relu", name="frame_dense")(hidden)
    hidden = keras.layers.Dropout(config["dropout"], name="frame_dropout")(hidden)
    if info.context_frames > 1:
        hidden = FrameContextPadding(info.context_frames, info.lookahead_frames, name="time_padding")(hidden)
    hidden = keras.layers.Conv1D(config["context_units"], info.context_frames, activation="relu", name="time_conv")(
        hidden
    )
    if config.get("harmonics", 0) > 0:
        harmonic = _harmonic_branch(features, config, info, long_features)
        hidden = keras.layers.Concatenate(name="with_harmonic")([hidden, harmonic])
    return keras.layers.Dropout(config["dropout"], name="time_dropout")(hidden)


def _harmonic_branch(features, config, info: ModelInfo, long_features=None):
    """Per key: its partials over ``context_frames`` frames and its neighbour keys, weights shared by all keys;
    with ``long_features``, its partials in the long window too (more points per key, the same filters)."""
    divisions = config.get("harmonic_divisions", [1])
    partials = HarmonicSampler(config["harmonics"], divisions, name="harmonic_sampler")(features)
    if long_features is not None:
        long_partials = HarmonicSampler(
            config["harmonics"], divisions, bins=info.long_fft_bins, bin_hz=LONG_BIN_HZ, name="long_harmonic_sampler"
        )(long_features)
        partials = keras.layers.Concatenate(name="with_long_partials")([partials, long_partials])
    if info.context_frames > 1:
        partials = FrameContextPadding(info.context_frames, info.lookahead_frames, name="harmonic_time_padding")(
            partials
        )
    per_key = keras.layers.Conv2D(
        config["harmonic_filters"],
        (info.context_frames, 3),
        padding="valid",
        activation="relu",
        name=HARMONIC_FEATURES_LAYER,
    )(keras.layers.ZeroPadding2D(((0, 0), (1, 1)), name="harmonic_key_padding")(partials))
    return keras.layers.Reshape((-1, N_KEYS * config["harmonic_filters"]), name="harmonic_flatten")(per_key)


def macs_per_frame(model: keras.Model) -> int:
    """Multiply-accumulates the model spends on one FFT slice (convolutions and dense layers; the rest is noise).

    Per frame, a layer costs (its output values per frame) x (inputs feeding each value).
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D)):
            kernel = layer.kernel.shape  # [*kernel_size, in, out]
            fan_in = int(np.prod(kernel[:-1]))
            per_frame_outputs = int(np.prod(layer.output.shape[2:]))
        elif isinstance(layer, keras.layers.Dense):
            fan_in = int(layer.kernel.shape[0])
            per_frame_outputs = int(np.prod(layer.output.shape[2:]))
        elif isinstance(layer, HarmonicSampler):
            fan_in, per_frame_outputs = layer.bins, N_KEYS * len(layer.multiples)  # a dense matmul by a fixed matrix
        else:
            continue
        total += fan_in * per_frame_outputs
    return total
