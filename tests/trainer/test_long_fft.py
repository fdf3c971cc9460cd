"""The long window end to end: a store with ``fft_long_magnitude``, a model that reads it, inference that feeds it
the same numbers block by block, buffer by buffer and all at once."""

from __future__ import annotations

import numpy as np
import pytest

from builder.dataset import store
from builder.engine import fft_long_magnitude_of_audio, fft_magnitude_of_audio
from pianoscribe.defaults import defaults
from pianoscribe.errors import UserError
from tests.stores import synthesize_store
from tests.trainer.conftest import tiny_synth_settings
from trainer import fit
from trainer.features import Featurizer
from trainer.inference.frame_model import FrameModel
from trainer.inference.streaming import StreamingTranscriber

LONG_BINS = 48


def tiny_fit_settings(long_fft: bool) -> dict:
    settings = defaults("fit")
    settings.update({"epochs": 1, "batch_size": 32, "steps_per_epoch": 3, "val_steps": 1, "stats_rows": 256})
    settings["context"].update({"frame_units": 16, "context_units": 16, "long_fft": long_fft})
    return settings


@pytest.fixture(scope="module")
def long_model(tiny_inputs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("long_fft")
    settings = {**tiny_synth_settings(tiny_inputs, n=2048), "long_fft_bins": LONG_BINS}
    synthesize_store(settings, folder / "long.zarr", folder)
    model_path = folder / "model.keras"
    fit.fit(folder / "long.zarr", model_path, tiny_fit_settings(True), metrics_dir=folder, logs_dir=folder / "logs")
    return FrameModel.load(model_path, backend="keras"), folder


def test_featurizer_rows_are_the_same_block_by_block_as_all_at_once():
    audio = np.random.default_rng(0).normal(0, 0.1, 40 * 1024).astype(np.float32)
    whole = np.concatenate(
        [fft_magnitude_of_audio(audio, "hann"), fft_long_magnitude_of_audio(audio, LONG_BINS)], axis=1
    )
    featurizer = Featurizer("hann", LONG_BINS)
    buffers = audio.reshape(-1, 1024)
    blocked = np.concatenate([featurizer.rows(buffers[start : start + 7]) for start in range(0, 40, 7)])
    assert np.array_equal(blocked, whole)


def test_a_model_reads_the_long_window_and_streams_it_frame_for_frame(long_model):
    frame_model, _ = long_model
    assert frame_model.info.long_fft_bins == LONG_BINS and frame_model.input_bins == 512 + LONG_BINS
    assert "long_harmonic_sampler" in [layer.name for layer in frame_model.network.model.layers]
    audio = np.random.default_rng(1).normal(0, 0.05, 30 * 1024).astype(np.float32)
    offline = frame_model.heads(Featurizer("hann", LONG_BINS).rows(audio.reshape(-1, 1024)))
    streamer = StreamingTranscriber(frame_model)
    streamed = [frame for frame in (streamer.push(buffer) for buffer in audio.reshape(-1, 1024)) if frame is not None]
    streamed += streamer.flush()
    np.testing.assert_allclose(np.stack(streamed), offline["active"], atol=1e-5)


def test_a_long_fft_fit_needs_a_store_with_the_long_window(tiny_inputs, tmp_path):
    path = tmp_path / "short.zarr"
    synthesize_store({**tiny_synth_settings(tiny_inputs, n=2048), "long_fft_bins": 0}, path, tmp_path)
    assert store.LONG_FFT not in store.open_store(path)["train"]
    with pytest.raises(UserError, match="fft_long_magnitude.*synth.long_fft_bins"):
        fit.fit(path, tmp_path / "m.keras", tiny_fit_settings(True), metrics_dir=tmp_path)


def test_the_onnx_twin_reads_the_long_window_as_keras_does(long_model):
    keras_model, folder = long_model
    onnx_model = FrameModel.load(folder / "model.onnx", backend="onnx")
    assert onnx_model.info == keras_model.info and onnx_model.input_bins == 512 + LONG_BINS
    audio = np.random.default_rng(2).normal(0, 0.05, 50 * 1024).astype(np.float32)
    rows = Featurizer("hann", LONG_BINS).rows(audio.reshape(-1, 1024))
    expected, got = keras_model.heads(rows), onnx_model.heads(rows)
    for head in ("active", "onset", "energy"):
        np.testing.assert_allclose(got[head], expected[head], atol=1e-5, rtol=1e-5)
