"""``trainer fit`` on a tiny store written by ``builder synth``: learning, the files it writes, resuming exactly,
damaged checkpoints and stores, errors."""

from __future__ import annotations

import csv
import gc
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
from tests.stores import synthesize_store
from tests.trainer.conftest import tiny_synth_settings
from trainer import data, features
from trainer import fit as fit_module
from trainer.fit.checkpoint import Checkpoint, History, fingerprint, training_setup
from trainer.fit.losses import compile_model
from trainer.fit.scores import THRESHOLDS, _count_at_or_above, score_split
from trainer.model import architectures, layers, model_file, onnx_file
from trainer.model.info import ModelInfo

BIN = Path(sys.executable).parent


def tiny_fit_settings(**overrides) -> dict:
    settings = defaults("fit")
    settings.update(
        {"epochs": 2, "batch_size": 64, "steps_per_epoch": 6, "val_steps": 4, "stats_rows": 2048, "shuffle_buffer": 512}
    )
    settings["context"] = {**settings["context"], "frame_units": 64, "context_units": 64}
    settings.update(overrides)
    return settings


@pytest.mark.parametrize("arch", architectures.ARCHITECTURES)
def test_a_few_steps_lower_the_loss(tiny_store, arch):
    root = store.open_store(tiny_store[0])
    train = data.StoreSplit("train", root["train"], int(root.attrs["frames_per_segment"]))
    settings = tiny_fit_settings(arch=arch, learning_rate=0.003, epochs=1, steps_per_epoch=30)
    keras.utils.set_random_seed(0)
    mean, std, energy_scale = data.train_statistics(train, settings["compression"], 4096, 99.0)
    model, _ = architectures.new_model(settings, "hann", mean, std, energy_scale)
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
    model = architectures.build_model(
        "context", settings, ModelInfo("context", 5, 1, "hann", 1.0), np.zeros(512), np.ones(512)
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
    model, info = model_file.load_model(model_path)
    assert (info.arch, info.context_frames, info.lookahead_frames, info.window) == ("context", 5, 1, "hann")
    assert info.frame_threshold == summary["frame_threshold"] and info.onset_threshold == summary["onset_threshold"]
    assert info.energy_scale > 0
    # checkpoint and temporaries gone; the ONNX twin that inference runs is the export of this very .keras
    assert sorted(p.name for p in model_path.parent.iterdir()) == ["model.keras", "model.onnx"]
    _, onnx_info, exported_from = onnx_file.load_onnx(model_path.with_suffix(".onnx"))
    assert onnx_info == info and exported_from == onnx_file.file_sha256(model_path)

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
    train = data.StoreSplit("train", root["train"], int(root.attrs["frames_per_segment"]), long_fft=True)
    mean, std, _ = data.train_statistics(train, 100.0, 2048, 99.0)
    layer = next(layer for layer in model.layers if isinstance(layer, layers.SpectralFeatures))
    np.testing.assert_allclose(np.asarray(layer.mean), mean, rtol=1e-6)
    # the model's input rows: the 512 FFT bins, then the long window's (the default model reads both)
    slices = np.concatenate(
        [train.arrays[name][:8].astype(np.float32) for name in ("fft_magnitude", store.LONG_FFT)], axis=1
    )
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
    with pytest.raises(UserError, match="fit.onset_target_frames: expected a whole number from 1 to 4, got 0"):
        fit_module.fit(tiny_store[0], tmp_path / "m.keras", tiny_fit_settings(onset_target_frames=0), tmp_path)


class RecordingReport(fit_module.SilentReport):
    """A ``FitReport`` that keeps the messages a fit says."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def message(self, text: str) -> None:
        self.messages.append(text)


class Interrupted(Exception):
    pass


class InterruptAfterFirstEpoch(RecordingReport):
    """Stops a fit the way Ctrl-C would, right after its first epoch was saved (the report hears of it last)."""

    def epoch_end(self, epoch: int, epochs: int, logs: dict) -> None:
        if epoch == 0:
            raise Interrupted


def checkpoint_folder(model_path: Path) -> Path:
    return model_path.parent / f".{model_path.name}.checkpoint"


def weights_of(model_path: Path) -> list[np.ndarray]:
    return model_file.load_model(model_path)[0].get_weights()


def assert_same_weights(one: list[np.ndarray], other: list[np.ndarray]) -> None:
    assert len(one) == len(other)
    for index, (mine, theirs) in enumerate(zip(one, other)):
        np.testing.assert_array_equal(mine, theirs, err_msg=f"weight {index}")


RESUME_SETTINGS = {"epochs": 3}


@pytest.fixture(scope="module")
def whole_and_interrupted(tiny_store, tmp_path_factory) -> tuple[list[np.ndarray], Path]:
    """The weights of an uninterrupted 3-epoch fit, and a folder holding a fit of the same settings stopped
    after its first epoch (``models/.model.keras.checkpoint``) for tests to copy and resume."""
    folder = tmp_path_factory.mktemp("resume")
    settings = tiny_fit_settings(**RESUME_SETTINGS)
    whole = folder / "whole" / "model.keras"
    fit_module.fit(tiny_store[0], whole, settings, folder / "whole", logs_dir=folder / "logs")
    interrupted = folder / "interrupted"
    with pytest.raises(Interrupted):
        fit_module.fit(
            tiny_store[0],
            interrupted / "models" / "model.keras",
            settings,
            interrupted,
            report=InterruptAfterFirstEpoch(),
            logs_dir=folder / "logs",
        )
    return weights_of(whole), interrupted


def resume(tiny_store, interrupted: Path, tmp_path: Path) -> tuple[Path, RecordingReport]:
    """Copy the interrupted fit into ``tmp_path`` and run it again with the same arguments."""
    shutil.copytree(interrupted, tmp_path / "run")
    model_path = tmp_path / "run" / "models" / "model.keras"
    report = RecordingReport()
    settings = tiny_fit_settings(**RESUME_SETTINGS)
    fit_module.fit(tiny_store[0], model_path, settings, tmp_path / "run", report=report, logs_dir=tmp_path / "logs")
    return model_path, report


def test_a_stopped_fit_resumes_to_the_weights_of_an_uninterrupted_fit(tiny_store, whole_and_interrupted, tmp_path):
    whole_weights, interrupted = whole_and_interrupted
    model_path, report = resume(tiny_store, interrupted, tmp_path)
    assert any(text.startswith("resuming from") and text.endswith("after epoch 1") for text in report.messages)
    assert_same_weights(weights_of(model_path), whole_weights)
    with open(tmp_path / "run" / "fit.csv") as file:
        assert [int(row["epoch"]) for row in csv.DictReader(file)] == [1, 2, 3]


def test_the_checkpoint_restores_weights_optimizer_and_random_generators(tiny_store, tmp_path):
    """Keras' weight files hold the optimizer but not the ``SeedGenerator`` states of dropout and of the envelope
    augmentation; the checkpoint restores all three."""
    root = store.open_store(tiny_store[0])
    train = data.StoreSplit("train", root["train"], int(root.attrs["frames_per_segment"]))
    settings = tiny_fit_settings()

    def compiled_model() -> keras.Model:
        model, _ = architectures.new_model(settings, "hann", np.zeros(512), np.ones(512), 1.0)
        compile_model(model, settings)
        return model

    trained = compiled_model()
    trained.fit(data.training_dataset(train, settings, 1.0)[0], steps_per_epoch=3, epochs=1, verbose=0)
    model_path = tmp_path / "model.keras"
    checkpoint = Checkpoint(model_path, "stamp", say=lambda text: None)
    History(checkpoint.folder / "epochs.json").record({"epoch": 1, "loss": 1.0})
    checkpoint.save(trained, 1)

    restored = compiled_model()
    epochs_done, history = Checkpoint(model_path, "stamp", say=lambda text: None).restore(restored)
    assert epochs_done == 1 and [row["epoch"] for row in history.rows] == [1]
    generators = [variable for variable in trained.variables if "seed_generator" in variable.path]
    assert len(generators) == 3 and all(int(variable.numpy()[1]) > 0 for variable in generators)  # they did draw
    assert int(trained.optimizer.iterations.numpy()) == 3
    for mine, theirs in zip(
        [*trained.variables, *trained.optimizer.variables], [*restored.variables, *restored.optimizer.variables]
    ):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy(), err_msg=mine.path)


def test_a_checkpoint_is_for_one_setup_only(tiny_store, whole_and_interrupted, tmp_path, monkeypatch):
    """Library versions and TF_ENABLE_ONEDNN_OPTS are in the fingerprint: another setup starts over, saying so."""
    setup = training_setup()
    assert {"tensorflow", "tensorflow-cpu", "keras", "numpy"} <= set(setup["versions"])
    assert setup["TF_ENABLE_ONEDNN_OPTS"] == os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    settings = tiny_fit_settings()
    stamp = fingerprint(tiny_store[0], {}, settings, setup)
    for other in (
        {**setup, "versions": {**setup["versions"], "keras": "0.0.1"}},
        {**setup, "versions": {**setup["versions"], "numpy": "0.0.1"}},
        {**setup, "TF_ENABLE_ONEDNN_OPTS": "0" if setup["TF_ENABLE_ONEDNN_OPTS"] == "1" else "1"},  # the other choice
    ):
        assert fingerprint(tiny_store[0], {}, settings, other) != stamp

    whole_weights, interrupted = whole_and_interrupted
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "another")  # read by the fingerprint (TensorFlow is loaded already)
    model_path, report = resume(tiny_store, interrupted, tmp_path)
    assert any("another setup" in text and text.endswith("starting over") for text in report.messages)
    assert not any(text.startswith("resuming") for text in report.messages)
    assert_same_weights(weights_of(model_path), whole_weights)


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x89HDF garbage " * 64)


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


@pytest.mark.parametrize(
    ("damaged_file", "damage"),
    [("state.weights.h5", _garbage), ("state.weights.h5", _truncated), ("random.json", _garbage)],
    ids=["garbage weights", "truncated weights", "garbage generator states"],
)
def test_a_damaged_checkpoint_is_one_line_and_the_fit_starts_over(
    tiny_store, whole_and_interrupted, tmp_path, damaged_file, damage
):
    whole_weights, interrupted = whole_and_interrupted
    damaged = tmp_path / "damaged"
    shutil.copytree(interrupted, damaged)
    damage(checkpoint_folder(damaged / "models" / "model.keras") / "epoch-0001" / damaged_file)
    model_path, report = resume(tiny_store, damaged, tmp_path)
    warnings = [text for text in report.messages if "cannot be read" in text]
    assert len(warnings) == 1 and "\n" not in warnings[0], report.messages
    assert warnings[0].startswith(f"{checkpoint_folder(model_path)}: cannot be read (epoch-0001/{damaged_file}: ")
    assert warnings[0].endswith("); starting over")
    assert_same_weights(weights_of(model_path), whole_weights)  # started over cleanly: as if there had been none


def test_a_store_rebuilt_during_the_fit_stops_it(tiny_store, tiny_inputs, tmp_path):
    data_path = tmp_path / "dataset.zarr"
    shutil.copytree(tiny_store[0], data_path)

    class RebuildAfterFirstEpoch(RecordingReport):
        def epoch_end(self, epoch: int, epochs: int, logs: dict) -> None:
            if epoch == 0:
                synthesize_store({**tiny_synth_settings(tiny_inputs), "seed": 1}, data_path, tmp_path)

    model_path = tmp_path / "models" / "model.keras"
    with pytest.raises(UserError) as raised:
        fit_module.fit(
            data_path, model_path, tiny_fit_settings(epochs=3), tmp_path, RebuildAfterFirstEpoch(), tmp_path / "logs"
        )
    assert str(raised.value) == (
        f"{data_path}: the dataset changed while training (rebuilt by builder synth?); run trainer fit again"
    )
    # the epoch trained on the new data was neither scored nor saved
    folder = checkpoint_folder(model_path)
    assert sorted(path.name for path in folder.glob("epoch-*")) == ["epoch-0001"]
    assert [row["epoch"] for row in json.loads((folder / "epochs.json").read_text())] == [1]


def damage_shard(store_path: Path, side: str, name: str, shard: int) -> None:
    """Garbage where one shard file of one array was (what a disk error or a half-copied store leaves)."""
    (store_path / side / name / "c" / str(shard) / "0").write_bytes(b"garbage" * 100)


def test_a_damaged_shard_stops_the_fit_with_one_line_naming_it(tiny_store, tmp_path):
    from tensorflow.python.data.ops.iterator_ops import OwnedIterator

    data_path = tmp_path / "dataset.zarr"
    shutil.copytree(tiny_store[0], data_path)
    damage_shard(data_path, "train", "key_energy", 3)  # shards of 1024 rows: rows 3072..4095
    settings = tiny_fit_settings(stats_rows=256, steps_per_epoch=0, epochs=1)  # statistics read block 0 only
    with pytest.raises(UserError, match=r"cannot be read") as raised:
        fit_module.fit(data_path, tmp_path / "model.keras", settings, tmp_path, logs_dir=tmp_path / "logs")
    message = str(raised.value)
    assert message.startswith(f"{data_path}/train/key_energy: shard 3 (rows 3072..4095) cannot be read (")
    assert "\n" not in message
    # the cause of the hang: no tf.data iterator may outlive the error (its read threads die at interpreter exit)
    assert not [item for item in gc.get_objects() if isinstance(item, OwnedIterator)]


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
    """SIGKILL after an epoch, the same command again: it resumes there and ends with exactly the weights of a
    run that was never interrupted (same data order, optimizer state and random-generator state)."""
    epochs = 4
    arguments = ("--data", str(tiny_store[0]), "--model", "models/model.keras")
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    for folder in (killed, whole):
        folder.mkdir()
        (folder / "params.yaml").write_text(yaml.safe_dump({"fit": tiny_fit_settings(epochs=epochs)}))
    checkpoint = checkpoint_folder(killed / "models" / "model.keras")

    uninterrupted = _trainer(whole, *arguments)
    first = _trainer(killed, *arguments)
    deadline = time.monotonic() + 240
    while not list(checkpoint.glob("epoch-*")) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    saved = sorted(checkpoint.glob("epoch-*"))
    assert saved, "no checkpoint appeared before the deadline"
    done = int(saved[-1].name.removeprefix("epoch-"))
    assert 1 <= done < epochs, "the first run finished before it could be killed"
    assert not (killed / "models" / "model.keras").exists()

    second = _trainer(killed, *arguments)
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output
    assert f"resuming from models/.model.keras.checkpoint after epoch {done}" in output
    assert f"epoch {done}/{epochs}:" not in output and f"epoch {done + 1}/{epochs}:" in output
    with open(killed / "metrics" / "fit.csv") as file:
        assert [int(row["epoch"]) for row in csv.DictReader(file)] == list(range(1, epochs + 1))
    assert not checkpoint.exists()

    whole_output, _ = uninterrupted.communicate(timeout=600)
    assert uninterrupted.returncode == 0, whole_output
    assert_same_weights(weights_of(killed / "models" / "model.keras"), weights_of(whole / "models" / "model.keras"))


def mid_sized_store(folder: Path, tiny_inputs: dict[str, Path]) -> Path:
    """A store with reads slow enough to still be in flight when a fit stops (blocks of 4096 rows, 4 shards)."""
    settings = tiny_synth_settings(tiny_inputs, n=40000)
    settings.update({"frames_per_segment": 16, "test_fraction": 0.15})
    settings["storage"].update({"chunk_rows": 4096, "shard_rows": 8192})
    synthesize_store(settings, folder / "dataset.zarr", folder)
    return folder / "dataset.zarr"


@pytest.mark.slow
def test_trainer_fit_on_a_damaged_shard_exits_with_one_line(tiny_inputs, tmp_path):
    """It used to print a traceback and then hang at 0 % CPU (tf.data read threads still in flight at exit)."""
    data_path = mid_sized_store(tmp_path, tiny_inputs)
    damage_shard(data_path, "train", "key_energy", 3)  # rows 24576..32767 (the train side has 34000)
    settings = tiny_fit_settings(stats_rows=4096, steps_per_epoch=0, epochs=1, batch_size=256, shuffle_buffer=16384)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"fit": settings}))
    run = _trainer(tmp_path, "--data", str(data_path), "--model", "models/model.keras")
    try:
        output, _ = run.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        run.kill()
        output, _ = run.communicate()
        pytest.fail(f"trainer fit hung on a damaged shard:\n{output}")
    assert run.returncode == 1, output
    assert "Traceback" not in output
    last_line = output.strip().splitlines()[-1]
    assert last_line.startswith(f"error: {data_path}/train/key_energy: shard 3 (rows 24576..32767) cannot be read (")
