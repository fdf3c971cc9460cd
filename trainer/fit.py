"""``trainer fit``: train on the store's train split, score the test split every epoch, resume after a kill.

A fit keeps its state in a checkpoint folder beside the model (``.NAME.keras.checkpoint/``): Keras'
``BackupAndRestore`` weights + optimizer + epoch, and the per-epoch score rows. Started again with the same
arguments it continues from the last finished epoch and ends with the same number of epochs; with other
settings or another store it starts over. At the end the frame/onset thresholds with the best F1 on the test
split go into the model's ``ModelInfo``, the model is written atomically, and the checkpoint is removed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from builder.atomic import atomic_path
from builder.errors import UserError
from builder.versions import library_versions
from trainer import data as data_module
from trainer import models

DEFAULT_SETTINGS: dict[str, Any] = {
    "arch": "context",
    "epochs": 15,
    "batch_size": 256,
    "learning_rate": 0.001,
    "lr_schedule": "cosine",
    "context_frames": 5,
    "lookahead_frames": 1,
    "shuffle_buffer": 16384,
    "seed": 0,
    "loss_weights": {"active": 1.0, "onset": 1.0, "energy": 0.5},
    "positive_weight": {"active": 2.0, "onset": 10.0},
    "compression": 100.0,
    "steps_per_epoch": 0,
    "val_steps": 0,
    "stats_rows": 65536,
    "energy_scale_percentile": 99.0,
    "min_note_seconds": 0.05,
    "reference": {"dropout": 0.5},
    "context": {"freq_filters": [8], "freq_kernel": 5, "freq_pool": 2, "frame_units": 256,
                "context_units": 256, "dropout": 0.2, "envelope_db": 12.0, "bass_cut_db": 30.0,
                "harmonics": 8, "harmonic_divisions": [1, 2, 3], "harmonic_filters": 8},
}

THRESHOLDS = np.array([0.01, 0.02, 0.03, 0.05, 0.07, *np.round(np.arange(0.1, 0.96, 0.05), 2)], dtype=np.float32)
SCORES = ("loss", "frame_precision", "frame_recall", "frame_f1", "frame_threshold", "onset_precision", "onset_recall",
          "onset_f1", "onset_threshold", "energy_mae")
CSV_COLUMNS = ("epoch", "loss", "active_loss", "onset_loss", "energy_loss", *(f"val_{score}" for score in SCORES),
               "seconds")


def fit(data: Path, model_path: Path, settings: dict[str, Any], metrics_dir: Path = Path("metrics"),
        console: Console | None = None, logs_dir: Path = Path("logs/fit")) -> dict[str, Any]:
    """Train ``settings['arch']`` on ``data``; write ``model_path``, ``metrics_dir/fit.{json,csv}``, TensorBoard logs.

    Returns the final metrics (what ``fit.json`` holds).
    """
    from builder.store import open_store

    console = console or Console(stderr=True)
    data, model_path, metrics_dir = Path(data), Path(model_path), Path(metrics_dir)
    _check_settings(settings)
    if model_path.suffix != ".keras":
        raise UserError(f"{model_path}: the model file must end in .keras")
    store = open_store(data)
    frames_per_segment = int(store.attrs["frames_per_segment"])
    window = str(store.attrs["params"]["window"])
    train, test = (data_module.StoreSplit(f"{data}/{side}", store[side], frames_per_segment)
                   for side in ("train", "test"))

    keras.utils.set_random_seed(int(settings["seed"]))
    arch = settings["arch"]
    context_frames, lookahead_frames = models.context_of(arch, settings)
    feature_mean, feature_std, energy_scale = data_module.train_statistics(
        train, settings["compression"], int(settings["stats_rows"]), float(settings["energy_scale_percentile"]))
    info = models.ModelInfo(arch=arch, context_frames=context_frames, lookahead_frames=lookahead_frames,
                            window=window, energy_scale=energy_scale,
                            min_note_seconds=float(settings["min_note_seconds"]),
                            versions=library_versions("pianoscribe", "tensorflow", "tensorflow-cpu", "keras", "numpy"))
    model = models.build_model(arch, settings, info, feature_mean, feature_std)
    train_batches, steps_per_pass = data_module.training_dataset(train, settings, energy_scale)
    steps_per_epoch = int(settings["steps_per_epoch"]) or steps_per_pass
    compile_model(model, settings, total_steps=steps_per_epoch * int(settings["epochs"]))
    macs = models.macs_per_frame(model)
    test_batches = data_module.evaluation_dataset(test, settings["batch_size"], energy_scale,
                                                  int(settings["val_steps"]))
    console.print(f"fit [bold]{arch}[/bold] on {data}: train {train.n_rows} slices, test {test.n_rows} slices, "
                  f"segments of {frames_per_segment}, window {window}; {model.count_params():,} weights, "
                  f"{macs / 1e6:.2f} M MACs per frame; {settings['epochs']} epochs x {steps_per_epoch} steps "
                  f"of {data_module.segments_per_batch(settings['batch_size'], frames_per_segment)} segments")

    checkpoint = Checkpoint(model_path, _fingerprint(data, store.attrs.asdict(), settings), console)
    history = checkpoint.history()
    scores = TestSplitScores(test_batches, history, settings)
    callbacks = [
        scores,  # first: adds the test-split scores to `logs` for everything after it, saves the rows
        keras.callbacks.BackupAndRestore(str(checkpoint.folder / "backup"), delete_checkpoint=False),
        keras.callbacks.TensorBoard(log_dir=str(logs_dir / model_path.stem), write_graph=False),
        progress := EpochProgress(console, steps_per_epoch, int(settings["epochs"])),
    ]
    try:
        model.fit(train_batches, epochs=int(settings["epochs"]), steps_per_epoch=steps_per_epoch,
                  callbacks=callbacks, verbose=0, shuffle=False)
    finally:  # Ctrl-C: leave the terminal clean; the checkpoint of the last finished epoch stays for a rerun
        progress.close()

    rows = history.rows
    if not rows or rows[-1]["epoch"] != int(settings["epochs"]):  # nothing ran (e.g. epochs 0): score once
        scores = score_split(model, test_batches, settings)
        rows.append({"epoch": int(settings["epochs"]), **{f"val_{key}": value for key, value in scores.items()},
                     "seconds": 0.0})
    final = rows[-1]
    info.frame_threshold, info.onset_threshold = final["val_frame_threshold"], final["val_onset_threshold"]
    models.set_model_info(model, info)
    models.save_model(model, model_path)
    summary = {
        "arch": arch, "epochs": final["epoch"], **{key: final[key] for key in CSV_COLUMNS if key in final},
        "frame_threshold": info.frame_threshold, "onset_threshold": info.onset_threshold,
        "train_seconds": round(sum(row["seconds"] for row in rows), 1),
        "macs_per_frame": macs, "weights": model.count_params(),
        "train_slices": train.n_rows, "test_slices": test.n_rows, "energy_scale": energy_scale,
        "context_frames": context_frames, "lookahead_frames": lookahead_frames,
    }
    for key in ("seconds", "epoch", "val_frame_threshold", "val_onset_threshold"):
        summary.pop(key, None)
    write_metrics(metrics_dir, rows, summary)
    checkpoint.remove()
    console.print(f"wrote {model_path}: test frame F1 {final['val_frame_f1']:.3f} (threshold {info.frame_threshold}), "
                  f"onset F1 {final['val_onset_f1']:.3f} (threshold {info.onset_threshold}), energy MAE "
                  f"{final['val_energy_mae']:.3f}; {summary['train_seconds']:.0f} s of training")
    return summary


def compile_model(model: keras.Model, settings: dict[str, Any], total_steps: int = 0) -> None:
    """Adam (learning rate constant, or cosine-decayed over ``total_steps``); binary cross-entropy with positives
    up-weighted for the sparse heads, MSE for energy; their weighted sum."""
    positive_weight = settings["positive_weight"]
    learning_rate = float(settings["learning_rate"])
    if settings["lr_schedule"] == "cosine" and total_steps > 0:
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, total_steps)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss={"active": weighted_binary_crossentropy(positive_weight["active"]),
                        "onset": weighted_binary_crossentropy(positive_weight["onset"]),
                        "energy": "mse"},
                  loss_weights=dict(settings["loss_weights"]))


def weighted_binary_crossentropy(positive_weight: float):
    """Cross-entropy where a positive counts ``positive_weight`` times: a key sounds in ~5% of (slice, key)
    cells and starts in ~0.3%, so unweighted the onset head learns to say "never"."""
    positive_weight = float(positive_weight)

    def loss(target, probability):
        probability = keras.ops.clip(probability, 1e-7, 1.0 - 1e-7)
        return -keras.ops.mean(positive_weight * target * keras.ops.log(probability)
                               + (1.0 - target) * keras.ops.log(1.0 - probability), axis=-1)

    return loss


def _check_settings(settings: dict[str, Any]) -> None:
    for key in ("epochs", "batch_size"):
        if int(settings[key]) < (0 if key == "epochs" else 1):
            raise UserError(f"fit.{key}: must be positive, got {settings[key]}")
    if settings["arch"] not in models.ARCHITECTURES:
        raise UserError(f"fit.arch: expected one of {', '.join(models.ARCHITECTURES)}, got {settings['arch']!r}")
    if settings["lr_schedule"] not in ("cosine", "constant"):
        raise UserError(f"fit.lr_schedule: expected cosine or constant, got {settings['lr_schedule']!r}")
    if float(settings["compression"]) <= 0:
        raise UserError(f"fit.compression: must be > 0, got {settings['compression']}")
    weights = settings["loss_weights"]
    if not isinstance(weights, dict) or set(weights) != set(models.HEADS):
        raise UserError(f"fit.loss_weights: expected weights for {', '.join(models.HEADS)}, got {weights}")
    positive = settings["positive_weight"]
    if not isinstance(positive, dict) or set(positive) != {"active", "onset"} or min(positive.values()) <= 0:
        raise UserError(f"fit.positive_weight: expected positive weights for active and onset, got {positive}")


def _fingerprint(data: Path, store_attrs: dict[str, Any], settings: dict[str, Any]) -> str:
    """What a checkpoint is valid for: the store (path and attributes) and every setting (the epoch count sets
    the learning-rate schedule, so it counts too)."""
    text = json.dumps({"data": str(data.resolve()), "store": store_attrs, "settings": settings},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------- scores


def score_split(model: keras.Model, batches: tf.data.Dataset, settings: dict[str, Any]) -> dict[str, float]:
    """The test-split row of an epoch: loss, frame and onset precision/recall/F1 at the best-F1 threshold, energy error.

    Frame scores are per (slice, key) on ``key_active``; onset scores per (slice, key) on ``key_onset``;
    ``energy_mae`` is the mean absolute error of the energy head over sounding keys (x127 ~ velocity steps);
    ``loss`` is the training loss (same weights) on the test split.
    """
    predict = _predict_function(model)
    at_or_above = {head: np.zeros((2, THRESHOLDS.size), dtype=np.int64) for head in ("active", "onset")}
    positives = {head: 0 for head in at_or_above}
    loss_sums = {head: 0.0 for head in models.HEADS}
    energy_error, sounding, cells = 0.0, 0, 0
    for fft_magnitude, targets in batches:
        predicted = {key: value.numpy() for key, value in predict(fft_magnitude).items()}
        truths = {key: value.numpy() for key, value in targets.items()}
        for head in at_or_above:
            truth = truths[head].astype(bool).ravel()
            probability = predicted[head].ravel()
            for row, selected in enumerate((probability[truth], probability[~truth])):
                at_or_above[head][row] += _count_at_or_above(selected)
            positives[head] += int(truth.sum())
            clipped = np.clip(probability, 1e-7, 1 - 1e-7)
            loss_sums[head] -= float(np.sum(settings["positive_weight"][head] * truth * np.log(clipped)
                                            + (~truth) * np.log1p(-clipped)))
        active = truths["active"].astype(bool)
        energy_error += float(np.abs(predicted["energy"][active] - truths["energy"][active]).sum())
        loss_sums["energy"] += float(np.sum(np.square(predicted["energy"] - truths["energy"])))
        sounding += int(active.sum())
        cells += active.size
    weights = settings["loss_weights"]
    scores: dict[str, float] = {"loss": sum(weights[head] * loss_sums[head] for head in models.HEADS) / max(cells, 1)}
    for head, prefix in (("active", "frame"), ("onset", "onset")):
        true_positive, false_positive = at_or_above[head]
        precision = true_positive / np.maximum(true_positive + false_positive, 1)
        recall = true_positive / max(positives[head], 1)
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        best = int(np.argmax(f1))
        scores.update({f"{prefix}_precision": float(precision[best]), f"{prefix}_recall": float(recall[best]),
                       f"{prefix}_f1": float(f1[best]), f"{prefix}_threshold": round(float(THRESHOLDS[best]), 4)})
    scores["energy_mae"] = energy_error / max(sounding, 1)
    return scores


def _count_at_or_above(probability: np.ndarray) -> np.ndarray:
    """How many probabilities are >= each of THRESHOLDS (one pass: bin, then cumulative from the top)."""
    thresholds_passed = np.searchsorted(THRESHOLDS, probability, side="right")
    histogram = np.bincount(thresholds_passed, minlength=THRESHOLDS.size + 1)
    return np.cumsum(histogram[::-1])[::-1][1:]


def _predict_function(model: keras.Model):
    @tf.function(reduce_retracing=True, autograph=False)
    def predict(fft_magnitude):
        return model(fft_magnitude, training=False)

    return predict


class History:
    """Per-epoch rows (losses, test-split scores, seconds), saved in the checkpoint folder after each epoch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []

    def keep_until(self, epoch: int) -> None:
        """Drop rows the restored weights have not seen (an epoch scored but killed before its backup)."""
        self.rows = [row for row in self.rows if row["epoch"] <= epoch]

    def record(self, row: dict[str, Any]) -> None:
        self.keep_until(row["epoch"] - 1)
        self.rows.append(row)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as temporary:
            temporary.write_text(json.dumps(self.rows, indent=1))


