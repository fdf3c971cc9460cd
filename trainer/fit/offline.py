"""``trainer fit-offline``: train the offline pass (``trainer.model.offline``) on what the streaming model hears in
whole pieces (its heads and per-key features), then write the offline model (the streaming model and the pass in
one file) and its ONNX twin.

The pass learns from the streaming model's heads over training music only: ``pieces`` pieces of the store's train
split (spread evenly over its corpora, never a test piece), each cut to ``seconds`` at a random place and
rendered through one of the store's train banks with the store's own mixing (``builder.dataset.render``). The
targets are the store's labels, made from the notes: a key is active in a buffer when one of its notes sounds at
the buffer's centre, and starts in the buffer holding its first sample. Seeded: the same store, streaming model
and settings give the same pieces, the same batches and the same weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from builder import banks, corpus
from builder.dataset import render
from builder.dataset.store import attributes, open_store
from pianoscribe.constants import HOP_SECONDS, LOWEST_KEY, N_KEYS
from pianoscribe.errors import UserError
from pianoscribe.storage import StoreLocation, store_location
from trainer.features import frames_from_audio
from trainer.fit.loop import FitReport, ReportProgress, SilentReport
from trainer.fit.losses import weighted_binary_crossentropy
from trainer.fit.metrics import write_json
from trainer.inference.decode import notes_to_roll
from trainer.model import model_file, onnx_file
from trainer.model.info import OFFLINE_ARCH, ModelInfo
from trainer.model.offline import CORRECTED, HeadPass, offline_model, pass_inputs_model, radius_of, training_model


@dataclass
class HeadExamples:
    """The streaming model's heads over the rendered pieces, end to end, and the store-style labels."""

    heads: np.ndarray  # [frames, 88, channels] float32: active, onset, energy, then the per-key features
    active: np.ndarray  # [frames, 88] uint8
    onset: np.ndarray  # [frames, 88] uint8
    starts: np.ndarray  # [pieces] first frame of each piece
    lengths: np.ndarray  # [pieces] its frames


def fit_offline(
    data: StoreLocation | Path | str,
    streaming_path: Path,
    offline_path: Path,
    settings: dict[str, Any],
    data_dir: Path = Path("data"),
    metrics_dir: Path = Path("metrics"),
    report: FitReport | None = None,
) -> dict[str, Any]:
    """Train the pass on ``settings`` (the ``offline`` section) and write ``offline_path`` (``.keras``), its ONNX
    twin and ``metrics_dir/fit_offline.json``; returns what that file holds."""
    report = report or SilentReport()
    data, streaming_path, offline_path = store_location(data), Path(streaming_path), Path(offline_path)
    _check_settings(settings, offline_path)
    started = time.monotonic()
    streaming, streaming_info = model_file.load_model(streaming_path)
    if streaming_info.arch == OFFLINE_ARCH:  # refused before minutes of rendering, not after the training
        raise UserError(f"{streaming_path}: an offline model; --model must name the streaming model it is built on")
    inputs_model = pass_inputs_model(streaming, settings)
    channels = int(inputs_model.output["heads"].shape[-1])
    report.message(
        f"rendering {settings['pieces']} training pieces of {settings['seconds']:g} s through the train banks, "
        f"then {streaming_path}'s heads and per-key features ({channels} channels per key)"
    )
    examples = head_examples(
        data,
        Path(data_dir),
        streaming_info,
        inputs_model,
        settings,
        progress=lambda done, total: report.message(f"  {done}/{total} pieces") if done % 60 == 0 else None,
    )
    render_seconds = time.monotonic() - started

    keras.utils.set_random_seed(int(settings["seed"]))
    head_pass = HeadPass(settings)
    model = training_model(head_pass, channels)
    epochs, steps = int(settings["epochs"]), int(settings["steps_per_epoch"])
    model.compile(
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(float(settings["learning_rate"]), max(1, epochs * steps))
        ),
        loss={head: weighted_binary_crossentropy(settings["positive_weight"][head]) for head in CORRECTED},
    )
    report.message(
        f"offline pass: {model.count_params():,} weights, sees {radius_of(settings)} frames either side; "
        f"{examples.lengths.sum():,} frames of {len(examples.lengths)} pieces; {epochs} epochs x {steps} steps"
    )
    batches = _training_batches(examples, settings)
    try:
        history = model.fit(
            batches,
            epochs=epochs,
            steps_per_epoch=steps,
            verbose=0,
            shuffle=False,  # the windows are drawn at random already
            callbacks=[ReportProgress(report, steps, epochs)],
        )
    finally:
        report.close()

    joined, info = offline_model(inputs_model, streaming_info, head_pass, settings)
    model_file.save_model(joined, offline_path)
    onnx_path = onnx_file.export_onnx(offline_path)
    losses = history.history.get("loss") or [float("nan")]
    summary = {
        "loss": round(float(losses[-1]), 5),
        **{f"{head}_loss": round(float(history.history[f"{head}_loss"][-1]), 5) for head in CORRECTED},
        "pieces": len(examples.lengths),
        "frames": int(examples.lengths.sum()),
        "channels": channels,  # per key and frame: 3 heads (+ the streaming model's per-key features)
        "radius_frames": radius_of(settings),
        "context_frames": info.context_frames,
        "lookahead_frames": info.lookahead_frames,
        "weights": model.count_params(),
        "render_seconds": round(render_seconds, 1),
        "train_seconds": round(time.monotonic() - started - render_seconds, 1),
    }
    write_json(summary, Path(metrics_dir) / "fit_offline.json")
    report.message(
        f"wrote {offline_path} and {onnx_path.name}: looks {info.lookahead_frames} buffers "
        f"({info.lookahead_frames * HOP_SECONDS:.2f} s) ahead; loss {summary['loss']:.4f}"
    )
    return summary


