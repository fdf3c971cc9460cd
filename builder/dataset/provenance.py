"""What a store was made from: the sha256 of every bank and corpus file, and the library versions."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pianoscribe.atomic import atomic_path
from pianoscribe.versions import library_versions

HASH_BLOCK_BYTES = 1 << 24
HASH_CACHE_NAME = "sha256.json"  # in data/cache: file hashes by (path, size, mtime)


def hash_files(paths: list[Path], cache_path: Path) -> dict[Path, str]:
    """sha256 of each file, remembered in ``cache_path`` by (path, size, mtime): banks are hundreds of MB and
    hashing them again on every run costs seconds (DVC keeps the same kind of cache). An unreadable input
    raises its ``OSError``; a cache that cannot be read or written only costs the time."""
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    hashes = {}
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
    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache_path, suffix=".json") as temporary:
            temporary.write_text(json.dumps(cache, indent=1, sort_keys=True))
    except OSError:
        pass  # a read-only data folder only loses the cache
    return hashes


def versions(engine_version: str) -> dict[str, Any]:
    """Versions that shape the data: the engine's and the libraries that write it."""
    return {"engine": engine_version, **library_versions("pianoscribe", "numpy", "zarr", "numcodecs")}
