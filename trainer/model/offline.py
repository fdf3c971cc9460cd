"""The offline model: the streaming model followed by a pass over its heads that looks seconds ahead and back.

The streaming model hears 5 buffers (23 ms ahead). Much of what it gets wrong is plain over a longer view: an
"onset" that is a partial of a note struck an octave or a twelfth below, a re-strike inside a held note, a note
that fades in over several buffers. The offline pass reads every key's three heads (active, onset, energy) over
time, and with ``streaming_features`` the streaming model's own per-key harmonic features (its ``harmonic_conv``
layer: how each key's partials, and those of the notes an octave and a twelfth below, sound). From the heads
alone an extra note on a partial of a sounding note looks like a real doubling (docs/training.md). It corrects
the active and onset probabilities:
- one convolution over ``key_span`` neighbouring keys on each side, so a key sees the notes whose partials it
  may be hearing;
- residual temporal convolutions of ``time_kernel`` frames with growing dilation (``dilations``), weights shared
  by all 88 keys: each key sees ``radius`` frames either side (``time_kernel // 2 * sum(dilations)``, 62 = 1.4 s
  by default). Few wide layers rather than many thin ones: on a CPU the cost is moving activations
  ([batch, time, 88, width] per layer), not multiplying (docs/training.md);
- a correction added to each head's logit, zero at the start of training (``CorrectedProbability``).
The energy head passes through unchanged, so the model's velocity curve still reads it.

``offline_model`` joins the two into one Keras model (``pass_inputs_model``, the streaming model's layers up to
its heads and features, nested in it) with the streaming model's input and heads, so the offline model is a model
file like any other (``trainer infer --model models/offline.keras``, its ONNX twin,
overlapping blocks in ``FrameModel``); its ``ModelInfo`` says how far it looks (``context_frames``,
``lookahead_frames``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras

from pianoscribe.constants import N_KEYS
from pianoscribe.errors import UserError
from trainer.model.architectures import HARMONIC_FEATURES_LAYER
from trainer.model.info import HEADS, OFFLINE_ARCH, ModelInfo
from trainer.model.layers import CorrectedProbability, ModelInfoLayer, StackHeads
from trainer.model.model_file import INFO_LAYER_NAME

CORRECTED = ("active", "onset")  # the heads the pass corrects; energy passes through


def radius_of(settings: dict[str, Any]) -> int:
    """Frames the pass sees on each side of a frame: ``time_kernel // 2`` times the sum of its dilations."""
    dilations, kernel = settings["dilations"], settings["time_kernel"]
    if not isinstance(dilations, list) or not dilations or any(int(value) < 1 for value in dilations):
        raise UserError(f"offline.dilations: expected a list of positive integers, got {dilations!r}")
    if int(kernel) < 3 or int(kernel) % 2 == 0:
        raise UserError(f"offline.time_kernel: expected an odd number >= 3, got {kernel!r}")
    return int(kernel) // 2 * sum(int(value) for value in dilations)


def pass_inputs_model(streaming: keras.Model, settings: dict[str, Any]) -> keras.Model:
    """FFT slices -> ``{"heads": [batch, time, 88, channels], "energy": [batch, time, 88]}``: what the pass reads
    (the three heads stacked, then the per-key features when ``streaming_features`` is on and the streaming model
    has them) and the energy head it passes through. Built from the streaming model's own layers."""
    heads = [streaming.get_layer(name).output for name in HEADS]
    stacked = StackHeads(name="offline_heads")(*heads)
    if settings["streaming_features"] and HARMONIC_FEATURES_LAYER in {layer.name for layer in streaming.layers}:
        features = streaming.get_layer(HARMONIC_FEATURES_LAYER).output
        stacked = keras.layers.Concatenate(name="offline_with_features")([stacked, features])
    energy = heads[HEADS.index("energy")]
    return keras.Model(streaming.inputs[0], {"heads": stacked, "energy": energy}, name="pass_inputs")


class HeadPass:
    """The offline pass's layers, applied to what it reads ``[batch, time, 88, channels]`` (``pass_inputs_model``)
    -> corrected ``active`` and ``onset`` ``[batch, time, 88]``. One set of layers serves the training model (its
    inputs in) and the joined model (FFT slices in)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        radius_of(settings)  # validates the dilations
        width, key_span = int(settings["width"]), int(settings["key_span"])
        if width < 1 or not 0 <= key_span < N_KEYS:
            raise UserError(f"offline.width / offline.key_span: expected >= 1 and 0..87, got {width} / {key_span}")
        self.keys = keras.layers.Conv2D(
            width, (1, 2 * key_span + 1), padding="same", activation="relu", name="offline_keys"
        )
        self.temporal = [
            keras.layers.Conv2D(
                width,
                (int(settings["time_kernel"]), 1),
                dilation_rate=(int(dilation), 1),
                padding="same",
                activation="relu",
                name=f"offline_time_{index}",
            )
            for index, dilation in enumerate(settings["dilations"])
        ]
        self.sums = [keras.layers.Add(name=f"offline_sum_{index}") for index in range(len(self.temporal))]
        self.correction = keras.layers.Conv2D(
            len(CORRECTED), (1, 1), kernel_initializer="zeros", name="offline_correction"
        )
        self.outputs = [CorrectedProbability(channel, name=head) for channel, head in enumerate(CORRECTED)]

    def __call__(self, heads):
        hidden = self.keys(heads)
        for temporal, total in zip(self.temporal, self.sums):
            hidden = total([hidden, temporal(hidden)])
        correction = self.correction(hidden)
        return {head: output(heads, correction) for head, output in zip(CORRECTED, self.outputs)}


def training_model(head_pass: HeadPass, channels: int) -> keras.Model:
    """What the pass reads ``[batch, time, 88, channels]`` in, corrected ``active``/``onset`` out: what the pass
    is trained as."""
    heads = keras.Input(shape=(None, N_KEYS, channels), name="heads")
    return keras.Model(heads, head_pass(heads), name="offline_pass")


def offline_model(
    pass_inputs: keras.Model, streaming_info: ModelInfo, head_pass: HeadPass, settings: dict[str, Any]
) -> tuple[keras.Model, ModelInfo]:
    """The streaming model's ``pass_inputs_model`` with the (trained) pass on it: one model, FFT slices in, heads
    out."""
    if streaming_info.arch == OFFLINE_ARCH:
        raise UserError("offline: the model it is built on must be a streaming model, not an offline one")
    radius = radius_of(settings)
    info = dataclasses.replace(
        streaming_info,
        arch=OFFLINE_ARCH,
        context_frames=int(streaming_info.context_frames) + 2 * radius,
        lookahead_frames=int(streaming_info.lookahead_frames) + radius,
    )
    fft_magnitude = keras.Input(shape=tuple(pass_inputs.inputs[0].shape[1:]), name="fft_magnitude", dtype="float32")
    passed = ModelInfoLayer(info.to_dict(), name=INFO_LAYER_NAME)(fft_magnitude)
    read = pass_inputs(passed)
    outputs = {**head_pass(read["heads"]), "energy": keras.layers.Identity(name="energy")(read["energy"])}
    return keras.Model(fft_magnitude, outputs, name=f"pianoscribe_{OFFLINE_ARCH}"), info
