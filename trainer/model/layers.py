"""The custom Keras layers of the models: metadata, featurization, time padding, training-time augmentation,
harmonic sampling.

Each is registered with Keras (package ``pianoscribe``) so a model file loads without this code's help.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from pianoscribe import keyboard
from pianoscribe.constants import BUFFER_SIZE, HIGHEST_KEY, LONG_BIN_HZ, LOWEST_KEY, N_BINS, N_KEYS, SAMPLE_RATE
from pianoscribe.errors import UserError
from trainer.model.info import ModelInfo


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
class SpectralFeatures(keras.layers.Layer):
    """``(log(1 + compression * fft_magnitude) - mean) / std`` per bin; ``mean``/``std`` are saved weights.

    Built with the train split's statistics at fit time; restored from the model file at load time, so the
    model carries its own featurization (numpy twin: ``trainer.features.spectral_features``). Written as
    ``log(1 + x)``, not ``log1p``: ONNX has no log1p, and in float32 the two differ by at most about one
    ulp of 1 (1.2e-7 absolute) for the ``x >= 0`` this layer sees (docs/inference.md measures it).
    """

    def __init__(self, compression: float, mean=None, std=None, bins: int = N_BINS, **kwargs):
        super().__init__(**kwargs)
        self.compression = float(compression)
        self.bins = int(bins)  # 512, or 512 + long_fft_bins
        self._initial_mean = None if mean is None else np.asarray(mean, np.float32)
        self._initial_std = None if std is None else np.asarray(std, np.float32)

    def build(self, input_shape):
        if input_shape[-1] != self.bins:
            raise UserError(f"model input: expected {self.bins} FFT bins, got {input_shape[-1]}")
        mean_init = "zeros" if self._initial_mean is None else keras.initializers.Constant(self._initial_mean)
        std_init = "ones" if self._initial_std is None else keras.initializers.Constant(self._initial_std)
        self.mean = self.add_weight(shape=(self.bins,), initializer=mean_init, trainable=False, name="mean")
        self.std = self.add_weight(shape=(self.bins,), initializer=std_init, trainable=False, name="std")

    def call(self, fft_magnitude):
        compressed = keras.ops.log(1.0 + self.compression * keras.ops.cast(fft_magnitude, "float32"))
        return (compressed - self.mean) / self.std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "compression": self.compression, "bins": self.bins}


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
        return {
            **super().get_config(),
            "context_frames": self.context_frames,
            "lookahead_frames": self.lookahead_frames,
        }


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

    def __init__(
        self,
        max_db: float,
        control_points: int = 8,
        seed: int = 0,
        bass_cut_db: float = 0.0,
        long_fft_bins: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.max_db = float(max_db)
        self.control_points = int(control_points)
        self.seed = int(seed)
        self.bass_cut_db = float(bass_cut_db)
        self.long_fft_bins = int(long_fft_bins)  # columns after the 512: the long window's bins, the same envelope
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        # each column's frequency in units of the 1024-sample FFT's bins (the envelope's axis)
        short_bins = np.arange(N_BINS, dtype=np.float64)
        long_bins = np.arange(self.long_fft_bins) * LONG_BIN_HZ / (SAMPLE_RATE / BUFFER_SIZE)
        columns = np.concatenate([short_bins, long_bins])
        octaves = np.log2(np.maximum(columns, 1.0)) / np.log2(N_BINS - 1)  # below bin 1: the lowest point
        positions = octaves * (self.control_points - 1)
        below = np.clip(np.floor(positions).astype(int), 0, self.control_points - 2)
        weight_above = positions - below
        interpolation = np.zeros((self.control_points, len(columns)), np.float32)
        interpolation[below, np.arange(len(columns))] = 1.0 - weight_above
        interpolation[below + 1, np.arange(len(columns))] = weight_above
        self.interpolation = interpolation
        bin_hz = np.maximum(columns, 0.5) * SAMPLE_RATE / BUFFER_SIZE  # bin 0 counts as half a (short) bin
        self.bin_octave = np.log2(bin_hz).astype(np.float32)

    def call(self, fft_magnitude, training=None):
        if not training or (self.max_db <= 0 and self.bass_cut_db <= 0):
            return fft_magnitude
        batch = keras.ops.shape(fft_magnitude)[0]
        gains_db = keras.random.uniform(
            (batch, 1, self.control_points), -self.max_db, self.max_db, seed=self.seed_generator
        )
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
        return {
            **super().get_config(),
            "max_db": self.max_db,
            "control_points": self.control_points,
            "seed": self.seed,
            "bass_cut_db": self.bass_cut_db,
            "long_fft_bins": self.long_fft_bins,
        }


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

    def __init__(
        self,
        harmonics: int,
        divisions: tuple[int, ...] | list[int] = (1,),
        bins: int = N_BINS,
        bin_hz: float = SAMPLE_RATE / BUFFER_SIZE,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.harmonics = int(harmonics)
        self.divisions = tuple(int(division) for division in divisions)
        self.bins = int(bins)  # the spectrum it reads: 512 bins of 43 Hz, or the long window's of 10.8 Hz
        self.bin_hz = float(bin_hz)
        self.multiples = harmonic_multiples(self.harmonics, self.divisions)
        fundamentals = keyboard.key_frequency(np.arange(LOWEST_KEY, HIGHEST_KEY + 1))
        positions = fundamentals[:, None] * self.multiples / self.bin_hz
        n_positions = len(self.multiples)
        sampler = np.zeros((self.bins, N_KEYS, n_positions), np.float32)
        below = np.floor(positions).astype(int)
        weight_above = (positions - below).astype(np.float32)
        keys, points = np.meshgrid(np.arange(N_KEYS), np.arange(n_positions), indexing="ij")
        inside = below + 1 < self.bins
        sampler[below[inside], keys[inside], points[inside]] = 1.0 - weight_above[inside]
        sampler[below[inside] + 1, keys[inside], points[inside]] = weight_above[inside]
        self.sampler = sampler.reshape(self.bins, N_KEYS * n_positions)

    def call(self, features):
        sampled = keras.ops.matmul(features, keras.ops.convert_to_tensor(self.sampler))
        shape = keras.ops.shape(features)
        return keras.ops.reshape(sampled, (shape[0], shape[1], N_KEYS, len(self.multiples)))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], N_KEYS, len(self.multiples))

    def get_config(self):
        return {
            **super().get_config(),
            "harmonics": self.harmonics,
            "divisions": list(self.divisions),
            "bins": self.bins,
            "bin_hz": self.bin_hz,
        }


@keras.saving.register_keras_serializable(package="pianoscribe")
class TakeColumns(keras.layers.Layer):
    """``[..., columns]`` -> ``[..., start:stop]``: the 512 FFT bins or the long window's bins of a model input."""

    def __init__(self, start: int, stop: int, **kwargs):
        super().__init__(**kwargs)
        self.start, self.stop = int(start), int(stop)

    def call(self, inputs):
        return inputs[..., self.start : self.stop]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.stop - self.start)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}


