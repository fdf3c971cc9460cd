"""Architectures and the model file: shapes, how far in time a frame looks, cost, save/load, bad files."""

from __future__ import annotations

import time

import keras
import numpy as np
import pytest

from pianoscribe.defaults import defaults
from pianoscribe.errors import UserError
from trainer.model import architectures, layers, model_file
from trainer.model.info import HEADS, ModelInfo

SETTINGS = defaults("fit")


def build(arch: str, **overrides) -> tuple[keras.Model, ModelInfo]:
    settings = {**SETTINGS, **overrides}
    context_frames, lookahead_frames = architectures.context_of(arch, settings)
    info = ModelInfo(
        arch=arch, context_frames=context_frames, lookahead_frames=lookahead_frames, window="hann", energy_scale=3.5
    )
    rng = np.random.default_rng(0)
    mean, std = rng.normal(2, 1, 512).astype(np.float32), rng.uniform(0.5, 2, 512).astype(np.float32)
    return architectures.build_model(arch, settings, info, mean, std), info


@pytest.fixture(scope="module")
def built():
    return {arch: build(arch) for arch in architectures.ARCHITECTURES}


@pytest.mark.parametrize("arch", architectures.ARCHITECTURES)
def test_any_sequence_length_in_same_length_out(built, arch):
    model, _ = built[arch]
    for frames in (1, 7, 33):
        outputs = model(np.random.default_rng(frames).random((2, frames, 512), dtype=np.float32))
        assert set(outputs) == set(HEADS)
        for head in HEADS:
            assert tuple(outputs[head].shape) == (2, frames, 88)
        for head in ("active", "onset"):
            assert float(np.min(outputs[head])) >= 0 and float(np.max(outputs[head])) <= 1


@pytest.mark.parametrize("context_frames,lookahead_frames", [(5, 1), (4, 0), (3, 2)])
def test_a_frame_sees_only_its_context_window(context_frames, lookahead_frames):
    model, _ = build("context", context_frames=context_frames, lookahead_frames=lookahead_frames)
    past = context_frames - 1 - lookahead_frames
    rng = np.random.default_rng(3)
    sequence = rng.random((1, 24, 512), dtype=np.float32) * 5
    base = np.asarray(model(sequence)["active"])[0]
    changed_frame = 12
    poked = sequence.copy()
    poked[0, changed_frame] += 3.0
    moved = np.abs(np.asarray(model(poked)["active"])[0] - base).max(axis=1) > 0
    assert np.flatnonzero(moved).tolist() == list(range(changed_frame - lookahead_frames, changed_frame + past + 1))


def test_reference_looks_at_each_slice_alone(built):
    model, info = built["reference"]
    assert (info.context_frames, info.lookahead_frames) == (1, 0)
    sequence = np.random.default_rng(4).random((1, 6, 512), dtype=np.float32)
    whole = np.asarray(model(sequence)["energy"])
    one_by_one = np.concatenate([np.asarray(model(sequence[:, [t]])["energy"]) for t in range(6)], axis=1)
    np.testing.assert_allclose(whole, one_by_one, rtol=1e-5, atol=1e-5)


def test_reference_cost_and_the_default_is_cheaper(built):
    # conv 20x1x32 on 493 positions, conv 20x32x64 on 227, dense 7232x512, three 512x88 heads
    expected = 493 * 20 * 32 + 227 * 20 * 32 * 64 + 113 * 64 * 512 + 3 * 512 * 88
    assert architectures.macs_per_frame(built["reference"][0]) == expected
    assert architectures.macs_per_frame(built["context"][0]) < expected


def test_save_and_load_keep_outputs_and_info(built, tmp_path):
    model, info = built["context"]
    info = ModelInfo(**{**info.to_dict(), "frame_threshold": 0.35, "onset_threshold": 0.6})
    model_file.set_model_info(model, info)
    path = tmp_path / "model.keras"
    model_file.save_model(model, path)
    loaded, loaded_info = model_file.load_model(path)
    assert loaded_info == info
    sequence = np.random.default_rng(5).random((1, 10, 512), dtype=np.float32)
    for head in HEADS:
        np.testing.assert_allclose(np.asarray(loaded(sequence)[head]), np.asarray(model(sequence)[head]), atol=1e-6)
    assert not [p for p in tmp_path.iterdir() if p.name != "model.keras"]  # no temporary left behind


def test_the_same_model_saved_twice_is_the_same_bytes(built, tmp_path):
    model, _ = built["reference"]
    first, second = tmp_path / "first" / "model.keras", tmp_path / "second" / "model.keras"
    model_file.save_model(model, first)
    time.sleep(2.1)  # the zip's time stamps have a resolution of 2 s
    model_file.save_model(model, second)
    assert first.read_bytes() == second.read_bytes()


