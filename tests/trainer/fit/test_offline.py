"""``trainer fit-offline``: the offline pass trained on the session model's heads over rendered training pieces."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from builder.corpus.notes import NOTE_DTYPE
from pianoscribe.defaults import defaults
from pianoscribe.errors import UserError
from trainer import fit
from trainer.fit.offline import fit_offline, onset_roll
from trainer.inference.frame_model import FrameModel
from trainer.inference.networks import KerasNetwork
from trainer.model import model_file
from trainer.model.offline import HeadPass, offline_model, pass_inputs_model

QUICK = {
    "pieces": 8,
    "seconds": 4.0,
    "time_kernel": 3,
    "dilations": [1, 2, 4],
    "epochs": 2,
    "steps_per_epoch": 4,
    "batch_windows": 4,
    "window_frames": 64,
    "width": 8,
    "key_span": 12,
    "onset_scale_min": 0.5,
}


def quick_settings(**changes) -> dict:
    settings = defaults("offline")
    settings.update(QUICK)
    settings.update(changes)
    return settings


@pytest.fixture(scope="module")
def offline(piano_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("offline")
    path = folder / "offline.keras"
    summary = fit_offline(
        piano_model.store,
        piano_model.model,
        path,
        quick_settings(),
        data_dir=piano_model.data_dir,
        metrics_dir=folder / "metrics",
    )
    return path, summary, folder


def test_the_offline_model_looks_a_radius_further_and_runs_on_both_backends(offline, piano_model):
    path, summary, folder = offline
    assert summary["radius_frames"] == 1 + 2 + 4
    assert summary["pieces"] > 0 and summary["frames"] > 0 and np.isfinite(summary["loss"])
    assert (folder / "metrics" / "fit_offline.json").exists() and path.with_suffix(".onnx").exists()
    streaming = FrameModel.load(piano_model.model, "keras")
    keras_model, onnx_model = FrameModel.load(path, "keras"), FrameModel.load(path, "onnx")
    assert keras_model.info.arch == "offline"
    assert keras_model.info.lookahead_frames == streaming.info.lookahead_frames + 7
    assert keras_model.info.context_frames == streaming.info.context_frames + 14
    assert keras_model.info.velocity_curve == streaming.info.velocity_curve
    rows = np.abs(np.random.default_rng(0).normal(size=(300, keras_model.input_bins))).astype(np.float32)
    whole = keras_model.heads(rows)
    through_onnx = onnx_model.heads(rows)
    for name in whole:
        np.testing.assert_allclose(through_onnx[name], whole[name], atol=2e-4)
    # energy passes through: the velocity curve still reads the streaming model's energy head
    np.testing.assert_allclose(whole["energy"], streaming.heads(rows)["energy"], atol=1e-5)


def test_the_pass_reads_the_streaming_models_per_key_features(piano_model, tmp_path):
    """A streaming model with a harmonic path: the pass reads its heads and its per-key features (3 + filters
    channels), the joined model keeps the streaming energy head, and its ONNX twin gives the same heads; without
    ``streaming_features`` only the heads are read."""
    fit_settings = defaults("fit")
    fit_settings.update(epochs=1, steps_per_epoch=20, batch_size=64)
    fit_settings["context"].update(frame_units=32, context_units=32, harmonics=4, harmonic_filters=3)
    streaming_path = tmp_path / "harmonic.keras"
    fit.fit(piano_model.store, streaming_path, fit_settings, metrics_dir=tmp_path, report=None, logs_dir=tmp_path)
    path = tmp_path / "offline.keras"
    summary = fit_offline(
        piano_model.store,
        streaming_path,
        path,
        quick_settings(pieces=4),
        data_dir=piano_model.data_dir,
        metrics_dir=tmp_path,
    )
    assert summary["channels"] == 3 + 3 and np.isfinite(summary["loss"])
    keras_model, onnx_model = FrameModel.load(path, "keras"), FrameModel.load(path, "onnx")
    rows = np.abs(np.random.default_rng(3).normal(size=(200, keras_model.input_bins))).astype(np.float32)
    whole, through_onnx = keras_model.heads(rows), onnx_model.heads(rows)
    for name in whole:
        np.testing.assert_allclose(through_onnx[name], whole[name], atol=2e-4)
    streaming = FrameModel.load(streaming_path, "keras")
    np.testing.assert_allclose(whole["energy"], streaming.heads(rows)["energy"], atol=1e-5)
    model, _ = model_file.load_model(streaming_path)
    assert pass_inputs_model(model, quick_settings()).output["heads"].shape[-1] == 6
    assert pass_inputs_model(model, quick_settings(streaming_features=False)).output["heads"].shape[-1] == 3


def test_blocks_give_the_heads_of_the_whole_song(offline):
    """The blocks overlap by the offline model's own reach, so a song in blocks is the song in one piece."""
    path, _, _ = offline
    network = KerasNetwork.load(path)
    rows = np.abs(np.random.default_rng(1).normal(size=(200, network.info.long_fft_bins + 512))).astype(np.float32)
    whole = FrameModel(network, block_frames=1000, batch_blocks=1).heads(rows)
    for block_frames, batch_blocks in [(7, 3), (40, 2)]:
        blocked = FrameModel(network, block_frames=block_frames, batch_blocks=batch_blocks).heads(rows)
        for name in whole:
            np.testing.assert_allclose(blocked[name], whole[name], atol=1e-5)


