"""The model file ``models/model.keras``: what it carries besides the weights (``ModelInfo``), saving, loading and
checking that a loaded model can be fed the way this code featurizes audio (ARCHITECTURE.md, "Model file")."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import keras

from pianoscribe.constants import N_BINS
from pianoscribe.errors import UserError
from trainer.model.info import HEADS, ModelInfo, grid_problems
from trainer.model.layers import SpectralFeatures

INFO_LAYER_NAME = "model_info"
FEATURES_LAYER_NAME = "spectral_features"
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the zip format's earliest date: the file's bytes do not depend on when


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
    inference_model = model.__class__.from_config(model.get_config())  # uncompiled: no optimizer state in the file
    inference_model.set_weights(model.get_weights())
    path.parent.mkdir(parents=True, exist_ok=True)
    # keras.saving.save_model wants a name ending in .keras: save under the real name in a temporary folder beside
    # the target, then rename (atomic on one file system)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as folder:
        temporary = Path(folder) / path.name
        keras.saving.save_model(inference_model, temporary)
        same_bytes_every_time(temporary)
        os.replace(temporary, path)


def same_bytes_every_time(path: Path) -> None:
    """Rewrite a ``.keras`` zip without what changes from save to save (time stamps, ``date_saved``), so the same
    weights give the same file bytes: DVC then sees an unchanged model as unchanged."""
    with zipfile.ZipFile(path) as original:
        members = [(info.filename, original.read(info)) for info in original.infolist()]
    rewritten = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(rewritten, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            if name == "metadata.json":
                metadata = json.loads(data)
                metadata.pop("date_saved", None)
                data = json.dumps(metadata, sort_keys=True).encode()
            archive.writestr(zipfile.ZipInfo(name, date_time=FIXED_ZIP_TIME), data, zipfile.ZIP_DEFLATED)
    os.replace(rewritten, path)


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


def all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's layers, and those of the models nested in it (the offline model holds the streaming one)."""
    found = []
    for layer in model.layers:
        found.append(layer)
        if isinstance(layer, keras.Model):
            found.extend(all_layers(layer))
    return found


def check_featurization(model: keras.Model, info: ModelInfo, path: Path | str) -> None:
    """The model must take 512-bin slices of 1024-sample buffers at 44.1 kHz and carry its own features layer."""
    problems = grid_problems(info)
    if tuple(model.inputs[0].shape[2:]) != (N_BINS + info.long_fft_bins,):
        problems.append(
            f"input has shape {tuple(model.inputs[0].shape)}, expected (batch, time, {N_BINS + info.long_fft_bins})"
        )
    if not any(isinstance(layer, SpectralFeatures) for layer in all_layers(model)):
        problems.append("no featurization layer inside")
    missing_heads = set(HEADS) - set(model.output_names if hasattr(model, "output_names") else [])
    if missing_heads:
        problems.append(f"missing heads {', '.join(sorted(missing_heads))}")
    if problems:
        raise UserError(f"{path}: model/featurization mismatch: {'; '.join(problems)}")
