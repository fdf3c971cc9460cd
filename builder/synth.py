"""``builder synth``: plan segments, split by piece, render them shard by shard with the native engine, store them.

A segment is ``frames_per_segment`` consecutive 1024-sample buffers (hop 1024) from one random position of one
piece through one bank, with one draw of augmentation. Planning is vectorized numpy, seeded per shard
(``seed``, side, shard index), so a shard's content never depends on threads or on other shards. The engine
(``pianoscribe_native``) mixes, labels and FFTs a whole shard into preallocated arrays with the GIL released,
while writer threads compress and write the previous shards: each shard is written whole by one writer
(zarr loses data when writers share a shard), and at most ``storage.writers + 1`` shards are in memory,
whatever ``--n``.

The split is by piece and fixed: a piece's side is a pure function of its id and the seed
(:func:`piece_side`). Test segments are rendered through ``test_banks`` (a piano the model never hears), train
segments through ``train_banks``.

Labels and augmentation: ``key_energy`` is measured on each key's own signal as it is mixed, so it includes
the segment's random gain and detune (the key's contribution as heard) but not the added noise (nobody's
key) nor the EQ tilt, which is applied to the spectrum. ``key_active``/``key_onset`` come from the notes.
The test side is rendered without augmentation unless ``augment.test`` is true: its scores then measure the
clean audio ``trainer evaluate`` renders.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from builder import store
from builder.atomic import atomic_path
from builder.errors import UserError

SAMPLE_RATE = 44100
BUFFER_SIZE = 1024
NOISE_TABLE_SAMPLES = 1 << 20     # white noise is read from a seeded table at a random offset per segment
HASH_BLOCK_BYTES = 1 << 24
HASH_CACHE_NAME = "sha256.json"     # in data/cache: file hashes by (path, size, mtime)

# Mirrors params.yaml section `synth` (params.yaml wins; this is what a missing params.yaml means).
DEFAULT_SETTINGS: dict[str, Any] = {
    "n": 1000000,
    "seed": 0,
    "threads": 0,
    "frames_per_segment": 16,
    "test_fraction": 0.15,
    "corpora": ["chorales", "procedural"],
    "train_banks": ["timgm6mb", "merlin", "modal", "modal-1", "modal-2", "modal-3"],
    "test_banks": ["steinway"],
    "window": "hann",
    "release_seconds": 0.08,
    "velocity_exponent": 1.0,
    "bank_precision": "int16",
    "augment": {
        "noise_db": -70.0,
        "gain_db": 6.0,
        "tilt_db_per_octave": 1.5,
        "tilt_pivot_hz": 1000.0,
        "detune_cents": 15.0,
        "test": False,
    },
    "storage": {
        "fft_dtype": "float16",
        "chunk_rows": 4096,
        "shard_rows": 65536,
        "codec": "zstd",
        "level": 3,
        "fft_codec": "blosc-lz4",
        "fft_level": 5,
        "shuffle": "bitshuffle",
        "writers": 2,
    },
}
WINDOWS = ("hann", "none")
BANK_PRECISIONS = ("int16", "float32")


# ---------------------------------------------------------------------------------------------- settings

def check_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Validate the ``synth`` section (unknown keys included); returns it. ``UserError`` names the parameter."""
    _check_known_keys(settings, DEFAULT_SETTINGS, "synth")
    frames = settings["frames_per_segment"]
    for name in ("n", "frames_per_segment"):
        value = settings[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserError(f"synth.{name}: expected a positive integer, got {value!r}")
    if settings["n"] % frames:
        raise UserError(f"synth.n: {settings['n']} is not a multiple of frames_per_segment {frames}")
    if not isinstance(settings["seed"], int) or isinstance(settings["seed"], bool) or settings["seed"] < 0:
        raise UserError(f"synth.seed: expected a non-negative integer, got {settings['seed']!r}")
    if not isinstance(settings["threads"], int) or settings["threads"] < 0:
        raise UserError(f"synth.threads: expected 0 (all cores) or a positive integer, got {settings['threads']!r}")
    if not 0.0 <= float(settings["test_fraction"]) < 1.0:
        raise UserError(f"synth.test_fraction: expected a number in [0, 1), got {settings['test_fraction']!r}")
    for name in ("corpora", "train_banks", "test_banks"):
        value = settings[name]
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise UserError(f"synth.{name}: expected a list of names or .h5 paths, got {value!r}")
    if not settings["corpora"] or not settings["train_banks"]:
        raise UserError("synth.corpora/train_banks: need at least one corpus and one train bank")
    if float(settings["test_fraction"]) > 0 and not settings["test_banks"]:
        raise UserError("synth.test_banks: test_fraction > 0 needs at least one test bank")
    if settings["window"] not in WINDOWS:
        raise UserError(f"synth.window: expected one of {', '.join(WINDOWS)}, got {settings['window']!r}")
    if settings["bank_precision"] not in BANK_PRECISIONS:
        raise UserError(f"synth.bank_precision: expected one of {', '.join(BANK_PRECISIONS)}, "
                        f"got {settings['bank_precision']!r}")
    for name in ("release_seconds", "velocity_exponent"):
        if not float(settings[name]) >= 0:
            raise UserError(f"synth.{name}: expected a number >= 0, got {settings[name]!r}")
    augment = settings["augment"]
    for name in ("gain_db", "tilt_db_per_octave", "detune_cents"):
        if not float(augment[name]) >= 0:
            raise UserError(f"synth.augment.{name}: expected a number >= 0 (the +- range), got {augment[name]!r}")
    if not float(augment["tilt_pivot_hz"]) > 0:
        raise UserError(f"synth.augment.tilt_pivot_hz: expected a frequency > 0, got {augment['tilt_pivot_hz']!r}")
    if float(augment["detune_cents"]) >= 600:
        raise UserError(f"synth.augment.detune_cents: {augment['detune_cents']} is not a slight detune (< 600)")
    store.check_storage(settings["storage"], frames)
    return settings


def _check_known_keys(values: dict[str, Any], defaults: dict[str, Any], prefix: str) -> None:
    for key, value in values.items():
        if key not in defaults:
            raise UserError(f"{prefix}.{key}: unknown parameter (known: {', '.join(defaults)})")
        if isinstance(defaults[key], dict):
            if not isinstance(value, dict):
                raise UserError(f"{prefix}.{key}: expected a mapping")
            _check_known_keys(value, defaults[key], f"{prefix}.{key}")


# ---------------------------------------------------------------------------------------------- split

def piece_side(piece_id: str, seed: int, test_fraction: float) -> str:
    """``"test"`` or ``"train"``: a pure function of the piece id and the seed (sha256 as a uniform number).

    Versions of one chorale (``bwv18.5-lz``, ``bwv18.5-w``: other harmonizations or instrumentations of the same
    tune) hash as one piece, so the same music never sits on both sides.
    """
    digest = hashlib.sha256(f"{seed}:{split_group(piece_id)}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2.0 ** 64 < test_fraction else "train"


def split_group(piece_id: str) -> str:
    """The id the split hashes: a chorale's id without its version suffix; any other id as it is."""
    if piece_id.startswith("chorales/"):
        return re.sub(r"-[A-Za-z0-9]+$", "", piece_id)
    return piece_id


def split_rows(n: int, frames_per_segment: int, test_fraction: float) -> dict[str, int]:
    """Rows per side: whole segments, the test side ``round(segments * test_fraction)`` of them."""
    segments = n // frames_per_segment
    test_segments = round(segments * test_fraction)
    if test_fraction > 0 and segments >= 2:
        test_segments = min(max(test_segments, 1), segments - 1)
    return {"train": (segments - test_segments) * frames_per_segment, "test": test_segments * frames_per_segment}


# ---------------------------------------------------------------------------------------------- notes

@dataclass
class PieceTable:
    """Pieces flattened for the engine: notes in samples, CSR by piece, sorted by onset within a piece."""

    piece_ids: list[str]
    onset: np.ndarray         # int64 samples
    offset: np.ndarray        # int64 samples (> onset)
    key: np.ndarray           # uint8 MIDI 21..108
    velocity: np.ndarray      # uint8 1..127
    piece_start: np.ndarray   # int64 [pieces + 1]
    extent: np.ndarray        # int64 [pieces] sample where the last note's release ends

    def load_into(self, engine: Any) -> None:
        engine.set_notes(self.onset, self.offset, self.key, self.velocity, self.piece_start)


def piece_table(pieces: list[tuple[str, np.ndarray]], release_samples: int) -> PieceTable:
    """Flatten ``(piece_id, NOTE_DTYPE notes)`` pairs; onsets/offsets rounded to samples, offsets after onsets."""
    notes = [np.sort(piece_notes, order=("onset", "key")) for _, piece_notes in pieces]
    counts = np.array([len(piece_notes) for piece_notes in notes], dtype=np.int64)
    merged = np.concatenate(notes) if notes else np.zeros(0, dtype=[("onset", "<f8"), ("offset", "<f8"),
                                                                     ("key", "u1"), ("velocity", "u1")])
    onset = np.round(merged["onset"] * SAMPLE_RATE).astype(np.int64)
    offset = np.maximum(np.round(merged["offset"] * SAMPLE_RATE).astype(np.int64), onset + 1)
    piece_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    ends = offset + release_samples
    extent = np.array([ends[a:b].max() if b > a else 0 for a, b in zip(piece_start[:-1], piece_start[1:])],
                      dtype=np.int64)
    return PieceTable(piece_ids=[piece_id for piece_id, _ in pieces], onset=onset, offset=offset,
                      key=merged["key"].astype(np.uint8), velocity=merged["velocity"].astype(np.uint8),
                      piece_start=piece_start, extent=extent)


# ---------------------------------------------------------------------------------------------- planning

@dataclass
class SegmentPlan:
    """Per-segment draws for one shard (arrays of length segments), exactly what the engine consumes."""

    piece: np.ndarray            # int64 index into the side's PieceTable
    bank: np.ndarray             # int32 index into the side's banks
    start_sample: np.ndarray     # int64
    gain: np.ndarray             # float32 linear
    detune_ratio: np.ndarray     # float64 playback-rate ratio
    noise_amplitude: np.ndarray  # float32 standard deviation of the added white noise
    noise_offset: np.ndarray     # int64 start in the noise table
    tilt_db: np.ndarray          # float32 dB per octave


def plan_segments(table: PieceTable, n_banks: int, count: int, rng: np.random.Generator,
                  settings: dict[str, Any], augment: bool) -> SegmentPlan:
    """Draw ``count`` segments: a piece (weighted by its length, so every second of music is equally likely),
    a bank, a start sample, and the segment's augmentation (uniform within the ``augment`` ranges)."""
    span = settings["frames_per_segment"] * BUFFER_SIZE
    weights = np.cumsum(table.extent.astype(np.float64))
    piece = np.minimum(np.searchsorted(weights, rng.random(count) * weights[-1], side="right"),
                       len(table.extent) - 1).astype(np.int64)
    room = np.maximum(table.extent[piece] - span, 0) + 1
    start_sample = np.floor(rng.random(count) * room).astype(np.int64)
    bank = rng.integers(0, n_banks, count).astype(np.int32)
    ranges = settings["augment"]
    uniform = rng.uniform(-1.0, 1.0, size=(4, count))
    noise_level = rng.random(count)
    noise_offset = rng.integers(0, NOISE_TABLE_SAMPLES - span + 1, count).astype(np.int64)
    if not augment:
        uniform[:] = 0.0
        noise_level[:] = 0.0
    gain = (10.0 ** (uniform[0] * float(ranges["gain_db"]) / 20.0)).astype(np.float32)
    detune_ratio = 2.0 ** (uniform[1] * float(ranges["detune_cents"]) / 1200.0)
    tilt_db = (uniform[2] * float(ranges["tilt_db_per_octave"])).astype(np.float32)
    noise_amplitude = (noise_level * 10.0 ** (float(ranges["noise_db"]) / 20.0)).astype(np.float32)
    return SegmentPlan(piece=piece, bank=bank, start_sample=start_sample, gain=gain, detune_ratio=detune_ratio,
                       noise_amplitude=noise_amplitude, noise_offset=noise_offset, tilt_db=tilt_db)


def noise_table(seed: int) -> np.ndarray:
    """Unit white noise the segments read from (seeded; one table per run)."""
    return np.random.default_rng([seed, 0x6E6F697365]).standard_normal(NOISE_TABLE_SAMPLES).astype(np.float32)


# ---------------------------------------------------------------------------------------------- engine use

@dataclass
class ShardBuffers:
    """Preallocated outputs of one shard (reused: at most two exist)."""

    fft_magnitude: np.ndarray
    key_energy: np.ndarray
    key_active: np.ndarray
    key_onset: np.ndarray

    @classmethod
    def allocate(cls, rows: int, fft_dtype: str) -> ShardBuffers:
        return cls(np.empty((rows, store.N_BINS), dtype=fft_dtype), np.empty((rows, 88), np.float32),
                   np.empty((rows, 88), np.uint8), np.empty((rows, 88), np.uint8))

    def rows(self, count: int) -> ShardBuffers:
        return ShardBuffers(self.fft_magnitude[:count], self.key_energy[:count], self.key_active[:count],
                            self.key_onset[:count])


def new_engine(threads: int) -> Any:
    """The native engine (import here so a missing build is one clear error)."""
    try:
        import pianoscribe_native
    except ImportError as error:
        raise UserError(f"pianoscribe_native: the C++ engine is not built ({error}); run `make setup`") from error
    return pianoscribe_native.Engine(threads)


def load_bank_into(engine: Any, bank: Any, precision: str = "float32") -> int:
    """Hand a bank to the engine: float32 shares the arrays (no copy); int16 makes the engine's own packed copy
    (one scale per recording: half the memory, ~100 dB below each recording's peak; docs/dataset.md)."""
    if int(bank.sample_rate) != SAMPLE_RATE:
        raise UserError(f"bank {bank.name}: sample rate {bank.sample_rate}, the synthesizer needs {SAMPLE_RATE}")
    return engine.add_bank(np.ascontiguousarray(bank.audio, np.float32), np.ascontiguousarray(bank.offsets, np.int64),
                           np.ascontiguousarray(bank.lengths, np.int64),
                           np.ascontiguousarray(bank.layer_velocities, np.float32), precision)


def render_shard(engine: Any, plan: SegmentPlan, buffers: ShardBuffers, settings: dict[str, Any]) -> None:
    """Mix, label and FFT the planned segments into ``buffers`` (GIL released, engine threads)."""
    engine.synthesize(plan.piece, plan.bank, plan.start_sample, plan.gain, plan.detune_ratio, plan.noise_amplitude,
                      plan.noise_offset, plan.tilt_db, buffers.fft_magnitude, buffers.key_energy, buffers.key_active,
                      buffers.key_onset, frames_per_segment=settings["frames_per_segment"],
                      release_samples=release_samples(settings), velocity_exponent=float(settings["velocity_exponent"]),
                      window=settings["window"], tilt_pivot_hz=float(settings["augment"]["tilt_pivot_hz"]))


def release_samples(settings: dict[str, Any]) -> int:
    return int(round(float(settings["release_seconds"]) * SAMPLE_RATE))


# ---------------------------------------------------------------------------------------------- the command

@dataclass
class SynthSummary:
    """What ``builder synth`` reports at the end."""

    rows: dict[str, int]
    seconds: float
    disk_bytes: int
    raw_bytes: int
    keys_covered: dict[str, int]
    built: list[str] = field(default_factory=list)

    @property
    def examples_per_second(self) -> float:
        return sum(self.rows.values()) / max(self.seconds, 1e-9)


def synthesize(settings: dict[str, Any], out: Path | str, bank_settings: dict[str, Any],
               corpus_settings: dict[str, Any], data_dir: Path | str, console: Any) -> SynthSummary:
    """Write the dataset store at ``out`` (atomically) and print a summary; see the module docstring."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from builder import banks, corpus

    started = time.perf_counter()
    settings = check_settings(settings)
    data_dir = Path(data_dir)
    seed, frames = settings["seed"], settings["frames_per_segment"]
    corpus_paths = {name: corpus.ensure_corpus(name, data_dir, corpus_settings, console) for name in settings["corpora"]}
    bank_names = list(dict.fromkeys(settings["train_banks"] + settings["test_banks"]))
    bank_paths = {name: banks.ensure_bank(name, data_dir, bank_settings, console) for name in bank_names}
    hashes: dict[Path, str] = {}
    hasher = threading.Thread(target=_hash_files, args=([*corpus_paths.values(), *bank_paths.values()], hashes,
                                                        data_dir / "cache" / HASH_CACHE_NAME), daemon=True)
    hasher.start()

    pieces = {"train": [], "test": []}
    for name, path in corpus_paths.items():
        for piece in corpus.read_corpus(path).pieces:
            if len(piece.notes):
                pieces[piece_side(piece.piece_id, seed, float(settings["test_fraction"]))].append(
                    (piece.piece_id, piece.notes))
    rows = split_rows(settings["n"], frames, float(settings["test_fraction"]))
    for side in store.SIDES:
        if rows[side] and not pieces[side]:
            raise UserError(f"synth.corpora: no piece with notes falls on the {side} side "
                            f"(test_fraction {settings['test_fraction']}, seed {seed}); add pieces or change them")

    storage = settings["storage"]
    statistics = {side: store.empty_statistics() for side in store.SIDES}
    out = Path(out)
    with atomic_path(out, suffix=".zarr") as temporary:
        root = store.create_store(temporary, rows, frames, storage)
        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=console,
                            transient=False)
        with progress, ThreadPoolExecutor(max_workers=storage["writers"], thread_name_prefix="zarr-writer") as writer:
            for side in store.SIDES:
                if not rows[side]:
                    continue
                task = progress.add_task(side, total=rows[side], rate="")
                side_bank_paths = [bank_paths[name] for name in settings[f"{side}_banks"]]
                _synthesize_side(side, settings, root[side], pieces[side], side_bank_paths, rows[side], writer,
                                 statistics[side], lambda done, rate: progress.update(
                                     task, completed=done, rate=f"{rate / 1e3:,.0f}k ex/s"))
        hasher.join()
        if Path("error") in hashes:
            raise UserError(f"hashing the inputs failed: {hashes[Path('error')]}")
        attrs = {
            "params": settings,
            "banks": {name: hashes[path] for name, path in bank_paths.items()},
            "corpora": {name: hashes[path] for name, path in corpus_paths.items()},
            "split": {side: sorted(piece_id for piece_id, _ in pieces[side]) for side in store.SIDES},
            "versions": versions(),
            "frames_per_segment": frames,
            "sample_rate": SAMPLE_RATE,
            "buffer_size": BUFFER_SIZE,
            "rows": rows,
            "statistics": {side: store.statistics_attrs(statistics[side]) for side in store.SIDES},
        }
        store.finish_store(root, attrs)
        raw = store.raw_bytes(root)
    summary = SynthSummary(rows=rows, seconds=time.perf_counter() - started, disk_bytes=store.disk_bytes(out),
                           raw_bytes=raw, keys_covered={side: int((statistics[side]["active_per_key"] > 0).sum())
                                                        for side in store.SIDES})
    _print_summary(summary, out, console)
    return summary


def _synthesize_side(side: str, settings: dict[str, Any], group: Any, side_pieces: list[tuple[str, np.ndarray]],
                     bank_paths: list[Path], n_rows: int, writer: ThreadPoolExecutor, statistics: dict[str, Any],
                     report: Any) -> None:
    """Render one side shard by shard; the writer thread writes shard k while the engine renders shard k+1.

    The side's banks live in the engine only while the side renders (an int16 engine copy lets the float32
    arrays go right after loading)."""
    from builder import banks

    frames = settings["frames_per_segment"]
    storage = settings["storage"]
    shard_rows = storage["shard_rows"]
    side_index = store.SIDES.index(side)
    augment = side == "train" or bool(settings["augment"]["test"])
    table = piece_table(side_pieces, release_samples(settings))
    engine = new_engine(settings["threads"])
    for path in bank_paths:
        load_bank_into(engine, banks.read_bank(path), settings["bank_precision"])
    table.load_into(engine)
    engine.set_noise(noise_table(settings["seed"]))
    bank_names = np.array(settings[f"{side}_banks"], dtype=object)   # as params name them (name or path)
    piece_ids = np.array(table.piece_ids, dtype=object)
    writers = storage["writers"]
    buffers = [ShardBuffers.allocate(min(shard_rows, n_rows), storage["fft_dtype"]) for _ in range(writers + 1)]
    pending: deque[tuple[int, Future]] = deque()   # (rows done when it finishes, write of one shard)
    started = time.perf_counter()
    for shard, first_row in enumerate(range(0, n_rows, shard_rows)):
        count = min(shard_rows, n_rows - first_row)
        rng = np.random.default_rng([settings["seed"], side_index, shard])
        plan = plan_segments(table, len(bank_paths), count // frames, rng, settings, augment)
        # this buffer's previous shard (writers + 1 shards ago) has been written: at most `writers` are pending
        block = buffers[shard % (writers + 1)].rows(count)
        render_shard(engine, plan, block, settings)   # overlaps the writes of the previous shards
        store.add_statistics(statistics, block.key_energy, block.key_active, block.key_onset)
        while len(pending) >= writers:
            done, write = pending.popleft()
            write.result()
            report(done, done / (time.perf_counter() - started))
        segment_values = {"piece_id": piece_ids[plan.piece], "bank": bank_names[plan.bank],
                          "start_sample": plan.start_sample}
        pending.append((first_row + count,
                        writer.submit(_write_shard, group, first_row, block, first_row // frames, segment_values)))
    while pending:
        done, write = pending.popleft()
        write.result()
        report(done, done / (time.perf_counter() - started))


def _write_shard(group: Any, first_row: int, block: ShardBuffers, first_segment: int,
                 segment_values: dict[str, np.ndarray]) -> None:
    """One writer, one whole shard: one assignment per array over the shard's rows."""
    rows = slice(first_row, first_row + len(block.key_energy))
    group["fft_magnitude"][rows] = block.fft_magnitude
    group["key_energy"][rows] = block.key_energy
    group["key_active"][rows] = block.key_active
    group["key_onset"][rows] = block.key_onset
    segments = slice(first_segment, first_segment + len(segment_values["start_sample"]))
    for name, values in segment_values.items():
        group[name][segments] = values


def _hash_files(paths: list[Path], hashes: dict[Path, str], cache_path: Path) -> None:
    """sha256 of each file, remembered in ``cache_path`` by (path, size, mtime): banks are hundreds of MB and
    hashing them again on every run costs seconds (DVC keeps the same kind of cache)."""
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    try:
        _hash_into(paths, hashes, cache)
    except OSError as error:  # reported by the caller, which finds the hash missing
        hashes[Path("error")] = str(error)
        return
    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache_path, suffix=".json") as temporary:
            temporary.write_text(json.dumps(cache, indent=1, sort_keys=True))
    except OSError:
        pass  # a read-only data folder only loses the cache


