"""The architectures, by name, and the model file: ``build_model``, ``save_model``, ``load_model``.

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
  Time mixing in both paths sees past frames plus ``lookahead_frames`` future ones, zero-padded at the
  edges, so the output has the input's length and a streaming caller needs a ring of ``context_frames``
  buffers. A training-only random spectral envelope (``SpectralEnvelopeAugment``) imitates other pianos.
"""

from __future__ import annotations

import dataclasses
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from builder import notes
from builder.atomic import atomic_path
from builder.errors import UserError
from trainer.features import BUFFER_SIZE, N_BINS, N_KEYS, SAMPLE_RATE, WINDOWS, SpectralFeatures

ARCHITECTURES = ("context", "reference")
HEADS = ("active", "onset", "energy")
INFO_LAYER_NAME = "model_info"
FEATURES_LAYER_NAME = "spectral_features"


@dataclass
class ModelInfo:
    """What a caller needs besides the weights: how to slice/window audio, how far the model looks, thresholds."""

    arch: str
    context_frames: int
    lookahead_frames: int
    window: str
    energy_scale: float
    sample_rate: int = SAMPLE_RATE
    buffer_size: int = BUFFER_SIZE
    onset_threshold: float = 0.5
    frame_threshold: float = 0.5
    min_note_seconds: float = 0.05
    versions: dict[str, str] = dataclasses.field(default_factory=dict)   # libraries it was trained with

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelInfo":
        names = {field.name for field in dataclasses.fields(cls)}
        missing = {field.name for field in dataclasses.fields(cls)
                   if field.default is dataclasses.MISSING} - set(values)
        if missing:
            raise UserError(f"model info: missing {', '.join(sorted(missing))}")
        return cls(**{key: value for key, value in values.items() if key in names})


@keras.saving.register_keras_serializable(package="pianoscribe")
class ModelInfoLayer(keras.layers.Layer):
    """Identity on the input; exists so ``ModelInfo`` travels in the model file's config.

    Thresholds chosen after training are set with ``set_info`` before saving.
    """

    def __init__(self, info: dict[str, Any], **kwargs):
        super().__init__(**kwargs)
        self.info = dict(info)

    def set_info(self, info: ModelInfo) -> None:
        self.info = info.to_dict()

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "info": dict(self.info)}


@keras.saving.register_keras_serializable(package="pianoscribe")
class FrameContextPadding(keras.layers.Layer):
    """Zero-pad the time axis so a ``valid`` convolution of ``context_frames`` keeps the sequence length.

    ``context_frames - 1 - lookahead_frames`` frames before, ``lookahead_frames`` after: frame ``t`` sees
    ``t - past .. t + lookahead`` and nothing later.
    """

    def __init__(self, context_frames: int, lookahead_frames: int, **kwargs):
        super().__init__(**kwargs)
        self.context_frames = int(context_frames)
        self.lookahead_frames = int(lookahead_frames)

    def call(self, sequence):
        past = self.context_frames - 1 - self.lookahead_frames
        rest = [[0, 0]] * (len(sequence.shape) - 2)
        return keras.ops.pad(sequence, [[0, 0], [past, self.lookahead_frames], *rest])

    def compute_output_shape(self, input_shape):
        time = input_shape[1]
        return (input_shape[0], None if time is None else time + self.context_frames - 1, *input_shape[2:])

    def get_config(self):
        return {**super().get_config(), "context_frames": self.context_frames,
                "lookahead_frames": self.lookahead_frames}