def test_bad_model_files_are_one_line_errors(built, tmp_path):
    with pytest.raises(UserError, match="no such model file"):
        model_file.load_model(tmp_path / "missing.keras")
    not_a_model = tmp_path / "text.keras"
    not_a_model.write_text("hello")
    with pytest.raises(UserError, match="not a Keras model file"):
        model_file.load_model(not_a_model)
    inputs = keras.Input((None, 512))
    foreign = tmp_path / "foreign.keras"
    keras.Model(inputs, keras.layers.Dense(88)(inputs)).save(foreign)
    with pytest.raises(UserError, match="not a pianoscribe model"):
        model_file.load_model(foreign)
    model, info = built["reference"]
    wrong = tmp_path / "wrong.keras"
    model_file.set_model_info(model, ModelInfo(**{**info.to_dict(), "buffer_size": 2048}))
    model_file.save_model(model, wrong)
    with pytest.raises(UserError, match="featurization mismatch"):
        model_file.load_model(wrong)
    model_file.set_model_info(model, info)
    with pytest.raises(UserError, match="must end in .keras"):
        model_file.save_model(model, tmp_path / "model.h5")


def test_bad_architecture_settings_are_user_errors():
    with pytest.raises(UserError, match="fit.arch"):
        build("transformer")
    with pytest.raises(UserError, match="fit.lookahead_frames"):
        build("context", context_frames=3, lookahead_frames=3)


def test_envelope_augmentation_acts_in_training_only_and_is_smooth():
    layer = layers.SpectralEnvelopeAugment(6.0, seed=1)
    magnitude = np.ones((3, 4, 512), np.float32)
    np.testing.assert_array_equal(np.asarray(layer(magnitude, training=False)), magnitude)
    augmented = np.asarray(layer(magnitude, training=True))
    gain_db = 20 * np.log10(augmented)
    assert np.abs(gain_db).max() <= 6.0 + 1e-4 and np.abs(gain_db).max() > 1.0
    np.testing.assert_allclose(gain_db[:, 0], gain_db[:, 3], atol=1e-5)  # one envelope per sequence
    assert not np.allclose(gain_db[0, 0], gain_db[1, 0])  # a new one per sequence
    assert np.abs(np.diff(gain_db[0, 0, 32:])).max() < 0.5  # smooth above the lowest bins


def test_harmonic_sampler_reads_each_key_at_its_partials():
    sampler = layers.HarmonicSampler(6)
    bin_hz = 44100 / 1024
    features = np.zeros((1, 1, 512), np.float32)
    features[0, 0] = np.arange(512) * bin_hz  # each bin holds its own frequency: sampling gives back h * f0
    sampled = np.asarray(sampler(features))[0, 0]
    assert sampled.shape == (88, 6)
    a4 = 69 - 21
    np.testing.assert_allclose(sampled[a4], 440.0 * np.arange(1, 7), rtol=1e-5)
    assert sampled[87, 5] == 0  # C8's 6th partial (25 kHz) is above the last bin (22 kHz)


def test_bass_cut_augmentation_cuts_only_below_its_corner():
    layer = layers.SpectralEnvelopeAugment(0.0, seed=2, bass_cut_db=30.0)
    magnitude = np.ones((64, 1, 512), np.float32)
    np.testing.assert_array_equal(np.asarray(layer(magnitude, training=False)), magnitude)
    gain_db = 20 * np.log10(np.asarray(layer(magnitude, training=True))[:, 0])
    corner_bin = int(np.ceil(layers.SpectralEnvelopeAugment.BASS_CUT_CORNER_HZ[1] / (44100 / 1024)))
    np.testing.assert_allclose(gain_db[:, corner_bin:], 0.0, atol=1e-4)  # nothing above the highest corner
    assert gain_db.min() >= -30.0 - 1e-3 and gain_db[:, 1].min() < -10.0  # bounded depth, real cuts at 43 Hz
    assert np.all(np.diff(gain_db[:, 1:corner_bin], axis=1) >= -1e-4)  # a high-pass: gain rises with frequency
    restored = layers.SpectralEnvelopeAugment.from_config(layer.get_config())
    assert restored.bass_cut_db == 30.0


def test_harmonic_sampler_divisions_add_the_partials_of_lower_octaves():
    sampler = layers.HarmonicSampler(3, divisions=[1, 2])
    np.testing.assert_allclose(sampler.multiples, [0.5, 1, 1.5, 2, 2.5, 3])
    features = np.zeros((1, 1, 512), np.float32)
    features[0, 0] = np.arange(512) * 44100 / 1024
    sampled = np.asarray(sampler(features))[0, 0]
    np.testing.assert_allclose(sampled[69 - 21], 440.0 * sampler.multiples, rtol=1e-5)
    assert layers.HarmonicSampler.from_config(sampler.get_config()).divisions == (1, 2)
    with pytest.raises(UserError, match="harmonic_divisions"):
        layers.HarmonicSampler(3, divisions=[0])
