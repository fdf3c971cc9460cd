"""Featurization: the same numbers in training (Keras layer, store) and inference (numpy twin, audio)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pianoscribe.errors import UserError
from trainer import features


def test_fft_magnitude_is_numpy_rfft_of_the_periodic_hann_windowed_buffer():
    rng = np.random.default_rng(0)
    buffers = rng.standard_normal((7, 1024)).astype(np.float32) * 0.1
    periodic_hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(1024) / 1024)
    expected = np.abs(np.fft.rfft(buffers.astype(np.float64) * periodic_hann, axis=1))[:, :512]
    magnitude = features.fft_magnitude_of_buffers(buffers, "hann")
    assert magnitude.shape == (7, 512) and magnitude.dtype == np.float32
    np.testing.assert_allclose(magnitude, expected, rtol=1e-4, atol=1e-4)
    rectangular = np.abs(np.fft.rfft(buffers.astype(np.float64), axis=1))[:, :512]
    np.testing.assert_allclose(features.fft_magnitude_of_buffers(buffers, "none"), rectangular, rtol=1e-4, atol=1e-4)


def test_a_sine_on_a_bin_peaks_in_that_bin():
    time = np.arange(1024)
    buffer = np.sin(2 * np.pi * 40 * time / 1024).astype(np.float32)[None]
    magnitude = features.fft_magnitude_of_buffers(buffer, "hann")[0]
    assert int(np.argmax(magnitude)) == 40
    assert magnitude[40] == pytest.approx(1024 / 4, rel=1e-3)  # amplitude * N/2 * mean(hann)


def test_unknown_window_is_a_user_error():
    with pytest.raises(UserError, match="window"):
        features.fft_magnitude_of_buffers(np.zeros((1, 1024), np.float32), "blackman")


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 5000))
def test_frames_follow_the_1024_grid_and_zero_pad_the_tail(n_samples):
    audio = np.arange(1, n_samples + 1, dtype=np.float32)
    frames = features.frames_from_audio(audio)
    assert frames.shape == (-(-n_samples // 1024), 1024)
    assert np.array_equal(frames.ravel()[:n_samples], audio)
    assert not frames.ravel()[n_samples:].any()
    for index in range(frames.shape[0]):
        assert frames[index, 0] == (1024 * index + 1)


def test_keras_layer_and_numpy_twin_agree_and_survive_a_model_file(tmp_path):
    import keras

    from trainer.model.layers import SpectralFeatures

    rng = np.random.default_rng(1)
    magnitude = (rng.exponential(2.0, size=(3, 9, 512)) * (rng.random((3, 9, 512)) < 0.3)).astype(np.float32)
    statistics = features.FeatureStatistics(compression=100.0)
    statistics.add(magnitude.reshape(-1, 512))
    mean, std = statistics.mean_std()
    assert std.min() >= features.STD_FLOOR

    twin = features.spectral_features(magnitude, 100.0, mean, std)
    inputs = keras.Input((None, 512))
    model = keras.Model(inputs, SpectralFeatures(100.0, mean, std)(inputs))
    np.testing.assert_allclose(np.asarray(model(magnitude)), twin, rtol=1e-5, atol=1e-5)

    path = tmp_path / "features.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(reloaded(magnitude)), twin, rtol=1e-5, atol=1e-5)


def test_statistics_of_float16_and_float32_magnitudes_agree():
    rng = np.random.default_rng(2)
    magnitude = rng.exponential(1.0, size=(4096, 512)).astype(np.float32)
    exact, half = features.FeatureStatistics(100.0), features.FeatureStatistics(100.0)
    exact.add(magnitude)
    half.add(magnitude.astype(np.float16))
    np.testing.assert_allclose(exact.mean_std()[0], half.mean_std()[0], atol=1e-3)


def test_energy_target_and_velocity_are_monotonic_and_bounded():
    energy_scale = 10.0
    key_energy = np.array([0.0, 0.1, 2.5, 10.0, 40.0], dtype=np.float32)
    target = features.energy_target(key_energy, energy_scale)
    assert np.all(np.diff(target) > 0) and target[3] == pytest.approx(1.0)
    velocity = features.energy_to_velocity(target)
    assert velocity.tolist() == [1, 13, 64, 127, 127]
    assert features.energy_to_velocity(np.array([-0.3])).tolist() == [1]


def test_a_velocity_curve_is_read_per_key_log_log_and_extended_at_both_ends():
    """Key 0 is 4x louder than key 1 at every velocity; amplitude ~ velocity on key 0, ~ velocity**2 on key 1."""
    velocities = np.array([16, 64, 127])
    energy = np.zeros((88, 3))
    energy[0] = velocities / 127
    energy[1] = (velocities / 127) ** 2 / 4
    curve = {"velocities": velocities.tolist(), "energy": energy.tolist()}
    keys = np.array([0, 0, 0, 1, 1, 1])
    heard = np.array([16 / 127, 32 / 127, 8 / 127, 0.25, (32 / 127) ** 2 / 4, 1.0])
    read = features.energy_to_velocity(heard, keys, curve)
    assert read.tolist() == [16, 32, 8, 127, 32, 127]  # at a point, between (log-log), below, above (clipped)
    assert features.energy_to_velocity(np.array([0.5]), np.array([0]), None).tolist() == [64]  # no curve: linear
    monotone = features.energy_to_velocity(np.linspace(0, 2, 200), np.zeros(200, int), curve)
    assert np.all(np.diff(monotone) >= 0) and monotone.min() >= 1 and monotone.max() == 127


def test_the_store_attack_energy_becomes_head_units():
    attack = {"velocities": [64, 127], "key_energy": [[4.0, 16.0]] * 88}
    curve = features.velocity_curve(attack, energy_scale=16.0)
    assert curve == {"velocities": [64, 127], "energy": [[0.5, 1.0]] * 88}
    assert features.velocity_curve(None, 16.0) is None  # a store made before stores recorded it
