"""``builder synth`` beyond one process, measured in one run: the threaded single process against Dask clusters of
``local:1`` and ``local:2`` worker processes on the same store, each whole call timed (cluster start-up included;
the start and stop of the bare cluster are timed apart too) and its store compared with the threaded one file by
file; then the two numbers a paper estimate for N machines needs: one shard's render time on one core and the
store's write bandwidth (one whole shard written as ``builder synth`` writes it), and that estimate.

Inputs are made here (a synthetic 88-key bank of decaying harmonic tones, 4 layers, 2 s recordings, and random
polyphonic pieces), so it runs on a fresh checkout; the store has the default layout (float16 fft, blosc-lz4 and
zstd) with smaller shards so that two workers have work to share.

    .venv/bin/python benchmarks/scaling.py [--n 262144] [--shard-rows 16384] [--folder /tmp/scaling]

The machine may be shared: the load average is printed at the start and at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from builder import banks, corpus
from builder.dataset import shards, store, synth
from builder.dataset.plan import piece_table, release_samples
from pianoscribe.defaults import defaults

SAMPLE_RATE = 44100
LAYERS = 4
RECORDING_SECONDS = 2.0
CORES_PER_MACHINE = 8  # the paper estimate's machines


def harmonic_bank(name: str) -> banks.Bank:
    """Every key, ``LAYERS`` layers: eight decaying partials, louder per layer."""
    time_axis = np.arange(int(RECORDING_SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    recordings = []
    for key in range(21, 109):
        fundamental = 440.0 * 2 ** ((key - 69) / 12)
        tone = np.zeros_like(time_axis)
        for partial in range(1, 9):
            if fundamental * partial < SAMPLE_RATE / 2.2:
                tone += np.sin(2 * np.pi * fundamental * partial * time_axis) / partial
        tone *= np.exp(-2.0 * time_axis)
        tone /= np.abs(tone).max()
        recordings.extend(0.05 * (layer + 1) * tone for layer in range(LAYERS))
    lengths = np.array([len(recording) for recording in recordings], dtype=np.int64).reshape(88, LAYERS)
    offsets = np.concatenate([[0], np.cumsum(lengths.ravel())[:-1]]).reshape(88, LAYERS)
    return banks.Bank(
        name=name,
        sample_rate=SAMPLE_RATE,
        layer_velocities=banks.layer_velocities(LAYERS),
        audio=np.concatenate(recordings).astype(np.float32),
        offsets=offsets,
        lengths=lengths,
        source="benchmarks/scaling.py",
    )


def random_pieces(count: int, seconds: float, seed: int) -> list[corpus.Piece]:
    """Polyphonic pieces: about 8 notes per second over the keyboard, 0.1-1.5 s long."""
    rng = np.random.default_rng(seed)
    pieces = []
    for index in range(count):
        onsets = np.sort(rng.uniform(0, seconds - 1.0, int(8 * seconds)))
        notes = np.zeros(len(onsets), dtype=corpus.NOTE_DTYPE)
        notes["onset"] = onsets
        notes["offset"] = onsets + rng.uniform(0.1, 1.5, len(onsets))
        notes["key"] = np.clip(rng.normal(64, 14, len(onsets)).round(), 21, 108)
        notes["velocity"] = rng.integers(20, 127, len(onsets))
        notes.sort(order=["onset", "key"])
        pieces.append(corpus.Piece(piece_id=f"bench/{index:03d}", notes=notes))
    return pieces


def make_inputs(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"bank": folder / "harmonic.h5", "test_bank": folder / "harmonic-test.h5", "corpus": folder / "bench.h5"}
    banks.write_bank(harmonic_bank("harmonic"), paths["bank"])
    shutil.copy(paths["bank"], paths["test_bank"])
    corpus.write_corpus(corpus.Corpus(name="bench", pieces=random_pieces(60, 30.0, seed=0)), paths["corpus"])
    return paths


def settings_for(paths: dict[str, Path], n: int, shard_rows: int) -> dict:
    settings = defaults("synth")
    settings.update(
        {
            "n": n,
            "corpora": [str(paths["corpus"])],
            "train_banks": [str(paths["bank"])],
            "test_banks": [str(paths["test_bank"])],
        }
    )
    settings["storage"].update({"shard_rows": shard_rows})
    return settings


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(file.relative_to(folder)): file.read_bytes() for file in sorted(folder.rglob("*")) if file.is_file()}


def timed_run(settings: dict, paths: dict[str, Path], out: Path) -> float:
    """Seconds of one whole ``synthesize`` call (a fresh store each time)."""
    shutil.rmtree(out, ignore_errors=True)
    bank_paths = {name: Path(name) for name in synth.bank_names(settings)}
    corpus_paths = {name: Path(name) for name in settings["corpora"]}
    started = time.perf_counter()
    synth.synthesize(settings, out, bank_paths, corpus_paths, cache_dir=out.parent / "cache")
    return time.perf_counter() - started


def shard_costs(settings: dict, paths: dict[str, Path], folder: Path) -> tuple[float, float, int]:
    """(render seconds of one train shard on one engine thread, seconds to write it whole, its bytes on disk)."""
    rows = settings["storage"]["shard_rows"]
    pieces = [(piece.piece_id, piece.notes) for piece in corpus.read_corpus(paths["corpus"]).pieces]
    table = piece_table(pieces, release_samples(settings))
    engine, n_banks = shards.side_engine(settings, [paths["bank"]], table, threads=1)
    span = shards.ShardSpan("train", 0, 0, rows)
    block = shards.ShardBuffers.allocate(rows, settings["storage"]["fft_dtype"])
    render_times = []
    for _ in range(3):
        started = time.perf_counter()
        plan = shards.plan_shard(table, n_banks, span, settings)
        shards.render_shard(engine, plan, block, settings)
        render_times.append(time.perf_counter() - started)
    write_times = []
    for attempt in range(3):
        path = folder / f"write-{attempt}.zarr"
        root = store.create_store(path, {"train": rows, "test": 0}, settings["frames_per_segment"], settings["storage"])
        segments = shards.segment_values(plan, table.piece_ids, settings["train_banks"])
        started = time.perf_counter()
        shards.write_shard(root, span, block, segments, settings["frames_per_segment"])
        write_times.append(time.perf_counter() - started)
        written = sum(file.stat().st_size for file in (path / "train").rglob("*") if file.is_file())
        shutil.rmtree(path)
    return min(render_times), min(write_times), written


def cluster_seconds(address: str) -> float:
    """Seconds to start and stop the ``local:N`` cluster alone (no task): the fixed cost inside a ``--dask`` run."""
    from builder.dataset import distributed  # Dask only here, as in builder synth

    started = time.perf_counter()
    with distributed.connect(address):
        pass
    return time.perf_counter() - started


def load() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=262144)
    parser.add_argument("--shard-rows", type=int, default=16384)
    parser.add_argument("--folder", type=Path, default=None)
    arguments = parser.parse_args()
    folder = arguments.folder or Path(tempfile.mkdtemp(prefix="scaling-"))
    paths = make_inputs(folder / "inputs")
    base = settings_for(paths, arguments.n, arguments.shard_rows)
    cores = os.cpu_count() or 1
    print(
        f"{arguments.n:,} slices, shards of {arguments.shard_rows:,} rows, {cores} cores, "
        f"load (1/5/15 min) {load()} at the start"
    )

    runs = [("threaded, one process", None), ("dask local:1", "local:1"), ("dask local:2", "local:2")]
    reference = folder / "threaded.zarr"
    rows = []
    for label, address in runs:
        settings = {**base, "dask": {"address": address}}
        out = reference if address is None else folder / f"{address.replace(':', '')}.zarr"
        seconds = timed_run(settings, paths, out)
        identical = "reference" if address is None else ("yes" if tree_bytes(out) == tree_bytes(reference) else "NO")
        start_stop = "" if address is None else f"{cluster_seconds(address):.2f}"
        rows.append((label, seconds, arguments.n / seconds, start_stop, identical))
    threaded_rate = rows[0][2]
    print(f"\n{'run':24s} {'wall s':>8s} {'slices/s':>10s} {'vs threaded':>12s} {'cluster up+down s':>18s}  identical")
    for label, seconds, rate, start_stop, identical in rows:
        print(f"{label:24s} {seconds:8.2f} {rate:10,.0f} {rate / threaded_rate:11.2f}x {start_stop:>18s}  {identical}")

    render_seconds, write_seconds, shard_bytes = shard_costs(base, paths, folder)
    shard_rows = arguments.shard_rows
    per_core = shard_rows / render_seconds
    bandwidth = shard_bytes / write_seconds
    print(
        f"\none shard ({shard_rows:,} rows, {shard_bytes / 1e6:.1f} MB written): render {render_seconds:.2f} s on one "
        f"engine thread ({per_core:,.0f} slices/s per core), write {write_seconds:.2f} s "
        f"({bandwidth / 1e6:.0f} MB/s compressing and writing, one writer)"
    )
    print(
        f"paper estimate, machines of {CORES_PER_MACHINE} cores, each core rendering then compressing and writing "
        "its shards straight to the store:"
    )
    print(f"{'machines':>9s} {'compute-bound slices/s':>23s} {'store MB/s needed':>18s} {'100M slices':>12s}")
    for machines in (1, 4, 16, 64):
        rate = machines * CORES_PER_MACHINE * per_core / (1 + per_core * write_seconds / shard_rows)
        needed = rate * shard_bytes / shard_rows
        print(f"{machines:9d} {rate:23,.0f} {needed / 1e6:18,.0f} {1e8 / rate / 60:10.1f} min")
    print(f"load (1/5/15 min) {load()} at the end")
    if arguments.folder is None:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