def test_an_untrained_pass_changes_nothing(piano_model):
    """The correction starts at zero: before training, the offline model says what the streaming model says."""
    streaming, info = model_file.load_model(piano_model.model)
    settings = quick_settings()
    joined, joined_info = offline_model(pass_inputs_model(streaming, settings), info, HeadPass(settings), settings)
    rows = np.abs(np.random.default_rng(2).normal(size=(1, 50, 512 + info.long_fft_bins))).astype(np.float32)
    before = streaming(rows)
    after = joined(rows)
    for name in ("active", "onset"):  # probabilities, clipped to 1e-4 .. 1 - 1e-4 on the way through the logit
        expected = np.clip(np.asarray(before[name]), 1e-4, 1 - 1e-4)
        np.testing.assert_allclose(np.asarray(after[name]), expected, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(after["energy"]), np.asarray(before["energy"]))
    with pytest.raises(UserError, match="streaming model"):
        offline_model(pass_inputs_model(streaming, settings), joined_info, HeadPass(settings), settings)


def test_the_same_settings_train_the_same_model(offline, piano_model, tmp_path):
    path, _, _ = offline
    again = tmp_path / "offline.keras"
    fit_offline(
        piano_model.store,
        piano_model.model,
        again,
        quick_settings(),
        data_dir=piano_model.data_dir,
        metrics_dir=tmp_path,
    )
    assert again.read_bytes() == path.read_bytes()


def test_onset_labels_are_the_buffer_of_the_first_sample():
    notes = np.array([(0.0, 0.5, 60, 80), (1023 / 44100, 0.5, 62, 80), (1024 / 44100, 0.5, 64, 80)], NOTE_DTYPE)
    roll = onset_roll(notes, 4)
    assert roll[0, 60 - 21] == 1 and roll[0, 62 - 21] == 1 and roll[1, 64 - 21] == 1 and roll.sum() == 3


def test_bad_settings_are_one_line_errors(piano_model, tmp_path):
    with pytest.raises(UserError, match="offline.window_frames"):
        fit_offline(
            piano_model.store,
            piano_model.model,
            tmp_path / "offline.keras",
            quick_settings(window_frames=100000),
            data_dir=piano_model.data_dir,
            metrics_dir=tmp_path,
        )
    with pytest.raises(UserError, match="offline.dilations"):
        fit_offline(piano_model.store, piano_model.model, tmp_path / "o.keras", quick_settings(dilations=[]))
    with pytest.raises(UserError, match="offline.onset_scale_min"):
        fit_offline(piano_model.store, piano_model.model, tmp_path / "o.keras", quick_settings(onset_scale_min=0))
    with pytest.raises(UserError, match="offline.streaming_features"):
        fit_offline(piano_model.store, piano_model.model, tmp_path / "o.keras", quick_settings(streaming_features=1))
    with pytest.raises(UserError, match="offline.time_kernel"):
        fit_offline(piano_model.store, piano_model.model, tmp_path / "o.keras", quick_settings(time_kernel=4))
    with pytest.raises(UserError, match=r"must end in \.keras"):
        fit_offline(piano_model.store, piano_model.model, tmp_path / "o.h5", quick_settings())
    assert not list(tmp_path.glob("*.keras"))


