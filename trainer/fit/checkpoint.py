"""Resuming a killed fit: the checkpoint folder beside the model, what it is valid for, the state after each
finished epoch and the epoch rows.

``.NAME.keras.checkpoint/`` holds::

    fingerprint           what the checkpoint is valid for: store, settings, library versions, oneDNN switch
    epochs.json           the per-epoch rows (losses, test-split scores, seconds)
    epoch-NNNN/           the training state after epoch NNNN, written beside and renamed into place whole
        state.weights.h5  weights and optimizer state (Keras ``save_weights``: Adam's moments and step count)
        random.json       the state of every random generator of the model (dropout, augmentation)

A kill at any moment leaves the last finished epoch whole: the next epoch's folder appears by one rename and
only then is the older one removed. Keras' weight files leave out the generators' state
(``Layer.save_own_variables`` saves only ``_trainable_variables + _non_trainable_variables``; a
``SeedGenerator`` keeps its state outside them), hence ``random.json``: without it a resumed fit would draw
other dropout masks and envelopes than the uninterrupted one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np

from pianoscribe.atomic import atomic_path
from pianoscribe.errors import one_line
from pianoscribe.storage import StoreLocation, store_location
from pianoscribe.versions import library_versions

SETUP_PACKAGES = ("tensorflow", "tensorflow-cpu", "keras", "numpy")
EPOCH_FOLDER = re.compile(r"epoch-(\d+)")
WEIGHTS_FILE = "state.weights.h5"
RANDOM_FILE = "random.json"


def training_setup() -> dict[str, Any]:
    """What besides the store and the settings decides a fit's numbers: the library versions and TensorFlow's
    oneDNN switch (its kernels round differently). A checkpoint from another setup would continue another run."""
    return {
        "versions": library_versions(*SETUP_PACKAGES),
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
    }


def fingerprint(
    data: StoreLocation | Path, store_attrs: dict[str, Any], settings: dict[str, Any], setup: dict[str, Any]
) -> str:
    """What a checkpoint is valid for: the store (absolute path or URL, and attributes), every setting (the epoch
    count sets the learning-rate schedule, so it counts too) and the ``training_setup``."""
    text = json.dumps(
        {"data": store_location(data).identity(), "store": store_attrs, "settings": settings, "setup": setup},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


class History:
    """Per-epoch rows (losses, test-split scores, seconds), saved in the checkpoint folder after each epoch."""

    def __init__(self, path: Path, rows: list[dict[str, Any]] | None = None) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = rows or []

    @classmethod
    def read(cls, path: Path, epochs_done: int) -> History:
        """The rows of epochs 1..``epochs_done`` (a later row was scored but killed before its state was saved);
        ``DamagedFile`` if one is missing or the file cannot be read."""
        with _reading(path.name):
            rows = [row for row in json.loads(path.read_text()) if row["epoch"] <= epochs_done]
            epochs = [row["epoch"] for row in rows]
            if epochs != list(range(1, epochs_done + 1)):
                raise ValueError(f"rows for epochs {epochs}, expected 1..{epochs_done}")
        return cls(path, rows)

    def record(self, row: dict[str, Any]) -> None:
        self.rows = [*(kept for kept in self.rows if kept["epoch"] < row["epoch"]), row]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as temporary:
            temporary.write_text(json.dumps(self.rows, indent=1))


class Checkpoint:
    """The folder that lets a killed fit resume: ``.NAME.keras.checkpoint/`` beside the model.

    One made for another fingerprint is removed on opening; one that cannot be read is removed by ``restore``.
    Either way the caller hears it in one line through ``say`` and the fit starts over.
    """

    def __init__(self, model_path: Path, fingerprint: str, say: Callable[[str], None]) -> None:
        self.folder = model_path.parent / f".{model_path.name}.checkpoint"
        self.fingerprint = fingerprint
        self.say = say
        if self.folder.exists() and self._stamp() != fingerprint:
            say(
                f"{self.folder}: made with other settings, another store or another setup (library versions, "
                "TF_ENABLE_ONEDNN_OPTS); starting over"
            )
            shutil.rmtree(self.folder)
        if not self.folder.exists():
            self._create()

    def restore(self, model: keras.Model) -> tuple[int, History]:
        """Load the last finished epoch's state into the compiled ``model``: the number of epochs done (0 when
        none) and their rows. A checkpoint that cannot be read is said in one line, removed, and the model left
        exactly as it was, so the fit starts over as if there had been none."""
        newest = self._newest_epoch_folder()
        if newest is None:
            return 0, History(self.folder / "epochs.json")
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # so that its moments and step count load too
        fresh_state = [variable.numpy() for variable in _state_variables(model)]
        try:
            epochs_done = int(newest.name.removeprefix("epoch-"))
            _load_state(model, newest)
            history = History.read(self.folder / "epochs.json", epochs_done)
        except DamagedFile as error:
            for variable, value in zip(_state_variables(model), fresh_state):
                variable.assign(value)
            self.say(f"{self.folder}: cannot be read ({error}); starting over")
            shutil.rmtree(self.folder, ignore_errors=True)
            self._create()
            return 0, History(self.folder / "epochs.json")
        self.say(f"resuming from {self.folder} after epoch {epochs_done}")
        return epochs_done, history

    def save(self, model: keras.Model, epochs_done: int) -> None:
        """The state after ``epochs_done`` epochs, as one folder renamed into place; then older states go."""
        final = self.folder / f"epoch-{epochs_done:04d}"
        shutil.rmtree(final, ignore_errors=True)  # only there if a newer state was dropped: it is stale
        with atomic_path(final) as temporary:
            temporary.mkdir()
            model.save_weights(temporary / WEIGHTS_FILE)
            (temporary / RANDOM_FILE).write_text(json.dumps(_random_states(model)))
        for older in self._epoch_folders():
            if older != final:
                shutil.rmtree(older, ignore_errors=True)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _create(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / "fingerprint") as temporary:
            temporary.write_text(self.fingerprint)

    def _stamp(self) -> str | None:
        try:
            return (self.folder / "fingerprint").read_text()
        except (OSError, UnicodeDecodeError):
            return None

    def _epoch_folders(self) -> list[Path]:
        return [path for path in self.folder.iterdir() if EPOCH_FOLDER.fullmatch(path.name)]

    def _newest_epoch_folder(self) -> Path | None:
        folders = self._epoch_folders()
        return max(folders, key=lambda path: int(path.name.removeprefix("epoch-"))) if folders else None


class EpochBackup(keras.callbacks.Callback):
    """Saves the training state into the checkpoint after every epoch (after the rows: see ``History.read``)."""

    def __init__(self, checkpoint: Checkpoint) -> None:
        super().__init__()
        self.checkpoint = checkpoint

    def on_epoch_end(self, epoch, logs=None):
        self.checkpoint.save(self.model, epoch + 1)


class DamagedFile(Exception):
    """A checkpoint file that cannot be read; the message names it (h5py's and json's errors do not)."""


@contextlib.contextmanager
def _reading(name: str) -> Iterator[None]:
    """Whatever reading the file ``name`` (in the checkpoint folder) raises becomes a ``DamagedFile`` naming it:
    h5py, json and Keras raise almost anything for a damaged file."""
    try:
        yield
    except Exception as error:
        raise DamagedFile(f"{name}: {type(error).__name__}: {one_line(error)}") from error


def _load_state(model: keras.Model, folder: Path) -> None:
    with _reading(f"{folder.name}/{WEIGHTS_FILE}"):
        model.load_weights(folder / WEIGHTS_FILE)
    with _reading(f"{folder.name}/{RANDOM_FILE}"):
        states = json.loads((folder / RANDOM_FILE).read_text())
        variables = _random_variables(model)
        if len(states) != len(variables):
            raise ValueError(f"{len(states)} generator states, the model has {len(variables)}")
        for variable, state in zip(variables, states):
            variable.assign(np.asarray(state, dtype=variable.dtype))


def _random_variables(model: keras.Model) -> list[keras.Variable]:
    """The state variables of the model's ``keras.random.SeedGenerator``s, in model order: ``variables`` is
    ``weights`` plus exactly these (Keras: "weights ... excludes metric state and random seeds")."""
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


def _random_states(model: keras.Model) -> list[list[int]]:
    return [np.asarray(variable.numpy()).tolist() for variable in _random_variables(model)]


def _state_variables(model: keras.Model) -> list[keras.Variable]:
    """Everything a restore may overwrite: the model's variables (weights and generator states) and the optimizer's."""
    return [*model.variables, *(model.optimizer.variables if model.optimizer is not None else [])]