@keras.saving.register_keras_serializable(package="pianoscribe")
class SpectralEnvelopeAugment(keras.layers.Layer):
    """Training only: multiply each segment's magnitudes by a random smooth spectral envelope.

    Pianos differ most in their spectral envelope (brightness, body resonances), so the model is shown
    random ones: ``control_points`` gains uniform in +-``max_db``, spaced evenly on a log-frequency axis and
    interpolated linearly between them. One envelope per sequence (the same for all its frames); at
    inference the layer passes its input through.

    ``bass_cut_db`` > 0 adds a random bass cut per sequence: a 12 dB/octave slope below a corner drawn
    log-uniformly in ``BASS_CUT_CORNER_HZ``, at most a depth drawn uniformly in [0, ``bass_cut_db``]. Why: a
    grand's lowest octaves radiate little at their fundamental, while the SoundFont pianos we train on are
    strongest there; without it the model learns "no fundamental -> the octave above".
    """

    BASS_CUT_CORNER_HZ = (40.0, 300.0)

    def __init__(self, max_db: float, control_points: int = 8, seed: int = 0, bass_cut_db: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_db = float(max_db)
        self.control_points = int(control_points)
        self.seed = int(seed)
        self.bass_cut_db = float(bass_cut_db)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        octaves = np.log2(np.maximum(np.arange(N_BINS), 1.0))  # bin 0 and 1 share the lowest point
        positions = octaves / octaves.max() * (self.control_points - 1)
        below = np.clip(np.floor(positions).astype(int), 0, self.control_points - 2)
        weight_above = positions - below
        interpolation = np.zeros((self.control_points, N_BINS), np.float32)
        interpolation[below, np.arange(N_BINS)] = 1.0 - weight_above
        interpolation[below + 1, np.arange(N_BINS)] = weight_above
        self.interpolation = interpolation
        bin_hz = np.maximum(np.arange(N_BINS), 0.5) * SAMPLE_RATE / BUFFER_SIZE  # bin 0 counts as half a bin
        self.bin_octave = np.log2(bin_hz).astype(np.float32)

    def call(self, fft_magnitude, training=None):
        if not training or (self.max_db <= 0 and self.bass_cut_db <= 0):
            return fft_magnitude
        batch = keras.ops.shape(fft_magnitude)[0]
        gains_db = keras.random.uniform((batch, 1, self.control_points), -self.max_db, self.max_db,
                                        seed=self.seed_generator)
        envelope_db = keras.ops.matmul(gains_db, keras.ops.convert_to_tensor(self.interpolation))
        if self.bass_cut_db > 0:
            low, high = np.log2(self.BASS_CUT_CORNER_HZ)
            corner_octave = keras.random.uniform((batch, 1, 1), low, high, seed=self.seed_generator)
            depth_db = keras.random.uniform((batch, 1, 1), 0.0, self.bass_cut_db, seed=self.seed_generator)
            octaves_below = keras.ops.maximum(corner_octave - keras.ops.convert_to_tensor(self.bin_octave), 0.0)
            envelope_db = envelope_db - keras.ops.minimum(12.0 * octaves_below, depth_db)
        return fft_magnitude * keras.ops.power(10.0, envelope_db / 20.0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_db": self.max_db, "control_points": self.control_points,
                "seed": self.seed, "bass_cut_db": self.bass_cut_db}


@keras.saving.register_keras_serializable(package="pianoscribe")
class HarmonicSampler(keras.layers.Layer):
    """``[batch, time, 512]`` features -> ``[batch, time, 88, positions]``: each key's features at multiples of
    its fundamental (linear interpolation between bins; 0 above the last bin).

    ``harmonics`` = 8 and ``divisions`` = (1,) read the first 8 partials. ``divisions`` (2, 3) add the points
    n f0 / 2 and n f0 / 3 up to ``harmonics`` f0: where the partials of the notes an octave and a twelfth
    below would be. Why: a key's own partials are also the even partials of the key an octave down; energy at
    1.5 f0, 2.5 f0, ... tells the per-key filter that the lower note, not this one, is sounding (octave
    errors were a third of the extra frames on the held-out piano).

    A fixed (untrained) matrix: the layout of partials is the same on every piano, so what is learned on
    top of it is shared by all keys and does not depend on one instrument's timbre.
    """

    def __init__(self, harmonics: int, divisions: tuple[int, ...] | list[int] = (1,), **kwargs):
        super().__init__(**kwargs)
        self.harmonics = int(harmonics)
        self.divisions = tuple(int(division) for division in divisions)
        self.multiples = harmonic_multiples(self.harmonics, self.divisions)
        fundamentals = notes.key_frequency(np.arange(notes.LOWEST_KEY, notes.HIGHEST_KEY + 1))
        positions = fundamentals[:, None] * self.multiples / (SAMPLE_RATE / BUFFER_SIZE)
        n_positions = len(self.multiples)
        sampler = np.zeros((N_BINS, N_KEYS, n_positions), np.float32)
        below = np.floor(positions).astype(int)
        weight_above = (positions - below).astype(np.float32)
        keys, points = np.meshgrid(np.arange(N_KEYS), np.arange(n_positions), indexing="ij")
        inside = below + 1 < N_BINS
        sampler[below[inside], keys[inside], points[inside]] = 1.0 - weight_above[inside]
        sampler[below[inside] + 1, keys[inside], points[inside]] = weight_above[inside]
        self.sampler = sampler.reshape(N_BINS, N_KEYS * n_positions)

    def call(self, features):
        sampled = keras.ops.matmul(features, keras.ops.convert_to_tensor(self.sampler))
        shape = keras.ops.shape(features)
        return keras.ops.reshape(sampled, (shape[0], shape[1], N_KEYS, len(self.multiples)))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], N_KEYS, len(self.multiples))

    def get_config(self):
        return {**super().get_config(), "harmonics": self.harmonics, "divisions": list(self.divisions)}


