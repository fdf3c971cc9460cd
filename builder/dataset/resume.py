"""Where ``builder synth`` writes while it works, and what survives when it is killed.

A run writes into ``.NAME.partial`` beside its output (``data/.dataset.zarr.partial``) and renames it over the
output only when it is sealed (``complete: true`` last). After each shard is written whole, a small record of
it (rows, checksums, label statistics) is stored under ``_progress/`` in that store. Killed at any moment
(SIGKILL included), the next run with the same plan (settings and inputs: the ``fingerprint``) reopens the
partial store, reads back every recorded shard and keeps the ones whose checksums still match; every other
shard is rendered again. Each shard's content is a pure function of (settings, seed, side, shard index), so the
resumed store is byte-identical to an uninterrupted run's. A partial store with another plan is deleted.

One writer per output: an exclusive lock on ``.NAME.lock`` beside it makes a second ``builder synth`` to the
same ``--out`` stop with a line naming the process that holds it.

A store at a URL (an object store: no rename, no file lock) is written in place instead: the ``partial``
attribute marks it unfinished from its creation, readers refuse it until ``complete: true`` (written last),
and a killed run resumes from the records the same way. The old store at that URL is gone from the start of
the new run. The lock is a file in the local cache folder named after the URL: it stops a second run on the
same machine only; runs on other machines are not detected (docs/scaling.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

from builder.dataset import store
from builder.dataset.verify import shard_checksums
from pianoscribe.atomic import remove, temporary_beside
from pianoscribe.errors import UserError
from pianoscribe.storage import StoreLocation, store_location

PROGRESS_PREFIX = "_progress/"
PARTIAL_ATTR = "partial"
ZARR_TEMPORARY = re.compile(r".+\.[0-9a-f]{32}\.partial")

ShardKey = tuple[str, int]  # (side, shard index)


@contextlib.contextmanager
def exclusive_writer(out: StoreLocation | Path, lock_folder: Path | None = None) -> Iterator[None]:
    """Hold the lock of ``out`` for a whole run; ``UserError`` naming the holder if another run has it.

    A URL's lock file is in ``lock_folder`` (the local cache), named after the URL."""
    out = store_location(out)
    if out.is_remote:
        if lock_folder is None:
            raise ValueError("a store at a URL needs a lock_folder")
        lock_path = lock_folder / "locks" / f"{hashlib.sha256(out.text.encode()).hexdigest()[:24]}.lock"
    else:
        lock_path = out.path.parent / f".{out.path.name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock_file.seek(0)
            holder = lock_file.read().strip() or "another process"
            raise UserError(f"{out}: {holder} is writing it; wait for it to finish or choose another --out") from None
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(f"builder synth (process {os.getpid()}, started {time.strftime('%H:%M:%S')})")
        lock_file.flush()
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def fingerprint(settings: dict[str, Any], inputs: list[Path], rows: dict[str, int]) -> str:
    """What a partial store is valid for: the settings (threads aside: they change no byte), the inputs as
    (path, size, modification time), the row counts."""
    plan = {
        "settings": {key: value for key, value in settings.items() if key != "threads"},
        "inputs": [[str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns] for path in inputs],
        "rows": rows,
    }
    return hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()


