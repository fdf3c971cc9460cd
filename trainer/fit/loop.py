"""``trainer fit``: train on the store's train split, score the test split every epoch, resume after a kill.

A fit keeps its state in a checkpoint folder beside the model (``.NAME.keras.checkpoint/``, see ``checkpoint``):
weights, optimizer and random-generator state after the last finished epoch, and the per-epoch score rows.
Started again with the same arguments it continues from there, on the very batches an uninterrupted fit would
see (``trainer.data.training_dataset``), and ends with the same weights; with other settings, another store or
another setup, or from a damaged checkpoint, it says so and starts over. A store rebuilt under a running fit
stops it. At the end the frame/onset thresholds with the best F1 on the test split go into the model's
``ModelInfo``, the model is written atomically, then its ONNX twin (``NAME.onnx``, what ``trainer infer`` runs
without TensorFlow), and the checkpoint is removed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

import keras
import tensorflow as tf

from builder.dataset.store import SIDES, attributes, open_store, side_group, store_identity
from pianoscribe.constants import N_BINS
from pianoscribe.errors import UserError
from pianoscribe.storage import StoreLocation, store_location
from trainer import data as data_module
from trainer.features import velocity_curve
from trainer.fit.checkpoint import Checkpoint, EpochBackup, History, fingerprint, training_setup
from trainer.fit.distribution import STRATEGIES, distribution
from trainer.fit.losses import compile_model
from trainer.fit.metrics import CSV_COLUMNS, write_metrics
from trainer.fit.scores import score_split
from trainer.model import architectures, model_file, onnx_file
from trainer.model.info import HEADS


class FitReport(Protocol):
    """What a fit tells its caller as it goes (the CLI draws it; ``SilentReport`` ignores it)."""

    def message(self, text: str) -> None: ...
    def epoch_begin(self, epoch: int, epochs: int, steps: int) -> None: ...
    def batch_end(self, loss: float | None) -> None: ...
    def epoch_end(self, epoch: int, epochs: int, logs: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


class SilentReport:
    """A ``FitReport`` that says nothing (library and test use)."""

    def message(self, text: str) -> None:
        pass

    def epoch_begin(self, epoch: int, epochs: int, steps: int) -> None:
        pass

    def batch_end(self, loss: float | None) -> None:
        pass

    def epoch_end(self, epoch: int, epochs: int, logs: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def fit(
    data: StoreLocation | Path | str,
    model_path: Path,
    settings: dict[str, Any],
    metrics_dir: Path = Path("metrics"),
    report: FitReport | None = None,
    logs_dir: Path = Path("logs/fit"),
) -> dict[str, Any]:
    """Train ``settings['arch']`` on ``data`` (a store's folder or URL); write ``model_path``,
    ``metrics_dir/fit.{json,csv}``, TensorBoard logs.

    Returns the final metrics (what ``fit.json`` holds).
    """
    report = report or SilentReport()
    data, model_path, metrics_dir = store_location(data), Path(model_path), Path(metrics_dir)
    _check_settings(settings)
    if model_path.suffix != ".keras":
        raise UserError(f"{model_path}: the model file must end in .keras")
    store = open_store(data)
    store_attrs = attributes(store)
    store_watch = StoreWatch(data, store_identity(store))
    frames_per_segment = int(store_attrs["frames_per_segment"])
    window = str(store_attrs["params"]["window"])
    long_fft = bool(settings["context"].get("long_fft", False)) and settings["arch"] == "context"
    train, test = (
        data_module.StoreSplit(f"{data}/{side}", side_group(store, side), frames_per_segment, long_fft)
        for side in SIDES
    )

    devices = distribution(settings["strategy"], report.message)
    settings = devices.scaled(settings)  # the global batch and learning rate of R replicas (R = 1: unchanged)
    keras.utils.set_random_seed(int(settings["seed"]))
    arch = settings["arch"]
    feature_mean, feature_std, energy_scale = data_module.train_statistics(
        train, settings["compression"], int(settings["stats_rows"]), float(settings["energy_scale_percentile"])
    )
    steps_per_epoch = data_module.steps_per_epoch(train, settings)
    with devices.scope():
        model, info = architectures.new_model(
            settings, window, feature_mean, feature_std, energy_scale, long_fft_bins=train.input_bins - N_BINS
        )
        info.velocity_curve = velocity_curve(store_attrs.get("attack_energy"), energy_scale)
        compile_model(model, settings, total_steps=steps_per_epoch * int(settings["epochs"]))
    macs = architectures.macs_per_frame(model)
    test_batches = data_module.evaluation_dataset(
        test, settings["batch_size"], energy_scale, int(settings["val_steps"])
    )
    report.message(
        f"fit [bold]{arch}[/bold] on {data}: train {train.n_rows} slices, test {test.n_rows} slices, "
        f"segments of {frames_per_segment}, window {window}; {model.count_params():,} weights, "
        f"{macs / 1e6:.2f} M MACs per frame; {settings['epochs']} epochs x {steps_per_epoch} steps "
        f"of {data_module.segments_per_batch(settings['batch_size'], frames_per_segment)} segments"
        + (f" ({devices.replicas} replicas)" if devices.replicas > 1 else "")
    )

    checkpoint = Checkpoint(model_path, fingerprint(data, store_attrs, settings, training_setup()), report.message)
    with devices.scope():
        epochs_done, history = checkpoint.restore(model)
    train_batches, _ = data_module.training_dataset(train, settings, energy_scale, first_epoch=epochs_done)
    callbacks = [
        store_watch,  # first: an epoch trained on a store that changed under it is neither scored nor saved
        TestSplitScores(test_batches, history, settings),  # adds the test-split scores to `logs`, saves the rows
        EpochBackup(checkpoint),
        keras.callbacks.TensorBoard(log_dir=str(logs_dir / model_path.stem), write_graph=False),
        ReportProgress(report, steps_per_epoch, int(settings["epochs"])),
    ]
    try:
        with data_module.store_read_errors(train, test):
            model.fit(
                train_batches,
                epochs=int(settings["epochs"]),
                initial_epoch=epochs_done,
                steps_per_epoch=steps_per_epoch,
                callbacks=callbacks,
                verbose=0,
                shuffle=False,
            )
            rows = _rows_through_last_epoch(model, history, test_batches, settings)
    except Exception:
        store_watch.check()  # a shard that cannot be read may be one that builder synth is rewriting
        raise
    finally:  # Ctrl-C: leave the terminal clean; the checkpoint of the last finished epoch stays for a rerun
        report.close()

    final = rows[-1]
    info.frame_threshold, info.onset_threshold = final["val_frame_threshold"], final["val_onset_threshold"]
    model_file.set_model_info(model, info)
    model_file.save_model(model, model_path)
    onnx_path = onnx_file.export_onnx(model_path)  # the twin inference runs without TensorFlow
    summary = {
        "arch": arch,
        "epochs": final["epoch"],
        **{key: final[key] for key in CSV_COLUMNS if key in final},
        "frame_threshold": info.frame_threshold,
        "onset_threshold": info.onset_threshold,
        "train_seconds": round(sum(row["seconds"] for row in rows), 1),
        "macs_per_frame": macs,
        "weights": model.count_params(),
        "train_slices": train.n_rows,
        "test_slices": test.n_rows,
        "energy_scale": energy_scale,
        "context_frames": info.context_frames,
        "lookahead_frames": info.lookahead_frames,
    }
    for key in ("seconds", "epoch", "val_frame_threshold", "val_onset_threshold"):
        summary.pop(key, None)
    write_metrics(metrics_dir, rows, summary)
    checkpoint.remove()
    report.message(
        f"wrote {model_path} and {onnx_path.name}: test frame F1 {final['val_frame_f1']:.3f} "
        f"(threshold {info.frame_threshold}), onset F1 {final['val_onset_f1']:.3f} "
        f"(threshold {info.onset_threshold}), energy MAE {final['val_energy_mae']:.3f}; "
        f"{summary['train_seconds']:.0f} s of training"
    )
    return summary


def _rows_through_last_epoch(
    model: keras.Model, history: History, test_batches: tf.data.Dataset, settings: dict[str, Any]
) -> list[dict[str, Any]]:
    """The epoch rows, ending with the last epoch's (scored now when no epoch ran: ``epochs`` 0)."""
    rows = history.rows
    if not rows or rows[-1]["epoch"] != int(settings["epochs"]):
        final_scores = score_split(model, test_batches, settings)
        rows.append(
            {
                "epoch": int(settings["epochs"]),
                **{f"val_{key}": value for key, value in final_scores.items()},
                "seconds": 0.0,
            }
        )
    return rows


def _check_settings(settings: dict[str, Any]) -> None:
    for key in ("epochs", "batch_size"):
        if int(settings[key]) < (0 if key == "epochs" else 1):
            raise UserError(f"fit.{key}: must be positive, got {settings[key]}")
    if settings["arch"] not in architectures.ARCHITECTURES:
        raise UserError(f"fit.arch: expected one of {', '.join(architectures.ARCHITECTURES)}, got {settings['arch']!r}")
    if settings["strategy"] not in STRATEGIES:
        raise UserError(f"fit.strategy: expected one of {', '.join(STRATEGIES)}, got {settings['strategy']!r}")
    if settings["lr_schedule"] not in ("cosine", "constant"):
        raise UserError(f"fit.lr_schedule: expected cosine or constant, got {settings['lr_schedule']!r}")
    if float(settings["compression"]) <= 0:
        raise UserError(f"fit.compression: must be > 0, got {settings['compression']}")
    weights = settings["loss_weights"]
    if not isinstance(weights, dict) or set(weights) != set(HEADS):
        raise UserError(f"fit.loss_weights: expected weights for {', '.join(HEADS)}, got {weights}")
    positive = settings["positive_weight"]
    if not isinstance(positive, dict) or set(positive) != {"active", "onset"} or min(positive.values()) <= 0:
        raise UserError(f"fit.positive_weight: expected positive weights for active and onset, got {positive}")
    onset_frames = settings["onset_target_frames"]
    if not isinstance(onset_frames, int) or isinstance(onset_frames, bool) or not 1 <= onset_frames <= 4:
        raise UserError(f"fit.onset_target_frames: expected a whole number from 1 to 4, got {onset_frames!r}")


class TestSplitScores(keras.callbacks.Callback):
    """Scores the test split after every epoch, adds ``val_frame_f1`` & co. to the logs and records the row."""

    def __init__(self, batches: tf.data.Dataset, history: History, settings: dict[str, Any]) -> None:
        super().__init__()
        self.batches = batches
        self.history = history
        self.settings = settings
        self.started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs.update(
            {f"val_{key}": value for key, value in score_split(self.model, self.batches, self.settings).items()}
        )
        row = {
            "epoch": epoch + 1,
            **{key: float(value) for key, value in logs.items()},
            "seconds": round(time.monotonic() - self.started, 2),
        }
        self.history.record(row)


class StoreWatch(keras.callbacks.Callback):
    """Stops the fit at an epoch's end when the store at ``path`` is no longer the one it started on: a store
    rebuilt under a running fit would otherwise feed it other data without a word (the open arrays read
    whatever files are at the path now)."""

    def __init__(self, path: StoreLocation, identity: str) -> None:
        super().__init__()
        self.path = path
        self.identity = identity

    def check(self) -> None:
        """``UserError`` if the store at ``path`` changed (another dataset, or one half written)."""
        try:
            current = store_identity(open_store(self.path))
        except UserError:  # missing or incomplete: builder synth is writing it
            current = None
        if current != self.identity:
            raise UserError(
                f"{self.path}: the dataset changed while training (rebuilt by builder synth?); run trainer fit again"
            )

    def on_epoch_end(self, epoch, logs=None):
        self.check()


class ReportProgress(keras.callbacks.Callback):
    """Hands Keras' epoch and batch events to a ``FitReport``."""

    def __init__(self, report: FitReport, steps: int, epochs: int) -> None:
        super().__init__()
        self.report, self.steps, self.epochs = report, steps, epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.report.epoch_begin(epoch, self.epochs, self.steps)

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        self.report.batch_end(None if loss is None else float(loss))

    def on_epoch_end(self, epoch, logs=None):
        self.report.epoch_end(epoch, self.epochs, dict(logs or {}))
