"""``builder synth --dask ADDRESS``: the store's shards as tasks of a Dask cluster (``local:N`` starts a
``LocalCluster`` of N worker processes; anything else is a scheduler's address).

The client (``synth.synthesize``) creates every array before, and seals the store after every task succeeded;
in between each task renders one shard and writes it whole into the store, then its record
(``shards.write_shard``), so a shard has one writer and the store the same bytes as a threaded run. What every
worker needs arrives once per worker process, not per task, in a worker plugin (``SynthInputs``): the settings,
each side's pieces, the banks (read from the same paths on a ``local:N`` cluster, their bytes shipped to a remote
one), the store's location; each worker builds a side's engine on its first shard of that side and keeps it.
A failed task is retried (``TASK_RETRIES``); the tasks of a worker that died go to the others (and to the
worker its nanny restarts), which registers the plugin again. This module imports Dask: only ``--dask`` loads it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import zarr
from distributed import Client, LocalCluster, WorkerPlugin, as_completed, get_worker

from builder.dataset import store
from builder.dataset.plan import PieceTable
from builder.dataset.resume import ShardKey
from builder.dataset.shards import (
    ShardBuffers,
    ShardSpan,
    plan_shard,
    render_shard,
    segment_values,
    side_engine,
    write_shard,
)
from pianoscribe.errors import UserError, one_line
from pianoscribe.storage import StoreLocation

PLUGIN_NAME = "pianoscribe-synth-inputs"
LOCAL_PREFIX = "local:"
TASK_RETRIES = 3  # a task that raised runs again this many times (a worker that died is Dask's allowed-failures)
# threads of a local worker: while one task writes (compresses) its shard, the next one renders (one render at a
# time per engine), as the threaded run overlaps its writer threads with the engine
LOCAL_THREADS_PER_WORKER = 2
CONNECT_TIMEOUT = "30s"


class SynthInputs(WorkerPlugin):
    """Everything a worker needs to render and write any shard: sent once to each worker (and to any worker that
    joins later, a restarted one included), kept for every task it runs."""

    name = PLUGIN_NAME
    idempotent = True  # registered once per run: a worker that already has it keeps its engines

    def __init__(
        self,
        settings: dict[str, Any],
        tables: dict[str, PieceTable],
        bank_paths: dict[str, list[Path]],
        location: StoreLocation,
        engine_threads: int,
        bank_bytes: dict[Path, bytes] | None,
    ) -> None:
        self.settings = settings
        self.tables = tables
        self.bank_paths = bank_paths
        self.location = location
        self.engine_threads = engine_threads
        self.bank_bytes = bank_bytes

    def setup(self, worker: Any) -> None:
        """Write shipped banks into the worker's folder; the engines are built on each side's first shard."""
        self.engines: dict[str, tuple[Any, int]] = {}
        self.engine_lock = threading.Lock()  # one render at a time per engine; writes overlap the next render
        self.root: zarr.Group | None = None
        self.threads = self.engine_threads or max(1, (os.cpu_count() or 1) // max(1, worker.state.nthreads))
        if self.bank_bytes is not None:
            folder = Path(worker.local_directory) / "pianoscribe-banks"
            folder.mkdir(parents=True, exist_ok=True)
            local = {}
            for index, (path, data) in enumerate(self.bank_bytes.items()):
                local[path] = folder / f"{index:02d}-{path.name}"
                local[path].write_bytes(data)
            self.bank_paths = {side: [local[path] for path in paths] for side, paths in self.bank_paths.items()}
            self.bank_bytes = None  # the worker's copy is on its disk now

    def render(self, span: ShardSpan) -> dict[str, Any]:
        """Render shard ``span``, write it whole with its record; return the record for the client."""
        frames = self.settings["frames_per_segment"]
        table = self.tables[span.side]
        with self.engine_lock:
            if span.side not in self.engines:
                self.engines[span.side] = side_engine(self.settings, self.bank_paths[span.side], table, self.threads)
            if self.root is None:
                self.root = store.open_group(self.location, mode="r+")
            engine, n_banks = self.engines[span.side]
            plan = plan_shard(table, n_banks, span, self.settings)
            block = ShardBuffers.allocate(
                span.rows, self.settings["storage"]["fft_dtype"], self.settings["long_fft_bins"]
            )
            render_shard(engine, plan, block, self.settings)
        segments = segment_values(plan, table.piece_ids, self.settings[f"{span.side}_banks"])
        return write_shard(self.root, span, block, segments, frames)


def render_shard_task(span: ShardSpan) -> dict[str, Any]:
    """The Dask task: one shard, by the worker's ``SynthInputs``."""
    inputs: SynthInputs = get_worker().plugins[PLUGIN_NAME]  # type: ignore[assignment]
    return inputs.render(span)


