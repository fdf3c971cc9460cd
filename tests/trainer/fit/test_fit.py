"""``trainer fit`` on a tiny store written by ``builder synth``: learning, the files it writes, resuming, errors."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.banks import read_bank
from builder.corpus import read_corpus
from builder.dataset import render, store
from pianoscribe.defaults import defaults
from pianoscribe.errors import UserError
from trainer import data, features
from trainer import fit as fit_module
from trainer import model as models
from trainer.fit.losses import compile_model
from trainer.fit.scores import THRESHOLDS, _count_at_or_above, score_split

BIN = Path(sys.executable).parent


def tiny_fit_settings(**overrides) -> dict:
    settings = defaults("fit")
    settings.update(
        {"epochs": 2, "batch_size": 64, "steps_per_epoch": 6, "val_steps": 4, "stats_rows": 2048, "shuffle_buffer": 512}
    )
    settings["context"] = {**settings["context"], "frame_units": 64, "context_units": 64}
    settings.update(overrides)
    return settings


@pytest.mark.parametrize("arch", models.ARCHITECTURES)
def test_a_few_steps_lower_the_loss(tiny_store, arch):
    root = store.open_store(tiny_store[0])
    train = data.StoreSplit("train", root["train"], int(root.attrs["frames_per_segment"]))
    settings = tiny_fit_settings(arch=arch, learning_rate=0.003)
    keras.utils.set_random_seed(0)
    mean, std, energy_scale = data.train_statistics(train, settings["compression"], 4096, 99.0)
    model, _ = models.new_model(settings, "hann", mean, std, energy_scale)
    compile_model(model, settings)
    batches, _ = data.training_dataset(train, settings, energy_scale)
    fixed = batches.take(4).cache()
    before = model.evaluate(fixed, verbose=0, return_dict=True)["loss"]
    model.fit(batches, steps_per_epoch=30, epochs=1, verbose=0)
    after = model.evaluate(fixed, verbose=0, return_dict=True)["loss"]
    assert after < 0.8 * before


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1), max_size=60))
def test_threshold_counts_match_a_direct_count(probabilities):
    probability = np.asarray(probabilities, dtype=np.float32)
    direct = (probability[:, None] >= THRESHOLDS).sum(axis=0)
    np.testing.assert_array_equal(_count_at_or_above(probability), direct)


def test_test_split_loss_is_the_training_loss(tiny_store):
    root = store.open_store(tiny_store[0])
    test = data.StoreSplit("test", root["test"], int(root.attrs["frames_per_segment"]))
    settings = tiny_fit_settings()
    model = models.build_model(
        "context", settings, models.ModelInfo("context", 5, 1, "hann", 1.0), np.zeros(512), np.ones(512)
    )
    compile_model(model, settings)
    batches = data.evaluation_dataset(test, 64, 1.0, max_steps=4)
    keras_loss = model.evaluate(batches, verbose=0, return_dict=True)["loss"]
    assert score_split(model, batches, settings)["loss"] == pytest.approx(keras_loss, rel=1e-3)


def test_fit_writes_the_model_metrics_and_logs(tiny_store, tmp_path):
    model_path = tmp_path / "models" / "model.keras"
    summary = fit_module.fit(
        tiny_store[0], model_path, tiny_fit_settings(), metrics_dir=tmp_path / "metrics", logs_dir=tmp_path / "logs"
    )
    model, info = models.load_model(model_path)
    assert (info.arch, info.context_frames, info.lookahead_frames, info.window) == ("context", 5, 1, "hann")
    assert info.frame_threshold == summary["frame_threshold"] and info.onset_threshold == summary["onset_threshold"]
    assert info.energy_scale > 0
    assert sorted(p.name for p in model_path.parent.iterdir()) == ["model.keras"]  # checkpoint and temporaries gone

    with open(tmp_path / "metrics" / "fit.csv") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    for column in (
        "loss",
        "val_loss",
        "val_frame_precision",
        "val_frame_recall",
        "val_frame_f1",
        "val_onset_f1",
        "val_energy_mae",
    ):
        assert all(row[column] != "" for row in rows)
    metrics = json.loads((tmp_path / "metrics" / "fit.json").read_text())
    assert metrics["epochs"] == 2 and 0 <= metrics["val_frame_f1"] <= 1 and metrics["macs_per_frame"] > 0
    assert list((tmp_path / "logs").rglob("events.out.tfevents*"))

    # the stored featurization is the train split's, and equals the numpy twin on stored slices
    root = store.open_store(tiny_store[0])
    train = data.StoreSplit("train", root["train"], int(root.attrs["frames_per_segment"]))
    mean, std, _ = data.train_statistics(train, 100.0, 2048, 99.0)
    layer = next(layer for layer in model.layers if isinstance(layer, features.SpectralFeatures))
    np.testing.assert_allclose(np.asarray(layer.mean), mean, rtol=1e-6)
    slices = train.arrays["fft_magnitude"][:8].astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(layer(slices[None]))[0], features.spectral_features(slices, 100.0, mean, std), rtol=1e-5, atol=1e-5
    )


def test_a_rerun_with_the_same_seed_gives_the_same_scores(tiny_store, tmp_path):
    settings = tiny_fit_settings(epochs=1, steps_per_epoch=4)
    runs = [
        fit_module.fit(
            tiny_store[0],
            tmp_path / f"run{run}" / "model.keras",
            settings,
            metrics_dir=tmp_path / f"run{run}",
            logs_dir=tmp_path / f"logs{run}",
        )
        for run in range(2)
    ]
    for key in ("loss", "val_loss", "val_frame_f1", "val_onset_f1", "val_energy_mae"):
        assert runs[0][key] == pytest.approx(runs[1][key], rel=1e-3, abs=1e-4), key


def test_features_of_rendered_audio_equal_the_store(tiny_store):
    """A stored segment, rendered again by builder.render and featurized as inference does, gives the same slices."""
    store_path, synth_settings = tiny_store
    root = store.open_store(store_path)
    frames = int(root.attrs["frames_per_segment"])
    pieces = {piece.piece_id: piece.notes for piece in read_corpus(synth_settings["corpora"][0]).pieces}
    loaded_banks = {}
    for side in ("train", "test"):
        group = root[side]
        for segment in range(0, group["piece_id"].shape[0], max(1, group["piece_id"].shape[0] // 5)):
            bank_path = str(group["bank"][segment])
            bank = loaded_banks.setdefault(bank_path, read_bank(bank_path))
            audio = render.render_notes(pieces[str(group["piece_id"][segment])], bank, root.attrs["params"])
            start = int(group["start_sample"][segment])
            audio = np.concatenate([audio, np.zeros(max(0, start + frames * 1024 - len(audio)), np.float32)])
            buffers = features.frames_from_audio(audio[start : start + frames * 1024])
            ours = features.fft_magnitude_of_buffers(buffers, root.attrs["params"]["window"])
            stored = group["fft_magnitude"][segment * frames : (segment + 1) * frames].astype(np.float32)
            np.testing.assert_allclose(ours, stored, rtol=2e-3, atol=2e-3 * max(1.0, float(stored.max())))


def test_missing_and_incomplete_stores_and_bad_settings_are_one_line_errors(tiny_store, tmp_path):
    with pytest.raises(UserError, match="no dataset"):
        fit_module.fit(tmp_path / "nothing.zarr", tmp_path / "m.keras", tiny_fit_settings(), tmp_path)
    incomplete = tmp_path / "incomplete.zarr"
    shutil.copytree(tiny_store[0], incomplete)
    zarr.open_group(str(incomplete), mode="r+").attrs["complete"] = False
    with pytest.raises(UserError, match="incomplete"):
        fit_module.fit(incomplete, tmp_path / "m.keras", tiny_fit_settings(), tmp_path)
    with pytest.raises(UserError, match="fit.arch"):
        fit_module.fit(tiny_store[0], tmp_path / "m.keras", tiny_fit_settings(arch="rnn"), tmp_path)
    with pytest.raises(UserError, match=r"\.keras"):
        fit_module.fit(tiny_store[0], tmp_path / "m.h5", tiny_fit_settings(), tmp_path)
    with pytest.raises(UserError, match="batch_size"):
        fit_module.fit(tiny_store[0], tmp_path / "m.keras", tiny_fit_settings(batch_size=10**6), tmp_path)


def _trainer(workdir: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", COLUMNS="200")
    return subprocess.Popen(
        [str(BIN / "trainer"), "fit", *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_a_killed_fit_resumes_where_it_stopped(tiny_store, tmp_path):
    epochs = 4
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"fit": tiny_fit_settings(epochs=epochs)}))
    arguments = ("--data", str(tiny_store[0]), "--model", "models/model.keras")
    metadata = tmp_path / "models" / ".model.keras.checkpoint" / "backup" / "training_metadata.json"

    first = _trainer(tmp_path, *arguments)
    deadline = time.monotonic() + 240
    while not metadata.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert metadata.exists(), "no checkpoint appeared before the deadline"
    done = json.loads(metadata.read_text())["epoch"]
    assert 1 <= done < epochs, "the first run finished before it could be killed"
    assert not (tmp_path / "models" / "model.keras").exists()

    second = _trainer(tmp_path, *arguments)
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output
    assert f"resuming from models/.model.keras.checkpoint after epoch {done}" in output
    assert f"epoch {done}/{epochs}:" not in output and f"epoch {done + 1}/{epochs}:" in output
    with open(tmp_path / "metrics" / "fit.csv") as file:
        assert [int(row["epoch"]) for row in csv.DictReader(file)] == list(range(1, epochs + 1))
    models.load_model(tmp_path / "models" / "model.keras")
    assert not (tmp_path / "models" / ".model.keras.checkpoint").exists()
