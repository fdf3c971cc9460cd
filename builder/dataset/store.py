"""The dataset layout, written down in one place: arrays, chunks/shards/codecs, attributes, opening with checks.

``builder synth`` creates the store with :func:`create_store`, fills it shard by shard and seals it with
:func:`finish_store` (``complete: true`` last); everybody else opens it with :func:`open_store`, which refuses a
missing, unsealed or misshapen store with a one-line :class:`UserError`. ``builder inspect`` is
``builder.dataset.inspect``.

Layout (Zarr v3)::

    /                      attrs: format_version, params, banks, corpora, split, versions, frames_per_segment,
                                  sample_rate, buffer_size, rows, statistics, shards (rows and sha256 of each
                                  shard of each side: builder verify), attack_energy (how loud each key x
                                  velocity is through the train banks: builder.dataset.loudness),
                                  complete (written last)
    /train, /test          one group per side of the split by piece
        fft_magnitude      [rows, 512]  float16|float32   |rfft(window * buffer)| bins 0..511
        fft_long_magnitude [rows, B]    float16|float32   optional (synth.long_fft_bins = B > 0): the 4096-sample
                                                         Hann window over buffers i-3 .. i, bins 0..B-1 of 10.8 Hz
        key_energy         [rows, 88]   float32           sum of squares of each key's own contribution
        key_active         [rows, 88]   uint8             a note of the key sounds at the buffer centre
        key_onset          [rows, 88]   uint8             a note of the key starts inside the buffer
        piece_id           [segments]   string            rows [i*F, (i+1)*F) come from one piece ...
        bank               [segments]   string            ... through one bank ...
        start_sample       [segments]   int64             ... starting at this sample of the piece

Per-row arrays are chunked along rows (``storage.chunk_rows``) and sharded (``storage.shard_rows``, a whole
number of chunks); per-segment arrays have one chunk per shard. Measurements behind the defaults:
docs/dataset.md. Fill values are values the data never holds (NaN, 255 for 0/1 labels, -1 for positions):
zarr reads a missing shard as its fill value and skips writing one that holds only it, so with these fills
every shard is a file, a missing file is damage (``open_store`` refuses it) and never silently zeros.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, cast

import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec
from zarr.core.array_spec import ArrayConfigParams
from zarr.core.common import AccessModeLiteral
from zarr.core.sync import sync

from pianoscribe.constants import N_BINS, N_KEYS
from pianoscribe.errors import UserError
from pianoscribe.storage import StoreLocation, store_location

FORMAT_VERSION = 2  # 2: fill values the data never holds, per-shard records
SIDES = ("train", "test")
SLICE_WIDTHS = {"fft_magnitude": N_BINS, "key_energy": N_KEYS, "key_active": N_KEYS, "key_onset": N_KEYS}
LONG_FFT = "fft_long_magnitude"  # the optional per-row array (its width is synth.long_fft_bins)
FFT_ARRAYS = ("fft_magnitude", LONG_FFT)  # stored as synth.storage.fft_dtype, compressed with fft_codec
LABEL_DTYPES: dict[str, np.dtype] = {
    "key_energy": np.dtype("float32"),
    "key_active": np.dtype("uint8"),
    "key_onset": np.dtype("uint8"),
}
SEGMENT_ARRAYS = ("piece_id", "bank", "start_sample")
FFT_DTYPES = ("float16", "float32")
CODECS = ("zstd", "blosc-zstd", "blosc-lz4", "none")
BLOSC_SHUFFLES = ("shuffle", "bitshuffle", "noshuffle")
FILL_VALUES: dict[str, Any] = {
    "fft_magnitude": float("nan"),
    LONG_FFT: float("nan"),
    "key_energy": float("nan"),
    "key_active": 255,
    "key_onset": 255,
    "start_sample": -1,
}
ENERGY_HISTOGRAM_EDGES = np.logspace(-8, 4, 49)  # label statistics: log-spaced bins of key_energy when active
# Every chunk is written: skipping all-zero chunks costs a full comparison pass per chunk (measured: ~40% of
# the write time of an uncompressed shard) to save space only where the codecs already make zeros tiny.
WRITE_CONFIG: ArrayConfigParams = {"write_empty_chunks": True}


def check_storage(storage: dict[str, Any], frames_per_segment: int) -> None:
    """Validate ``synth.storage`` (raises ``UserError`` naming the parameter)."""
    if storage["fft_dtype"] not in FFT_DTYPES:
        raise UserError(
            f"synth.storage.fft_dtype: expected one of {', '.join(FFT_DTYPES)}, got {storage['fft_dtype']!r}"
        )
    for name in ("codec", "fft_codec"):
        if storage[name] not in CODECS:
            raise UserError(f"synth.storage.{name}: expected one of {', '.join(CODECS)}, got {storage[name]!r}")
    if storage.get("shuffle", "shuffle") not in BLOSC_SHUFFLES:
        raise UserError(
            f"synth.storage.shuffle: expected one of {', '.join(BLOSC_SHUFFLES)}, got {storage['shuffle']!r}"
        )
    chunk_rows, shard_rows = storage["chunk_rows"], storage["shard_rows"]
    for name in ("chunk_rows", "shard_rows", "level", "fft_level", "writers"):
        value, least = storage[name], (0 if name.endswith("level") else 1)
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise UserError(
                f"synth.storage.{name}: expected a {'non-negative' if least == 0 else 'positive'} "
                f"integer, got {value!r}"
            )
    if shard_rows % chunk_rows:
        raise UserError(f"synth.storage.shard_rows: {shard_rows} is not a multiple of chunk_rows {chunk_rows}")
    if chunk_rows % frames_per_segment:
        raise UserError(
            f"synth.storage.chunk_rows: {chunk_rows} is not a multiple of frames_per_segment "
            f"{frames_per_segment} (a chunk must hold whole segments)"
        )


def compressors(storage: dict[str, Any], typesize: int, fft: bool = False) -> tuple:
    """The codec chain ``synth.storage`` names (``fft_codec`` for ``fft_magnitude``, ``codec`` for the rest),
    for an array of ``typesize``-byte elements."""
    codec, level = (
        (storage["fft_codec"], int(storage["fft_level"])) if fft else (storage["codec"], int(storage["level"]))
    )
    if codec == "zstd":
        return (ZstdCodec(level=level),)
    if codec.startswith("blosc-"):
        return (
            BloscCodec(
                cname=codec.removeprefix("blosc-"),
                clevel=level,
                shuffle=storage.get("shuffle", "shuffle"),
                typesize=typesize,
            ),
        )
    return ()


def slice_widths(long_fft_bins: int) -> dict[str, int]:
    """The per-row arrays of a store and their widths: the four of every store, then ``fft_long_magnitude``."""
    return {**SLICE_WIDTHS, **({LONG_FFT: long_fft_bins} if long_fft_bins else {})}


def stored_slice_widths(group: zarr.Group) -> dict[str, int]:
    """The per-row arrays one side of a store holds (``fft_long_magnitude`` only if it was written)."""
    return slice_widths(int(array(group, LONG_FFT).shape[1]) if LONG_FFT in group else 0)


def create_store(
    path: StoreLocation | Path | str,
    rows: dict[str, int],
    frames_per_segment: int,
    storage: dict[str, Any],
    long_fft_bins: int = 0,
) -> zarr.Group:
    """Create the empty store (replacing whatever was there): every array at its final shape, before any writer
    starts.

    ``rows`` maps each side to its number of FFT slices (a whole number of segments); ``long_fft_bins`` > 0 adds
    ``fft_long_magnitude``.
    """
    check_storage(storage, frames_per_segment)
    root = open_group(store_location(path), mode="w", zarr_format=3)
    chunk_rows, shard_rows = storage["chunk_rows"], storage["shard_rows"]
    for side in SIDES:
        group = root.create_group(side)
        n_rows = rows.get(side, 0)
        for name, width in slice_widths(long_fft_bins).items():
            dtype = np.dtype(storage["fft_dtype"]) if name in FFT_ARRAYS else LABEL_DTYPES[name]
            group.create_array(
                name,
                shape=(n_rows, width),
                dtype=dtype,
                chunks=(chunk_rows, width),
                shards=(shard_rows, width),
                compressors=compressors(storage, dtype.itemsize, fft=name in FFT_ARRAYS),
                fill_value=FILL_VALUES[name],
                config=WRITE_CONFIG,
            )
        segments = n_rows // frames_per_segment
        segment_chunk = shard_rows // frames_per_segment
        group.create_array("piece_id", shape=(segments,), dtype=str, chunks=(segment_chunk,))
        group.create_array("bank", shape=(segments,), dtype=str, chunks=(segment_chunk,))
        group.create_array(
            "start_sample",
            shape=(segments,),
            dtype=np.int64,
            chunks=(segment_chunk,),
            compressors=compressors(storage, 8),
            fill_value=FILL_VALUES["start_sample"],
            config=WRITE_CONFIG,
        )
    return root


def finish_store(root: zarr.Group, attrs: dict[str, Any]) -> None:
    """Write the root attributes, then ``complete: true`` as the very last write."""
    root.attrs.update({"format_version": FORMAT_VERSION, **attrs})
    root.attrs["complete"] = True


# what zarr raises for damaged or foreign metadata (JSON that does not parse or does not validate)
METADATA_ERRORS = (ValueError, KeyError, TypeError, AttributeError, IndexError, zarr.errors.BaseZarrError)


def open_group(location: StoreLocation, mode: AccessModeLiteral, **options: Any) -> zarr.Group:
    """``zarr.open_group`` on a local folder or, through zarr's ``FsspecStore``, a URL with its storage options."""
    return zarr.open_group(
        location.zarr_target(), mode=mode, storage_options=location.zarr_storage_options(), **options
    )