def test_an_offline_model_is_refused_as_the_streaming_model_before_any_work(offline, piano_model, tmp_path):
    offline_path, _, _ = offline
    with pytest.raises(UserError, match="an offline model"):
        fit_offline(
            piano_model.store,
            offline_path,
            tmp_path / "again.keras",
            quick_settings(),
            data_dir=piano_model.data_dir,
            metrics_dir=tmp_path,
        )
    assert not list(tmp_path.iterdir())


def test_the_cli_names_a_missing_model(piano_model, tmp_path):
    trainer = Path(sys.executable).parent / "trainer"
    result = subprocess.run(
        [str(trainer), "fit-offline", "--data", str(piano_model.store), "--model", str(tmp_path / "none.keras")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "none.keras" in result.stderr + result.stdout and "Traceback" not in result.stderr + result.stdout


def test_evaluate_scores_the_offline_model_on_the_same_audio(offline, piano_model, monkeypatch, tmp_path):
    """``trainer evaluate --offline-model``: one render, both models scored, a summary file each."""
    import json
    import shutil

    import yaml
    from typer.testing import CliRunner

    from trainer.cli import app

    path, _, _ = offline
    monkeypatch.chdir(piano_model.root)
    shutil.copy(piano_model.bank, piano_model.data_dir / "banks" / "unheard.h5")  # a name no training bank has
    params = tmp_path / "params.yaml"
    kinds = [{"name": "chords", "prefixes": ["chords/"]}]
    evaluate = {"pianos": ["unheard"], "kinds": kinds, "pieces_per_kind": 1, "max_seconds": 4.0}
    decode = {"onset_threshold": 0.7, "offline": {"onset_threshold": 0.6, "frame_threshold": None}}
    params.write_text(yaml.safe_dump({"evaluate": evaluate, "decode": decode}))
    metrics = tmp_path / "metrics"
    arguments = ["evaluate", "--model", str(piano_model.model), "--offline-model", str(path), "--data"]
    arguments += ["data/dataset.zarr", "--params", str(params), "--eval-dir", str(tmp_path / "eval")]
    result = CliRunner().invoke(app, [*arguments, "--metrics-dir", str(metrics)])
    assert result.exit_code == 0, result.output
    assert "offline model (eval_offline.json)" in result.output
    streaming, offline_summary = (
        json.loads((metrics / name).read_text()) for name in ("eval.json", "eval_offline.json")
    )
    assert streaming["model"]["arch"] != "offline" and offline_summary["model"]["arch"] == "offline"
    assert streaming["decode"]["onset_threshold"] == 0.7 and offline_summary["decode"]["onset_threshold"] == 0.6
    assert streaming["decode"]["frame_threshold"] == offline_summary["decode"]["frame_threshold"] == 0.25
    assert set(offline_summary["report"]["chords"]) == set(streaming["report"]["chords"]) == {"unheard", "all"}
    detail = json.loads((metrics / "eval_offline_pieces.json").read_text())
    assert [piece["audio"] for piece in detail["pieces"]] == [
        piece["audio"] for piece in json.loads((metrics / "eval_pieces.json").read_text())["pieces"]
    ]
    assert (metrics / "eval_offline_roll.png").stat().st_size > 10_000


def test_the_offline_model_decodes_with_its_own_thresholds_and_flags_win():
    from pianoscribe.params import apply_overrides
    from trainer.inference.decode import settings_for_model

    section = {
        **defaults("decode"),
        "onset_threshold": 0.8,
        "onset_neighbour_weight": 0.75,
        "offline": {"onset_threshold": 0.9, "frame_threshold": None, "onset_neighbour_weight": 0.5},
    }
    assert settings_for_model(section, "context") == {
        "onset_threshold": 0.8,
        "frame_threshold": 0.25,
        "min_note_seconds": 0.05,
        "onset_neighbour_weight": 0.75,
    }
    offline_settings = settings_for_model(section, "offline")
    assert offline_settings == {
        "onset_threshold": 0.9,
        "frame_threshold": 0.25,
        "min_note_seconds": 0.05,
        "onset_neighbour_weight": 0.5,
    }
    assert (
        apply_overrides(offline_settings, {"onset_threshold": 0.5, "frame_threshold": None})["onset_threshold"] == 0.5
    )