class Checkpoint:
    """The folder that lets a killed fit resume: ``.NAME.keras.checkpoint/`` beside the model."""

    def __init__(self, model_path: Path, fingerprint: str, console: Console) -> None:
        self.folder = model_path.parent / f".{model_path.name}.checkpoint"
        stamp = self.folder / "fingerprint"
        if self.folder.exists():
            if stamp.exists() and stamp.read_text() == fingerprint:
                metadata = self.folder / "backup" / "training_metadata.json"
                done = json.loads(metadata.read_text())["epoch"] if metadata.exists() else 0
                console.print(f"resuming from {self.folder} after epoch {done}")
            else:
                console.print(f"{self.folder}: made with other settings or another store; starting over")
                shutil.rmtree(self.folder)
        if not self.folder.exists():
            self.folder.mkdir(parents=True)
            with atomic_path(stamp) as temporary:
                temporary.write_text(fingerprint)

    def history(self) -> History:
        return History(self.folder / "epochs.json")

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class TestSplitScores(keras.callbacks.Callback):
    """Scores the test split after every epoch, adds ``val_frame_f1`` & co. to the logs and records the row."""

    def __init__(self, batches: tf.data.Dataset, history: History, settings: dict[str, Any]) -> None:
        super().__init__()
        self.batches = batches
        self.history = history
        self.settings = settings
        self.started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        if not self.started:  # first epoch of this run: BackupAndRestore has set where we resume
            self.history.keep_until(epoch)
        self.started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs.update({f"val_{key}": value for key, value in score_split(self.model, self.batches, self.settings).items()})
        row = {"epoch": epoch + 1, **{key: float(value) for key, value in logs.items()},
               "seconds": round(time.monotonic() - self.started, 2)}
        self.history.record(row)