def partial_path(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def work_location(out: StoreLocation | Path) -> StoreLocation:
    """Where a run writes: ``.NAME.partial`` beside a local output, a URL itself (no rename on object stores)."""
    out = store_location(out)
    return out if out.is_remote else StoreLocation(str(partial_path(out.path)))


def open_work_store(
    out: StoreLocation | Path,
    plan: str,
    create: Callable[[StoreLocation], zarr.Group],
    say: Callable[[str], None],
) -> tuple[zarr.Group, dict[ShardKey, dict[str, Any]]]:
    """The partial store to write into and the records of the shards it already holds (read back and checked).

    ``create(location)`` makes a fresh store (every array at its final shape, whatever was there removed) when
    there is none to resume.
    """
    out = store_location(out)
    if not out.is_remote:
        _remove_leftovers(out.path)
    work = work_location(out)
    if work.exists():
        root = _reopen(work, plan)
        if root is not None:
            if not work.is_remote:
                _remove_interrupted_writes(work.path)
            records = _kept_records(root, say)
            say(f"resuming {work}: {len(records)} shards already written and verified")
            return root, records
        if work.is_remote:
            say(f"{work}: replacing the dataset there (written in place: object stores have no rename)")
        else:
            say(f"{work}: left by a run with other settings or inputs; starting over")
        work.remove()
    root = create(work)
    root.attrs[PARTIAL_ATTR] = {"fingerprint": plan, "writer": "builder synth"}
    return root, {}


def record_shard(root: zarr.Group, key: ShardKey, record: dict[str, Any]) -> None:
    """Persist the record of a shard that was written whole (called by its writer, after the write)."""
    side, index = key
    data = json.dumps({"side": side, "index": index, **record}, sort_keys=True).encode()
    buffer = default_buffer_prototype().buffer.from_bytes(data)
    sync(root.store_path.store.set(f"{PROGRESS_PREFIX}{side}-{index:05d}.json", buffer))


def seal(root: zarr.Group, out: StoreLocation | Path, attrs: dict[str, Any]) -> None:
    """Turn the finished partial store into ``out``: final attributes, ``complete`` last, then the rename (a
    URL is written in place: nothing to rename)."""
    out = store_location(out)
    del root.attrs[PARTIAL_ATTR]
    sync(root.store_path.store.delete_dir(PROGRESS_PREFIX.rstrip("/")))
    store.finish_store(root, attrs)
    if out.is_remote:
        return
    path, out = partial_path(out.path), out.path
    _remove_interrupted_writes(path)  # a writer killed mid-write (a lost Dask worker) leaves zarr's temporaries
    if out.is_dir() and not out.is_symlink():
        aside = temporary_beside(out, ".old")
        os.replace(out, aside)
        os.replace(path, out)
        remove(aside)
    else:
        os.replace(path, out)


def _reopen(path: StoreLocation, plan: str) -> zarr.Group | None:
    """The partial store at ``path`` if it was started with the same plan, else None."""
    try:
        root = store.open_group(path, mode="r+")
        partial = store.attributes(root).get(PARTIAL_ATTR) or {}
    except Exception:  # unreadable: nothing to resume
        return None
    return root if partial.get("fingerprint") == plan else None


def _kept_records(root: zarr.Group, say: Callable[[str], None]) -> dict[ShardKey, dict[str, Any]]:
    """Records of written shards whose data still has the recorded checksums (verified, not trusted)."""
    kept = {}
    for record in _records(root):
        key = (record["side"], int(record["index"]))
        group = store.side_group(root, key[0])
        try:
            values = _read_back(group, record)
        except Exception as error:  # a shard damaged by the kill is rendered again
            say(f"shard {key[0]} {key[1]}: cannot be read back ({type(error).__name__}); rendering it again")
            continue
        if shard_checksums(values) == record["sha256"]:
            kept[key] = record
        else:
            say(f"shard {key[0]} {key[1]}: differs from its record; rendering it again")
    return kept


def _records(root: zarr.Group) -> list[dict[str, Any]]:
    prototype = default_buffer_prototype()
    stored = root.store_path.store

    async def keys() -> list[str]:
        return [key async for key in stored.list_prefix(PROGRESS_PREFIX)]

    records = []
    for key in sorted(sync(keys())):
        data = sync(stored.get(key, prototype))
        if data is not None:
            with contextlib.suppress(ValueError):
                records.append(json.loads(data.to_bytes()))
    return records


def _read_back(group: zarr.Group, record: dict[str, Any]) -> dict[str, Any]:
    first, stop = record["rows"]
    first_segment, stop_segment = record["segments"]
    values = {name: store.array(group, name)[first:stop] for name in store.stored_slice_widths(group)}
    values.update({name: store.array(group, name)[first_segment:stop_segment] for name in store.SEGMENT_ARRAYS})
    return values


def _remove_interrupted_writes(path: Path) -> None:
    """zarr's local store writes each object to ``NAME.<32 hex>.partial`` and renames it: a kill leaves those."""
    for leftover in path.rglob("*.partial"):
        if ZARR_TEMPORARY.fullmatch(leftover.name) and leftover.is_file():
            leftover.unlink()


def _remove_leftovers(out: Path) -> None:
    """Temporaries of runs killed by older versions (random names) and of an interrupted final rename."""
    for leftover in out.parent.glob(f".{out.name}.*.tmp"):
        if leftover.is_dir() and store.is_our_store(leftover):
            remove(leftover)
