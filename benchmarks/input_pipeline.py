"""Does the Zarr input pipeline feed training fast enough? Side by side, in one run, on the same machine:

(a) slices/s the ``tf.data`` pipeline delivers alone (read chunks, decode, shuffle, batch; nothing trains),
(b) slices/s a training step consumes for each architecture (batches already in memory: the model alone),
and the ratio (a)/(b). Goal: >= 3, so the model never waits for data.

    .venv/bin/python benchmarks/input_pipeline.py [--data data/dataset.zarr] [--steps 200]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

from builder.dataset.store import open_store
from pianoscribe.params import load_params
from trainer import data as data_module
from trainer.model import architectures


def pipeline_rate(batches: tf.data.Dataset, steps: int) -> float:
    iterator = iter(batches)
    for _ in range(5):  # warm-up: first reads, autotuning
        next(iterator)
    slices, started = 0, time.perf_counter()
    for _ in range(steps):
        fft_magnitude, _ = next(iterator)
        slices += int(fft_magnitude.shape[0]) * int(fft_magnitude.shape[1])
    return slices / (time.perf_counter() - started)


def training_rate(
    arch: str, settings: dict, batches: tf.data.Dataset, split: data_module.StoreSplit, steps: int, energy_scale: float
) -> tuple[float, int]:
    settings = {**settings, "arch": arch}
    mean, std, _ = data_module.train_statistics(split, settings["compression"], split.block_rows, 99.0)
    model, _ = architectures.new_model(settings, "hann", mean, std, energy_scale)
    model.compile(
        optimizer=keras.optimizers.Adam(settings["learning_rate"]),
        loss={"active": "binary_crossentropy", "onset": "binary_crossentropy", "energy": "mse"},
        loss_weights=dict(settings["loss_weights"]),
    )
    in_memory = batches.take(8).cache().repeat()
    model.fit(in_memory, steps_per_epoch=5, epochs=1, verbose=0, shuffle=False)  # trace and warm up
    started = time.perf_counter()
    model.fit(in_memory, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    elapsed = time.perf_counter() - started
    slices_per_batch = (
        data_module.segments_per_batch(settings["batch_size"], split.frames_per_segment) * split.frames_per_segment
    )
    return steps * slices_per_batch / elapsed, architectures.macs_per_frame(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/dataset.zarr"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--steps", type=int, default=200, help="batches timed per measurement")
    parser.add_argument("--arch", nargs="*", default=list(architectures.ARCHITECTURES))
    arguments = parser.parse_args()

    settings = load_params(arguments.params).section("fit")
    keras.utils.set_random_seed(int(settings["seed"]))
    store = open_store(arguments.data)
    split = data_module.StoreSplit("train", store["train"], int(store.attrs["frames_per_segment"]))
    _, _, energy_scale = data_module.train_statistics(
        split, settings["compression"], settings["stats_rows"], settings["energy_scale_percentile"]
    )
    batches, _ = data_module.training_dataset(split, settings, energy_scale)

    print(
        f"store {arguments.data}: train {split.n_rows} slices in blocks of {split.block_rows} rows, "
        f"fft {split.fft_dtype()}, batch {settings['batch_size']} slices, {os.cpu_count()} cores"
    )
    pipeline = pipeline_rate(batches, arguments.steps)
    print(f"{'what':<34}{'slices/s':>12}{'MACs/frame':>14}{'pipeline / step':>18}")
    print(f"{'(a) Zarr -> tf.data pipeline alone':<34}{pipeline:>12,.0f}{'':>14}{'':>18}")
    for arch in arguments.arch:
        consumed, macs = training_rate(arch, settings, batches, split, arguments.steps, energy_scale)
        label = f"(b) training step, {arch}"
        print(f"{label:<34}{consumed:>12,.0f}{macs / 1e6:>13.2f}M{pipeline / consumed:>17.1f}x")
    print("goal: pipeline / step >= 3x for every architecture")


if __name__ == "__main__":
    main()