def _hash_into(paths: list[Path], hashes: dict[Path, str], cache: dict[str, Any]) -> None:
    for path in paths:
        status = path.stat()
        key = str(path.resolve())
        stamp = [status.st_size, status.st_mtime_ns]
        if cache.get(key, {}).get("stamp") == stamp:
            hashes[path] = cache[key]["sha256"]
            continue
        digest = hashlib.sha256()
        with open(path, "rb") as file:
            while chunk := file.read(HASH_BLOCK_BYTES):
                digest.update(chunk)
        hashes[path] = digest.hexdigest()
        cache[key] = {"stamp": stamp, "sha256": hashes[path]}


def versions() -> dict[str, str]:
    """Versions that shape the data: ours, the engine's, and the libraries that write it."""
    import pianoscribe_native

    from builder.versions import library_versions

    return {"engine": str(pianoscribe_native.__version__),
            **library_versions("pianoscribe", "numpy", "zarr", "numcodecs")}


def _print_summary(summary: SynthSummary, out: Path, console: Any) -> None:
    total = sum(summary.rows.values())
    console.print(f"wrote {out}: {total:,} examples (train {summary.rows['train']:,}, test {summary.rows['test']:,})")
    console.print(f"  {summary.seconds:.1f} s, {summary.examples_per_second:,.0f} examples/s (whole command)")
    console.print(f"  {summary.disk_bytes / 1e6:,.1f} MB on disk, {summary.raw_bytes / 1e6:,.1f} MB raw, "
                  f"compression {summary.raw_bytes / max(summary.disk_bytes, 1):.2f}x")
    console.print("  key coverage (keys active in at least one example): " +
                  ", ".join(f"{side} {count}/88" for side, count in summary.keys_covered.items()))