def harmonic_multiples(harmonics: int, divisions: tuple[int, ...]) -> np.ndarray:
    """Sorted distinct multiples ``n / d`` of f0 in (0, ``harmonics``] for each division ``d``."""
    if not divisions or min(divisions) < 1:
        raise UserError(f"fit.context.harmonic_divisions: expected positive integers, got {list(divisions)}")
    multiples = {round(n / division, 9) for division in divisions for n in range(1, harmonics * division + 1)}
    return np.array(sorted(multiples), dtype=np.float64)


@keras.saving.register_keras_serializable(package="pianoscribe")
class StackHeads(keras.layers.Layer):
    """Heads ``{active, onset, energy}`` ``[batch, time, 88]`` each -> ``[batch, time, 88, 3]``: what the offline
    pass reads (``trainer.model.offline``)."""

    def call(self, active, onset, energy):
        return keras.ops.stack([active, onset, energy], axis=-1)

    def compute_output_shape(self, active_shape, onset_shape=None, energy_shape=None):
        return (*active_shape, 3)


@keras.saving.register_keras_serializable(package="pianoscribe")
class CorrectedProbability(keras.layers.Layer):
    """``sigmoid(logit(heads[..., channel]) + correction[..., channel])``: the offline pass corrects the streaming
    model's probability in logit space, so a zero correction (its initial state) passes it through unchanged."""

    def __init__(self, channel: int, **kwargs):
        super().__init__(**kwargs)
        self.channel = int(channel)

    def call(self, heads, correction):
        probability = keras.ops.clip(heads[..., self.channel], 1e-4, 1.0 - 1e-4)
        logit = keras.ops.log(probability) - keras.ops.log(1.0 - probability)
        return keras.ops.sigmoid(logit + correction[..., self.channel])

    def compute_output_shape(self, heads_shape, correction_shape=None):
        return tuple(heads_shape[:-1])

    def get_config(self):
        return {**super().get_config(), "channel": self.channel}