def harmonic_multiples(harmonics: int, divisions: tuple[int, ...]) -> np.ndarray:
    """Sorted distinct multiples ``n / d`` of f0 in (0, ``harmonics``] for each division ``d``."""
    if not divisions or min(divisions) < 1:
        raise UserError(f"fit.context.harmonic_divisions: expected positive integers, got {list(divisions)}")
    multiples = {round(n / division, 9) for division in divisions for n in range(1, harmonics * division + 1)}
    return np.array(sorted(multiples), dtype=np.float64)


def build_model(arch: str, settings: dict[str, Any], info: ModelInfo, feature_mean: np.ndarray,
                feature_std: np.ndarray) -> keras.Model:
    """A fresh, uncompiled model ``arch`` with the train split's featurization statistics baked in."""
    if arch not in ARCHITECTURES:
        raise UserError(f"fit.arch: expected one of {', '.join(ARCHITECTURES)}, got {arch!r}")
    fft_magnitude = keras.Input(shape=(None, N_BINS), name="fft_magnitude", dtype="float32")
    passed = ModelInfoLayer(info.to_dict(), name=INFO_LAYER_NAME)(fft_magnitude)
    envelope_db, bass_cut_db = (settings["context"].get(name, 0.0) for name in ("envelope_db", "bass_cut_db"))
    if arch == "context" and (envelope_db > 0 or bass_cut_db > 0):
        passed = SpectralEnvelopeAugment(envelope_db, seed=int(settings["seed"]), bass_cut_db=bass_cut_db,
                                         name="envelope_augment")(passed)
    features = SpectralFeatures(settings["compression"], feature_mean, feature_std,
                                name=FEATURES_LAYER_NAME)(passed)
    if arch == "reference":
        hidden = _reference_trunk(features, settings)
    else:
        hidden = _context_trunk(features, settings, info)
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


def _context_trunk(features, settings, info: ModelInfo):
    config = settings["context"]
    spectrum = _per_frame_spectrum(features)
    hidden = spectrum
    for index, filters in enumerate(config["freq_filters"]):
        hidden = keras.layers.Conv2D(filters, (1, config["freq_kernel"]), padding="same", activation="relu",
                                     name=f"freq_conv{index + 1}")(hidden)
    if config["freq_pool"] > 1:
        hidden = keras.layers.MaxPooling2D((1, config["freq_pool"]), name="freq_pool")(hidden)
    hidden = keras.layers.Reshape((-1, hidden.shape[2] * hidden.shape[3]), name="freq_flatten")(hidden)
    hidden = keras.layers.Dense(config["frame_units"], activation="relu", name="frame_dense")(hidden)
    hidden = keras.layers.Dropout(config["dropout"], name="frame_dropout")(hidden)
    if info.context_frames > 1:
        hidden = FrameContextPadding(info.context_frames, info.lookahead_frames, name="time_padding")(hidden)
    hidden = keras.layers.Conv1D(config["context_units"], info.context_frames, activation="relu",
                                 name="time_conv")(hidden)
    if config.get("harmonics", 0) > 0:
        hidden = keras.layers.Concatenate(name="with_harmonic")([hidden, _harmonic_branch(features, config, info)])
    return keras.layers.Dropout(config["dropout"], name="time_dropout")(hidden)