def open_store(path: StoreLocation | Path | str) -> zarr.Group:
    """Open a finished store read-only; ``UserError`` for a missing, unfinished, misshapen or damaged one.

    ``path`` is a local folder or a URL (``pianoscribe.storage``)."""
    path = store_location(path)
    if not path.exists():
        raise UserError(f"{path}: no dataset here; write one with `builder synth --out {path}`")
    try:
        root = open_group(path, mode="r")
    except (FileNotFoundError, *METADATA_ERRORS) as error:
        raise UserError(f"{path}: not a Zarr dataset ({type(error).__name__})") from error
    try:
        _check_layout(path, root)
    except METADATA_ERRORS as error:
        reason = " ".join(str(error).split())[:160]
        raise UserError(f"{path}: damaged dataset metadata ({type(error).__name__}: {reason})") from error
    return root


def _check_layout(path: StoreLocation, root: zarr.Group) -> None:
    """Sealed, this format, both sides with every array at a consistent shape, every shard file present."""
    attrs = attributes(root)
    if attrs.get("complete") is not True:
        raise UserError(
            f"{path}: incomplete dataset (no 'complete' attribute: `builder synth` did not finish); write it again"
        )
    if attrs.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"{path}: dataset format {attrs.get('format_version')}, this version reads "
            f"{FORMAT_VERSION}; write it again with `builder synth`"
        )
    frames_per_segment = int(attrs.get("frames_per_segment", 0))
    for side in SIDES:
        if side not in root:
            raise UserError(f"{path}: missing group '{side}'")
        group = side_group(root, side)
        n_rows: int | None = None
        if LONG_FFT in group and (len(array(group, LONG_FFT).shape) != 2 or not array(group, LONG_FFT).shape[1]):
            raise UserError(f"{path}/{side}/{LONG_FFT}: shape {array(group, LONG_FFT).shape}, expected (rows, bins)")
        for name, width in stored_slice_widths(group).items():
            if name not in group:
                raise UserError(f"{path}/{side}: missing array '{name}'")
            shape = array(group, name).shape
            if len(shape) != 2 or shape[1] != width or (n_rows is not None and shape[0] != n_rows):
                raise UserError(f"{path}/{side}/{name}: shape {shape}, expected ({n_rows or 'rows'}, {width})")
            n_rows = int(shape[0])
        assert n_rows is not None
        if frames_per_segment < 1 or n_rows % frames_per_segment:
            raise UserError(
                f"{path}/{side}: {n_rows} rows is not a whole number of {frames_per_segment}-frame segments"
            )
        for name in SEGMENT_ARRAYS:
            if name not in group or array(group, name).shape != (n_rows // frames_per_segment,):
                raise UserError(
                    f"{path}/{side}/{name}: missing or not one entry per segment ({n_rows // frames_per_segment})"
                )
        for name in (*stored_slice_widths(group), *SEGMENT_ARRAYS):
            _check_objects_present(path, side, name, array(group, name))


def _check_objects_present(path: StoreLocation, side: str, name: str, stored: zarr.Array) -> None:
    """A missing shard file must be an error: zarr would silently read it as the fill value (zeros)."""
    missing = missing_objects(stored)
    if missing:
        first, stop = object_rows(stored, missing[0])
        raise UserError(
            f"{path}/{side}/{name}: shard {missing[0]} of {object_count(stored)} is missing (rows {first}..{stop - 1})"
            f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}; the store is damaged: "
            "`builder verify` describes it, `builder synth` writes it again"
        )


