"""``builder synth``: render the planned segments shard by shard with the native engine and store them.

A segment is ``frames_per_segment`` consecutive 1024-sample buffers (hop 1024) from one random position of one
piece through one bank, with one draw of augmentation. Planning is vectorized numpy, seeded per shard
(``seed``, side, shard index), so a shard's content never depends on threads or on other shards. The engine
(``pianoscribe_native``) mixes, labels and FFTs a whole shard into preallocated arrays with the GIL released,
while writer threads compress and write the previous shards: each shard is written whole by one writer
(zarr loses data when writers share a shard), and at most ``storage.writers + 1`` shards are in memory,
whatever ``--n``.

The split is by piece and fixed: a piece's side is a pure function of its id and the seed
(``builder.dataset.plan.piece_side``). Test segments are rendered through ``test_banks`` (a piano the model
never hears), train segments through ``train_banks``.

Labels and augmentation: ``key_energy`` is measured on each key's own signal as it is mixed, so it includes
the segment's random gain and detune (the key's contribution as heard) but not the added noise (nobody's
key) nor the EQ tilt, which is applied to the spectrum. ``key_active``/``key_onset`` come from the notes.
The test side is rendered without augmentation unless ``augment.test`` is true: its scores then measure the
clean audio ``trainer evaluate`` renders.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from builder.corpus import read_corpus
from builder.dataset import store
from builder.dataset.loudness import attack_energy
from builder.dataset.plan import PieceTable, piece_side, piece_table, release_samples, split_rows
from builder.dataset.provenance import HASH_CACHE_NAME, hash_files, versions
from builder.dataset.resume import (
    ShardKey,
    exclusive_writer,
    fingerprint,
    open_work_store,
    partial_path,
    seal,
    work_location,
)
from builder.dataset.shards import (
    ShardBuffers,
    ShardSpan,
    plan_shard,
    render_shard,
    segment_values,
    shard_spans,
    side_engine,
    write_shard,
)
from builder.dataset.verify import CHECKED_ARRAYS
from builder.engine import native
from pianoscribe.atomic import SPACE_ERRNOS, check_replaceable
from pianoscribe.constants import BUFFER_SIZE, SAMPLE_RATE, WINDOWS
from pianoscribe.defaults import defaults
from pianoscribe.errors import UserError
from pianoscribe.params import check_known_keys
from pianoscribe.storage import StoreLocation, store_location

__all__ = ["ShardBuffers", "render_shard"]  # re-exported: benchmarks and tests drive the engine through synth

Progress = Callable[..., None]  # progress(side, rows done, total=rows of the side, rate=rows per second)
BANK_PRECISIONS = ("int16", "float32")
# how a run is carried out, not what it writes: left out of the store's recorded params and of the resume
# fingerprint, so the store has the same bytes whatever the threads or the Dask cluster
EXECUTION_SETTINGS = ("threads", "dask")


def check_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Validate the ``synth`` section (unknown keys included); returns it. ``UserError`` names the parameter."""
    check_known_keys(settings, defaults("synth"), "synth")
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
    long_fft_bins = settings["long_fft_bins"]
    if not isinstance(long_fft_bins, int) or isinstance(long_fft_bins, bool) or not 0 <= long_fft_bins <= 2048:
        raise UserError(f"synth.long_fft_bins: expected 0 (none) or a number of bins up to 2048, got {long_fft_bins!r}")
    if settings["window"] not in WINDOWS:
        raise UserError(f"synth.window: expected one of {', '.join(WINDOWS)}, got {settings['window']!r}")
    if settings["bank_precision"] not in BANK_PRECISIONS:
        raise UserError(
            f"synth.bank_precision: expected one of {', '.join(BANK_PRECISIONS)}, got {settings['bank_precision']!r}"
        )
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
    check_dask_address(settings["dask"]["address"])
    return settings


def check_dask_address(address: Any) -> None:
    """``synth.dask.address``: empty (no Dask), ``local:N`` (N >= 1 worker processes) or a scheduler address."""
    if address in (None, ""):
        return
    if not isinstance(address, str):
        raise UserError(f"synth.dask.address: expected local:N or a scheduler address, got {address!r}")
    if address.startswith("local:"):
        count = address.removeprefix("local:")
        if not count.isdigit() or int(count) < 1:
            raise UserError(f"synth.dask.address: {address!r}: expected local:N with N >= 1 worker processes")