def _harmonic_branch(features, config, info: ModelInfo):
    """Per key: its partials over ``context_frames`` frames and its neighbour keys, weights shared by all keys."""
    partials = HarmonicSampler(config["harmonics"], config.get("harmonic_divisions", [1]),
                               name="harmonic_sampler")(features)
    if info.context_frames > 1:
        partials = FrameContextPadding(info.context_frames, info.lookahead_frames,
                                       name="harmonic_time_padding")(partials)
    per_key = keras.layers.Conv2D(config["harmonic_filters"], (info.context_frames, 3), padding="valid",
                                  activation="relu", name="harmonic_conv")(
        keras.layers.ZeroPadding2D(((0, 0), (1, 1)), name="harmonic_key_padding")(partials))
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
            fan_in, per_frame_outputs = N_BINS, N_KEYS * len(layer.multiples)  # a dense matmul by a fixed matrix
        else:
            continue
        total += fan_in * per_frame_outputs
    return total


def model_info(model: keras.Model) -> ModelInfo:
    try:
        layer = model.get_layer(INFO_LAYER_NAME)
    except ValueError as error:
        raise UserError(f"model {model.name}: no '{INFO_LAYER_NAME}' layer (not a pianoscribe model)") from error
    return ModelInfo.from_dict(layer.info)


def set_model_info(model: keras.Model, info: ModelInfo) -> None:
    model.get_layer(INFO_LAYER_NAME).set_info(info)


def save_model(model: keras.Model, path: Path) -> None:
    """Write the ``.keras`` file atomically (temporary name, then rename), without optimizer state."""
    path = Path(path)
    if path.suffix != ".keras":
        raise UserError(f"{path}: the model file must end in .keras")
    from keras.src.saving import saving_lib  # the public save_model wants a name ending in .keras; ours is temporary

    inference_model = model.__class__.from_config(model.get_config())  # uncompiled: no optimizer state in the file
    inference_model.set_weights(model.get_weights())
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        saving_lib.save_model(inference_model, file)


def load_model(path: Path | str) -> tuple[keras.Model, ModelInfo]:
    """Load a model written by ``trainer fit`` and check it is one this code can feed."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such model file (run `trainer fit` first)")
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path}: not a Keras model file")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises many kinds for a broken or foreign file
        raise UserError(f"{path}: cannot load the model ({' '.join(str(error).split())[:200]})") from error
    info = model_info(model)
    check_featurization(model, info, path)
    return model, info


def check_featurization(model: keras.Model, info: ModelInfo, path: Path | str) -> None:
    """The model must take 512-bin slices of 1024-sample buffers at 44.1 kHz and carry its own features layer."""
    problems = []
    if info.sample_rate != SAMPLE_RATE or info.buffer_size != BUFFER_SIZE:
        problems.append(f"made for {info.buffer_size}-sample buffers at {info.sample_rate} Hz, "
                        f"this code slices {BUFFER_SIZE} at {SAMPLE_RATE}")
    if info.window not in WINDOWS:
        problems.append(f"unknown window {info.window!r}")
    if tuple(model.inputs[0].shape[2:]) != (N_BINS,):
        problems.append(f"input has shape {tuple(model.inputs[0].shape)}, expected (batch, time, {N_BINS})")
    if not any(isinstance(layer, SpectralFeatures) for layer in model.layers):
        problems.append("no featurization layer inside")
    missing_heads = set(HEADS) - set(model.output_names if hasattr(model, "output_names") else [])
    if missing_heads:
        problems.append(f"missing heads {', '.join(sorted(missing_heads))}")
    if problems:
        raise UserError(f"{path}: model/featurization mismatch: {'; '.join(problems)}")
