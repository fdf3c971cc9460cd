"""How to store the dataset: codecs, chunk sizes and float16, measured on one real shard (docs/dataset.md).

Renders one shard of training examples with the real engine, banks and corpora named in params.yaml, then
writes it through zarr-python with each candidate codec and chunk size (best of a few runs: write seconds,
compression ratio, read-back seconds), and measures what float16 ``fft_magnitude`` loses after the trainer's
compression ``log(1 + c * x)`` compared with float32.

    .venv/bin/python benchmarks/dataset_storage.py [--rows 65536]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr
from rich.console import Console

from builder import banks, corpus
from builder.dataset import store, synth
from builder.dataset.plan import noise_table, piece_table, plan_segments, release_samples
from builder.engine import load_bank_into, new_engine
from pianoscribe.params import load_params

CANDIDATES = [
    ("none", 0, "noshuffle"),
    ("zstd", 1, "noshuffle"),
    ("zstd", 3, "noshuffle"),
    ("blosc-lz4", 1, "shuffle"),
    ("blosc-lz4", 1, "bitshuffle"),
    ("blosc-lz4", 5, "bitshuffle"),
    ("blosc-zstd", 1, "shuffle"),
    ("blosc-zstd", 1, "bitshuffle"),
]
ARRAYS = ("fft_magnitude", "key_energy", "key_active", "key_onset")


def render_shard(rows: int, console: Console) -> synth.ShardBuffers:
    params = load_params()
    settings = params.section("synth")
    data_dir = Path("data")
    pieces = []
    for name in settings["corpora"]:
        path = corpus.ensure_corpus(name, data_dir, params.section("corpus"), console)
        pieces += [(piece.piece_id, piece.notes) for piece in corpus.read_corpus(path).pieces if len(piece.notes)]
    table = piece_table(pieces, release_samples(settings))
    engine = new_engine(0)
    for name in settings["train_banks"]:
        path = banks.ensure_bank(name, data_dir, params.section("bank"), console)
        load_bank_into(engine, banks.read_bank(path), settings["bank_precision"])
    table.load_into(engine)
    engine.set_noise(noise_table(0))
    plan = plan_segments(
        table,
        len(settings["train_banks"]),
        rows // settings["frames_per_segment"],
        np.random.default_rng(0),
        settings,
        augment=True,
    )
    buffers = synth.ShardBuffers.allocate(rows, "float32")
    synth.render_shard(engine, plan, buffers, settings)
    return buffers


def measure_codecs(buffers: synth.ShardBuffers, folder: Path, repeats: int) -> None:
    rows = len(buffers.key_energy)
    data = {
        "fft_magnitude": buffers.fft_magnitude.astype(np.float16),
        "key_energy": buffers.key_energy,
        "key_active": buffers.key_active,
        "key_onset": buffers.key_onset,
    }
    print(
        f"\ncodecs, one shard of {rows} rows, chunks of 4096 rows (write/read ms best of {repeats}; ratio = raw/disk)"
    )
    print(f"{'codec':24s}" + "".join(f"{name:>28s}" for name in ARRAYS))
    for codec, level, shuffle in CANDIDATES:
        storage = {
            "fft_dtype": "float16",
            "chunk_rows": 4096,
            "shard_rows": rows,
            "codec": codec,
            "level": level,
            "shuffle": shuffle,
            "fft_codec": codec,
            "fft_level": level,
        }
        cells = []
        for name in ARRAYS:
            write, read, ratio = _write_read(folder, name, data[name], storage, repeats)
            cells.append(f"{write * 1e3:6.0f}/{read * 1e3:4.0f} ms {ratio:6.2f}x")
        print(f"{codec + ':' + str(level) + ' ' + shuffle:24s}" + "".join(f"{cell:>28s}" for cell in cells))


def measure_chunks(buffers: synth.ShardBuffers, folder: Path, repeats: int) -> None:
    rows = len(buffers.key_energy)
    fft = buffers.fft_magnitude.astype(np.float16)
    print("\nchunk size, fft_magnitude (blosc-lz4:1 bitshuffle) and key_energy (zstd:3)")
    for chunk_rows in (1024, 4096, 16384):
        storage = {
            "fft_dtype": "float16",
            "chunk_rows": chunk_rows,
            "shard_rows": rows,
            "codec": "zstd",
            "level": 3,
            "shuffle": "bitshuffle",
            "fft_codec": "blosc-lz4",
            "fft_level": 1,
        }
        fft_write, fft_read, _ = _write_read(folder, "fft_magnitude", fft, storage, repeats)
        energy_write, energy_read, ratio = _write_read(folder, "key_energy", buffers.key_energy, storage, repeats)
        print(
            f"  chunk_rows {chunk_rows:6d}: fft write {fft_write * 1e3:5.0f} ms read {fft_read * 1e3:5.0f} ms; "
            f"key_energy write {energy_write * 1e3:5.0f} ms read {energy_read * 1e3:5.0f} ms ratio {ratio:.1f}x"
        )


def _write_read(folder: Path, name: str, values: np.ndarray, storage: dict, repeats: int) -> tuple[float, float, float]:
    best_write = best_read = float("inf")
    ratio = 0.0
    for _ in range(repeats):
        path = folder / "probe.zarr"
        shutil.rmtree(path, ignore_errors=True)
        root = store.create_store(path, {"train": len(values), "test": 0}, 16, storage)
        array = root["train"][name]
        started = time.perf_counter()
        array[:] = values
        best_write = min(best_write, time.perf_counter() - started)
        started = time.perf_counter()
        back = array[:]
        best_read = min(best_read, time.perf_counter() - started)
        assert np.array_equal(back, values)
        ratio = values.nbytes / store.disk_bytes(path / "train" / name)
    return best_write, best_read, ratio


def measure_float16(buffers: synth.ShardBuffers, compression: float) -> None:
    exact = buffers.fft_magnitude.astype(np.float64)
    half = buffers.fft_magnitude.astype(np.float16).astype(np.float64)
    feature_exact = np.log1p(compression * exact)
    feature_half = np.log1p(compression * half)
    error = np.abs(feature_half - feature_exact)
    spread = feature_exact.std()
    relative = np.abs(half - exact)[exact > 1e-4] / exact[exact > 1e-4]
    print(f"\nfloat16 vs float32 fft_magnitude (features log(1 + {compression:g} x), as the trainer computes them):")
    print(
        f"  feature error max {error.max():.2e}, mean {error.mean():.2e}; feature std {spread:.3f} "
        f"(max error = {error.max() / spread:.2e} std)"
    )
    print(
        f"  relative magnitude error where x > 1e-4: max {relative.max():.2e} (float16 keeps 11 significant bits); "
        f"largest magnitude {exact.max():.1f} (float16 max 65504)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=65536)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    console = Console(stderr=True)
    zarr.config.set({"array.write_empty_chunks": True})
    buffers = render_shard(arguments.rows, console)
    compression = float(load_params().section("fit")["compression"])
    measure_float16(buffers, compression)
    with tempfile.TemporaryDirectory(dir="data") as folder:
        measure_codecs(buffers, Path(folder), arguments.repeats)
        measure_chunks(buffers, Path(folder), arguments.repeats)


if __name__ == "__main__":
    main()