@contextlib.contextmanager
def connect(address: str) -> Iterator[tuple[Client, int | None]]:
    """A client of the cluster ``address`` names, and the local worker count (None for a remote scheduler).

    ``local:N`` starts N worker processes on this machine (each engine then gets its share of the cores), of
    ``LOCAL_THREADS_PER_WORKER`` threads each, and stops them at the end."""
    if address.startswith(LOCAL_PREFIX):
        workers = int(address.removeprefix(LOCAL_PREFIX))
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=LOCAL_THREADS_PER_WORKER,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.CRITICAL,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client, workers
        return
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except OSError as error:
        raise UserError(f"synth.dask.address: cannot reach the scheduler {address} ({one_line(error)})") from error
    with client:
        yield client, None


def render_on_dask(
    settings: dict[str, Any],
    location: StoreLocation,
    tables: dict[str, PieceTable],
    bank_paths: dict[str, list[Path]],
    rows: dict[str, int],
    spans: dict[str, list[ShardSpan]],
    records: dict[ShardKey, dict[str, Any]],
    reports: dict[str, Callable[..., None]],
    say: Callable[[str], None],
) -> None:
    """Render and write every shard of ``spans`` as Dask tasks into the created store at ``location``; add each
    finished shard's record to ``records`` and report each side's progress as ``report(rows done, rate=...)``.

    On a ``local:N`` cluster the workers read the banks from their paths; a remote cluster gets their bytes, and
    needs ``location`` to be a URL (or a path every worker sees at the same place)."""
    started = time.perf_counter()
    done = {side: rows[side] - sum(span.rows for span in side_spans) for side, side_spans in spans.items()}
    for side in spans:
        reports[side](done[side], rate=0.0)
    todo = [span for side_spans in spans.values() for span in side_spans]
    if not todo:
        return
    absolute = {side: [Path(path).resolve() for path in paths] for side, paths in bank_paths.items()}
    where = location if location.is_remote else StoreLocation(str(location.path.resolve()))
    with connect(str(settings["dask"]["address"])) as (client, local_workers):
        if local_workers is None:  # workers elsewhere: the banks travel with the plugin
            engine_threads = int(settings["threads"])
            shipped = {path: path.read_bytes() for paths in absolute.values() for path in paths}
        else:
            engine_threads = int(settings["threads"]) or max(1, (os.cpu_count() or 1) // local_workers)
            shipped = None
        say(f"dask: {_describe(client)}; {len(todo)} shards to render")
        client.register_plugin(SynthInputs(settings, tables, absolute, where, engine_threads, shipped))
        futures = [
            client.submit(
                render_shard_task, span, key=f"synth-shard-{span.side}-{span.index}", retries=TASK_RETRIES, pure=False
            )
            for span in todo
        ]
        span_of = {future.key: span for future, span in zip(futures, todo)}
        try:
            for future in as_completed(futures):
                span = span_of[future.key]
                records[span.key] = future.result()
                done[span.side] += span.rows
                reports[span.side](done[span.side], rate=done[span.side] / (time.perf_counter() - started))
        finally:
            client.cancel(futures)


def _describe(client: Client) -> str:
    """The cluster in a few words: workers, threads."""
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    threads = sum(int(worker.get("nthreads", 0)) for worker in workers.values())
    return f"{len(workers)} workers, {threads} threads at {client.scheduler.address}"