def recorded_params(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings a store records: every one but ``EXECUTION_SETTINGS``."""
    return {key: value for key, value in settings.items() if key not in EXECUTION_SETTINGS}


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


def bank_names(settings: dict[str, Any]) -> list[str]:
    """Every bank the settings name (train then test, each once), as ``params`` names them."""
    return list(dict.fromkeys(settings["train_banks"] + settings["test_banks"]))


def synthesize(
    settings: dict[str, Any],
    out: StoreLocation | Path | str,
    bank_paths: dict[str, Path],
    corpus_paths: dict[str, Path],
    cache_dir: Path | str,
    progress: Progress | None = None,
    say: Callable[[str], None] | None = None,
) -> SynthSummary:
    """Write the dataset store at ``out``; see the module docstring and ``builder.dataset.resume``.

    ``out`` is a local folder or a URL (``pianoscribe.storage.StoreLocation``, with its storage options).
    ``bank_paths`` / ``corpus_paths`` map the names in ``settings`` to existing files (the CLI finds or builds
    them first); ``cache_dir`` keeps the input hashes; ``progress(side, rows done, total=rows of the side,
    rate=rows per second)`` is called as shards are written; ``say`` gets one-line notes (resuming, starting over).
    An existing ``out`` is replaced only if it is a dataset this project wrote. With ``synth.dask.address`` the
    shards are tasks of a Dask cluster (``builder.dataset.distributed``); the store is the same, byte for byte.
    """
    started = time.perf_counter()
    settings = check_settings(settings)
    seed, frames = settings["seed"], settings["frames_per_segment"]
    progress = progress or (lambda side, done, total, rate: None)
    say = say or (lambda message: None)
    out = store_location(out)
    inputs = [*corpus_paths.values(), *bank_paths.values()]
    for kind, paths in (("corpus", corpus_paths), ("bank", bank_paths)):
        missing = [path for path in paths.values() if not Path(path).is_file()]
        if missing:
            raise UserError(f"{missing[0]}: no such {kind} file")
    with (
        _space_errors_named(out),
        exclusive_writer(out, Path(cache_dir)),
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="input-hasher") as hasher,
    ):
        _check_replaceable(out)
        hashes = hasher.submit(hash_files, inputs, Path(cache_dir) / HASH_CACHE_NAME)
        pieces = _pieces_by_side(settings, corpus_paths)
        rows = split_rows(settings["n"], frames, float(settings["test_fraction"]))
        for side in store.SIDES:
            if rows[side] and not pieces[side]:
                raise UserError(
                    f"synth.corpora: no piece with notes falls on the {side} side "
                    f"(test_fraction {settings['test_fraction']}, seed {seed}); add pieces or change them"
                )
        storage = settings["storage"]
        root, records = open_work_store(
            out,
            fingerprint(recorded_params(settings), inputs, rows),
            lambda location: store.create_store(location, rows, frames, storage, settings["long_fft_bins"]),
            say,
        )
        tables = {side: piece_table(pieces[side], release_samples(settings)) for side in store.SIDES if rows[side]}
        side_banks = {side: [bank_paths[name] for name in settings[f"{side}_banks"]] for side in tables}
        missing_spans = {
            side: [span for span in shard_spans(side, rows[side], storage["shard_rows"]) if span.key not in records]
            for side in tables
        }
        reports: dict[str, Callable[..., None]] = {side: partial(progress, side, total=rows[side]) for side in tables}
        if settings["dask"]["address"]:
            from builder.dataset import distributed  # only here: without --dask nothing of Dask is imported

            distributed.render_on_dask(
                settings, work_location(out), tables, side_banks, rows, missing_spans, records, reports, say
            )
        else:
            with ThreadPoolExecutor(max_workers=storage["writers"], thread_name_prefix="zarr-writer") as writer:
                for side, table in tables.items():
                    _synthesize_side(
                        settings,
                        root,
                        table,
                        side_banks[side],
                        rows[side],
                        missing_spans[side],
                        writer,
                        records,
                        reports[side],
                    )
        input_hashes = hashes.result()
        statistics = {side: _side_statistics(records, side) for side in store.SIDES}
        attrs = {
            "params": recorded_params(settings),
            "banks": {name: input_hashes[path] for name, path in bank_paths.items()},
            "corpora": {name: input_hashes[path] for name, path in corpus_paths.items()},
            "split": {side: sorted(piece_id for piece_id, _ in pieces[side]) for side in store.SIDES},
            "versions": versions(str(native().__version__)),
            "frames_per_segment": frames,
            "sample_rate": SAMPLE_RATE,
            "buffer_size": BUFFER_SIZE,
            "rows": rows,
            "statistics": {side: store.statistics_attrs(statistics[side]) for side in store.SIDES},
            "shards": {side: _shard_attrs(records, side) for side in store.SIDES},
        }
        if "train" in side_banks:  # how loud each key and velocity is in what the model learns from
            attrs["attack_energy"] = attack_energy(side_banks["train"], settings)
        raw = store.raw_bytes(root)
        seal(root, out, attrs)
    return SynthSummary(
        rows=rows,
        seconds=time.perf_counter() - started,
        disk_bytes=store.disk_bytes(out),
        raw_bytes=raw,
        keys_covered={side: int((statistics[side]["active_per_key"] > 0).sum()) for side in store.SIDES},
    )


def _check_replaceable(out: StoreLocation) -> None:
    """Refuse to replace anything at ``out`` that is not a dataset this project wrote."""
    if not out.is_remote:
        check_replaceable(out.path, store.is_our_store, "a dataset written by builder synth")
    elif out.exists() and not store.is_our_store(out):
        raise UserError(
            f"{out}: holds objects that are not a dataset builder synth wrote; remove them or choose another --out"
        )


@contextlib.contextmanager
def _space_errors_named(out: StoreLocation) -> Iterator[None]:
    """A full disk (raised deep in a writer thread) becomes one line naming the output and what is kept."""
    try:
        yield
    except OSError as error:
        if error.errno not in SPACE_ERRNOS:
            raise
        where = out if out.is_remote else partial_path(out.path)
        raise UserError(
            f"{out}: {error.strerror} while writing {where}; the shards written so far are kept: "
            "free some space and run the same command again to resume"
        ) from error


def _pieces_by_side(settings: dict[str, Any], corpus_paths: dict[str, Path]) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Every piece with notes, on the side of the split its id falls on."""
    pieces: dict[str, list[tuple[str, np.ndarray]]] = {side: [] for side in store.SIDES}
    for name in settings["corpora"]:
        for piece in read_corpus(corpus_paths[name]).pieces:
            if len(piece.notes):
                side = piece_side(piece.piece_id, settings["seed"], float(settings["test_fraction"]))
                pieces[side].append((piece.piece_id, piece.notes))
    return pieces


def _synthesize_side(
    settings: dict[str, Any],
    root: zarr.Group,
    table: PieceTable,
    bank_paths: list[Path],
    n_rows: int,
    spans: list[ShardSpan],
    writer: ThreadPoolExecutor,
    records: dict[ShardKey, dict[str, Any]],
    report: Any,
) -> None:
    """Render one side's missing shards (``spans``) in this process; the writer threads write shard k while the
    engine renders shard k+1.

    A new shard's record is added when its writer is done. The side's banks live in the engine only while the
    side renders (an int16 engine copy lets the float32 arrays go right after loading)."""
    frames = settings["frames_per_segment"]
    storage = settings["storage"]
    started = time.perf_counter()
    done = n_rows - sum(span.rows for span in spans)
    report(done, rate=0.0)
    if not spans:
        return
    side = spans[0].side
    engine, n_banks = side_engine(settings, bank_paths, table, settings["threads"])
    writers = storage["writers"]
    buffers = [
        ShardBuffers.allocate(min(storage["shard_rows"], n_rows), storage["fft_dtype"], settings["long_fft_bins"])
        for _ in range(writers + 1)
    ]
    pending: deque[tuple[int, Future]] = deque()  # (rows of the shard, its write)

    def write(span: ShardSpan, block: ShardBuffers, segments: dict[str, np.ndarray]) -> None:
        records[span.key] = write_shard(root, span, block, segments, frames)

    for position, span in enumerate(spans):
        plan = plan_shard(table, n_banks, span, settings)
        # this buffer's previous shard (writers + 1 shards ago) has been written: at most `writers` are pending
        block = buffers[position % (writers + 1)].rows(span.rows)
        render_shard(engine, plan, block, settings)  # overlaps the writes of the previous shards
        while len(pending) >= writers:
            written, shard_write = pending.popleft()
            shard_write.result()
            done += written
            report(done, rate=done / (time.perf_counter() - started))
        segments = segment_values(plan, table.piece_ids, settings[f"{side}_banks"])
        pending.append((span.rows, writer.submit(write, span, block, segments)))
    while pending:
        written, shard_write = pending.popleft()
        shard_write.result()
        done += written
        report(done, rate=done / (time.perf_counter() - started))


def _side_statistics(records: dict[ShardKey, dict[str, Any]], side: str) -> dict[str, Any]:
    """The side's label statistics: the sum of its shards' (integer counts: any order gives the same)."""
    statistics = store.empty_statistics()
    for (record_side, _), record in sorted(records.items()):
        if record_side == side:
            for name, value in record["statistics"].items():
                statistics[name] = statistics[name] + (np.asarray(value) if isinstance(value, list) else value)
    return statistics


def _shard_attrs(records: dict[ShardKey, dict[str, Any]], side: str) -> list[dict[str, Any]]:
    """What the store records of each shard of a side, in order: its rows and checksums (``builder verify``)."""
    return [
        {
            "rows": record["rows"],
            "sha256": {name: record["sha256"][name] for name in CHECKED_ARRAYS if name in record["sha256"]},
        }
        for (record_side, _), record in sorted(records.items())
        if record_side == side
    ]


def summary_lines(summary: SynthSummary, out: StoreLocation | Path | str) -> list[str]:
    """What ``builder synth`` prints at the end."""
    total = sum(summary.rows.values())
    return [
        f"wrote {out}: {total:,} examples (train {summary.rows['train']:,}, test {summary.rows['test']:,})",
        f"  {summary.seconds:.1f} s, {summary.examples_per_second:,.0f} examples/s (whole command)",
        f"  {summary.disk_bytes / 1e6:,.1f} MB on disk, {summary.raw_bytes / 1e6:,.1f} MB raw, "
        f"compression {summary.raw_bytes / max(summary.disk_bytes, 1):.2f}x",
        "  key coverage (keys active in at least one example): "
        + ", ".join(f"{side} {count}/88" for side, count in summary.keys_covered.items()),
    ]