class EpochProgress(keras.callbacks.Callback):
    """A rich progress bar per epoch and one line of scores when it ends."""

    def __init__(self, console: Console, steps: int, epochs: int) -> None:
        super().__init__()
        self.console, self.steps, self.epochs = console, steps, epochs
        self.progress: Progress | None = None
        self.task = None

    def on_train_begin(self, logs=None):
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=self.console, transient=True)
        self.progress.start()

    def on_epoch_begin(self, epoch, logs=None):
        self.task = self.progress.add_task(f"epoch {epoch + 1}/{self.epochs}", total=self.steps, loss="-")

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        self.progress.update(self.task, advance=1, loss="-" if loss is None else f"{float(loss):.4f}")

    def on_epoch_end(self, epoch, logs=None):
        self.progress.remove_task(self.task)
        logs = logs or {}
        self.console.print(
            f"epoch {epoch + 1}/{self.epochs}: loss {logs.get('loss', float('nan')):.4f}  "
            f"test: loss {logs.get('val_loss', float('nan')):.4f}  frame P/R/F1 {logs.get('val_frame_precision', 0):.3f}/"
            f"{logs.get('val_frame_recall', 0):.3f}/{logs.get('val_frame_f1', 0):.3f}  "
            f"onset F1 {logs.get('val_onset_f1', 0):.3f}  energy MAE {logs.get('val_energy_mae', 0):.3f}")

    def on_train_end(self, logs=None):
        self.close()

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


# ---------------------------------------------------------------------------------------------- metric files


def write_metrics(metrics_dir: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """``fit.csv``: one row per epoch (DVC plots: header + rows); ``fit.json``: the final scores (DVC metrics)."""
    metrics_dir.mkdir(parents=True, exist_ok=True)
    lines = [",".join(CSV_COLUMNS)]
    for row in rows:
        lines.append(",".join(_csv_value(row.get(column)) for column in CSV_COLUMNS))
    with atomic_path(metrics_dir / "fit.csv") as temporary:
        temporary.write_text("\n".join(lines) + "\n")
    with atomic_path(metrics_dir / "fit.json") as temporary:
        temporary.write_text(json.dumps(_rounded(summary), indent=2) + "\n")


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    return {key: round(value, 6) if isinstance(value, float) else value for key, value in values.items()}