def attributes(root: zarr.Group) -> dict[str, Any]:
    """The root attributes as plain Python values (zarr types them as JSON)."""
    return cast(dict[str, Any], root.attrs.asdict())


def side_group(root: zarr.Group, side: str) -> zarr.Group:
    """The group of one side of the split."""
    return cast(zarr.Group, root[side])


def array(group: zarr.Group, name: str) -> zarr.Array:
    """One array of a side's group."""
    return cast(zarr.Array, group[name])


def empty_statistics() -> dict[str, Any]:
    """Running label statistics of one side (filled shard by shard while synthesizing)."""
    return {
        "rows": 0,
        "silent_rows": 0,
        "active_per_key": np.zeros(N_KEYS, np.int64),
        "onset_per_key": np.zeros(N_KEYS, np.int64),
        "active_total": 0,
        "energy_histogram": np.zeros(len(ENERGY_HISTOGRAM_EDGES) - 1, np.int64),
    }


def add_statistics(
    statistics: dict[str, Any], key_energy: np.ndarray, key_active: np.ndarray, key_onset: np.ndarray
) -> None:
    """Add a block of rows to running statistics (per-key counts, polyphony, energy histogram when active)."""
    active_per_row = key_active.sum(axis=1, dtype=np.int64)
    statistics["rows"] += len(key_active)
    statistics["silent_rows"] += int((active_per_row == 0).sum())
    statistics["active_per_key"] += key_active.sum(axis=0, dtype=np.int64)
    statistics["onset_per_key"] += key_onset.sum(axis=0, dtype=np.int64)
    statistics["active_total"] += int(active_per_row.sum())
    statistics["energy_histogram"] += np.histogram(key_energy[key_active.astype(bool)], bins=ENERGY_HISTOGRAM_EDGES)[0]