def head_examples(
    data: StoreLocation,
    data_dir: Path,
    streaming_info: ModelInfo,
    inputs_model: keras.Model,
    settings: dict[str, Any],
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> HeadExamples:
    """Render the chosen training pieces, featurize each as the streaming model reads audio, run ``inputs_model``
    (``pass_inputs_model``) over it whole, label each frame from the notes; ``progress(done, total)`` after each
    piece."""
    attrs = attributes(open_store(data))
    synth_settings = attrs.get("params") or {}
    train_ids = set((attrs.get("split") or {}).get("train") or [])
    if not train_ids:
        raise UserError(f"{data}: the store has no train pieces in its 'split' attribute")
    rng = np.random.default_rng(int(settings["seed"]))
    pieces = _chosen_pieces(list(attrs.get("corpora") or {}), train_ids, data_dir, int(settings["pieces"]), rng)
    bank_names = list(synth_settings["train_banks"])
    renderers = {
        name: render.Renderer(
            banks.read_bank(_existing(banks.bank_path(name, data_dir), "builder bank", name)), synth_settings
        )
        for name in bank_names
    }
    seconds = float(settings["seconds"])
    heads, active, onset, lengths = [], [], [], []
    for done, piece in enumerate(pieces, start=1):
        notes = _random_window(piece.notes, seconds, rng)
        bank = bank_names[int(rng.integers(len(bank_names)))]
        if len(notes):
            audio = renderers[bank].render(notes)
            rows = streaming_info.featurizer().rows(frames_from_audio(audio))
            pass_inputs = inputs_model(rows[np.newaxis].astype(np.float32), training=False)["heads"]
            heads.append(np.asarray(pass_inputs, dtype=np.float32)[0])
            active.append(notes_to_roll(notes, len(rows), values="binary").astype(np.uint8))
            onset.append(onset_roll(notes, len(rows)))
            lengths.append(len(rows))
        progress(done, len(pieces))
    if not lengths:
        raise UserError(f"{data}: no notes in the chosen training pieces")
    lengths_array = np.array(lengths, dtype=np.int64)
    return HeadExamples(
        heads=np.concatenate(heads),
        active=np.concatenate(active),
        onset=np.concatenate(onset),
        starts=np.concatenate([[0], np.cumsum(lengths_array)[:-1]]),
        lengths=lengths_array,
    )


def onset_roll(notes: np.ndarray, n_frames: int) -> np.ndarray:
    """``[frames, 88]`` uint8: 1 in the buffer that holds a note's first sample (the store's ``key_onset``)."""
    roll = np.zeros((n_frames, N_KEYS), dtype=np.uint8)
    frames = np.floor(np.asarray(notes["onset"], np.float64) / HOP_SECONDS).astype(np.int64)
    inside = frames < n_frames
    roll[frames[inside], np.asarray(notes["key"], np.int64)[inside] - LOWEST_KEY] = 1
    return roll


def _chosen_pieces(
    corpus_names: list[str], train_ids: set[str], data_dir: Path, count: int, rng: np.random.Generator
) -> list[corpus.Piece]:
    """``count`` train pieces spread evenly over the store's corpora (all of a corpus when it has fewer)."""
    chosen: list[corpus.Piece] = []
    for index, name in enumerate(corpus_names):
        path = _existing(corpus.corpus_path(name, data_dir), "builder corpus", name)
        members = [piece for piece in corpus.read_corpus(path).pieces if piece.piece_id in train_ids]
        share = count // len(corpus_names) + (1 if index < count % len(corpus_names) else 0)
        if members:
            picked = rng.choice(len(members), size=min(share, len(members)), replace=False)
            chosen.extend(members[int(position)] for position in sorted(picked))
    return chosen


def _random_window(notes: np.ndarray, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """The notes of ``seconds`` of the piece from a random start, shifted to start at 0 and cut at the end."""
    notes = np.asarray(notes)
    if len(notes) == 0:
        return notes
    start = float(rng.uniform(0.0, max(0.0, float(notes["offset"].max()) - seconds)))
    kept = np.array(notes[(notes["offset"] > start) & (notes["onset"] < start + seconds)], copy=True)
    kept["onset"] = np.maximum(kept["onset"] - start, 0.0)
    kept["offset"] = np.minimum(kept["offset"] - start, seconds)
    return kept[kept["offset"] > kept["onset"]]


def _training_batches(examples: HeadExamples, settings: dict[str, Any]) -> tf.data.Dataset:
    """Endless batches of ``batch_windows`` random windows of ``window_frames`` frames (within one piece).

    Each window's onset head is scaled by a factor drawn from [``onset_scale_min``, 1]: on a piano it never heard
    the streaming model's onset head fires weakly (docs/training.md), and the pass must not learn to trust it more
    than the rise of the other heads.
    """
    window, batch = int(settings["window_frames"]), int(settings["batch_windows"])
    long_enough = examples.lengths >= window
    if not long_enough.any():
        raise UserError(
            f"offline.window_frames: {window} frames is longer than every rendered piece "
            f"(longest {int(examples.lengths.max())}); lower it or raise offline.seconds"
        )
    starts, lengths = examples.starts[long_enough], examples.lengths[long_enough]
    rng = np.random.default_rng(int(settings["seed"]) + 1)
    onset_scale_min = float(settings["onset_scale_min"])

    def windows() -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        while True:
            piece = rng.integers(len(starts), size=batch)
            first = starts[piece] + rng.integers(0, lengths[piece] - window + 1)
            rows = first[:, None] + np.arange(window)
            heads = examples.heads[rows]
            heads[..., 1] *= rng.uniform(onset_scale_min, 1.0, size=(batch, 1, 1)).astype(np.float32)
            yield (
                heads,
                {"active": examples.active[rows].astype(np.float32), "onset": examples.onset[rows].astype(np.float32)},
            )

    labels = tf.TensorSpec((batch, window, N_KEYS), tf.float32)
    return tf.data.Dataset.from_generator(
        windows,
        output_signature=(
            tf.TensorSpec((batch, window, N_KEYS, examples.heads.shape[-1]), tf.float32),
            {"active": labels, "onset": labels},
        ),
    ).prefetch(2)


def _check_settings(settings: dict[str, Any], offline_path: Path) -> None:
    if offline_path.suffix != ".keras":
        raise UserError(f"{offline_path}: the model file must end in .keras")
    for key in ("pieces", "epochs", "steps_per_epoch", "batch_windows", "window_frames"):
        if int(settings[key]) < 1:
            raise UserError(f"offline.{key}: must be >= 1, got {settings[key]}")
    if not isinstance(settings["streaming_features"], bool):
        raise UserError(f"offline.streaming_features: expected true or false, got {settings['streaming_features']!r}")
    if not 0.0 < float(settings["onset_scale_min"]) <= 1.0:
        raise UserError(f"offline.onset_scale_min: expected a number in (0, 1], got {settings['onset_scale_min']}")
    for key in ("seconds", "learning_rate"):
        if float(settings[key]) <= 0:
            raise UserError(f"offline.{key}: must be > 0, got {settings[key]}")
    positive = settings["positive_weight"]
    if not isinstance(positive, dict) or set(positive) != set(CORRECTED) or min(positive.values()) <= 0:
        raise UserError(f"offline.positive_weight: expected positive weights for active and onset, got {positive}")
    radius_of(settings)


def _existing(path: Path, command: str, name: str) -> Path:
    if not path.exists():
        raise UserError(f"{path}: missing (the store was made from it; run `{command} {name}`)")
    return path