def statistics_attrs(statistics: dict[str, Any]) -> dict[str, Any]:
    """Running statistics as plain JSON for the store's attributes."""
    return {name: (value.tolist() if isinstance(value, np.ndarray) else value) for name, value in statistics.items()}


def disk_bytes(path: StoreLocation | Path | str) -> int:
    """Bytes the store's files (or objects) take."""
    return store_location(path).stored_bytes()


def raw_bytes(root: zarr.Group) -> int:
    """Bytes of all arrays uncompressed (strings counted as their UTF-8 length)."""
    total = 0
    for side in SIDES:
        group = side_group(root, side)
        for name in stored_slice_widths(group):
            total += math.prod(array(group, name).shape) * array(group, name).dtype.itemsize
        total += array(group, "start_sample").shape[0] * 8
    return total


def object_count(stored: zarr.Array) -> int:
    """How many storage objects (shard files, or chunk files when unsharded) hold the array's rows."""
    rows_per_object = stored.metadata.chunk_grid.chunk_shape[0]  # type: ignore[attr-defined]
    return -(-stored.shape[0] // rows_per_object)


def object_rows(stored: zarr.Array, index: int) -> tuple[int, int]:
    """``(first row, end row)`` held by storage object ``index``."""
    rows_per_object = stored.metadata.chunk_grid.chunk_shape[0]  # type: ignore[attr-defined]
    return index * rows_per_object, min((index + 1) * rows_per_object, stored.shape[0])


def missing_objects(stored: zarr.Array) -> list[int]:
    """Indices of the storage objects of ``stored`` that do not exist (any zarr store: local, fsspec, memory).

    One listing of the array's objects, not one request per shard: on an object store a store of 100M rows
    has thousands of shards."""
    backend = stored.store_path.store
    prefix = f"{stored.path}/"

    async def listed() -> set[str]:
        return {key async for key in backend.list_prefix(prefix)}

    present = sync(listed())
    missing = []
    for index in range(object_count(stored)):
        coordinates = (index,) + (0,) * (stored.ndim - 1)
        if f"{prefix}{stored.metadata.encode_chunk_key(coordinates)}" not in present:
            missing.append(index)
    return missing


def is_our_store(path: StoreLocation | Path | str) -> bool:
    """Whether ``path`` is a dataset this project wrote (finished or not), so ``builder synth`` may replace it."""
    try:
        attrs = attributes(open_group(store_location(path), mode="r"))
    except Exception:  # anything zarr cannot open as a group is not ours
        return False
    return "partial" in attrs or ("format_version" in attrs and "params" in attrs)


def store_identity(root: zarr.Group) -> str:
    """A digest of the root attributes (params, inputs' hashes, split, statistics, versions): it changes when
    ``builder synth`` writes another dataset at the same path, so a reader can tell that the store under it changed."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(attributes(root), sort_keys=True, default=str).encode()).hexdigest()
