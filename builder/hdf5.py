"""Opening this project's HDF5 files (banks, corpora) for reading: every way a file can be bad is one UserError.

libhdf5 meets a damaged file in three ways. Most damage raises (h5py turns it into ``OSError``,
``RuntimeError``, ``KeyError``, ``ValueError`` or ``TypeError``: :data:`DAMAGED`), and readers name the file
and the damage with :func:`damaged`. Two kinds of damage never return, so they are checked before libhdf5
sees them: a global heap collection (where variable-length strings live) whose object walk cannot advance
makes libhdf5 1.14 loop forever (HDFGroup/hdf5#1707, h5py/h5py#2088), and reading a variable-length value
whose type was damaged (a string turned into a sequence) can crash it; :func:`read_attribute` and
:func:`read_array` check the type before they read.
"""

from __future__ import annotations

import mmap
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pianoscribe.errors import UserError

# what h5py raises for a damaged structure (a bad signature, an address past the end, a broken link, a type)
DAMAGED = (OSError, RuntimeError, KeyError, ValueError, TypeError)

_SUPERBLOCK_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_HEAP_SIGNATURE = b"GCOL\x01\x00\x00\x00"  # a global heap collection, version 1, reserved bytes zero
_KINDS = {"integer": "iu", "float": "f"}  # numpy dtype kinds


def open_for_reading(path: Path, kind: str) -> h5py.File:
    """The HDF5 file at ``path``, opened and safe to walk; else a ``UserError`` naming it.

    The errors: "no such {kind} file", "not a {kind} (not an HDF5 file)", "damaged {kind} file (why)".
    """
    if not path.is_file():
        raise UserError(f"{path}: no such {kind} file")
    try:
        file = h5py.File(path, "r")
    except DAMAGED as error:
        if not _has_hdf5_signature(path):
            raise UserError(f"{path}: not a {kind} (not an HDF5 file)") from error
        raise damaged(path, kind, error) from error
    looping_heap = _looping_heap_offset(path)
    if looping_heap is not None:
        file.close()
        raise UserError(f"{path}: damaged {kind} file (the global heap at byte {looping_heap} is corrupt)")
    return file


def holds(path: Path, kind: str, datasets: tuple[str, ...]) -> bool:
    """Whether ``path`` is one of this project's HDF5 files of ``kind``: readable, with a ``format_version``
    and ``datasets`` (what ``atomic_path`` may replace; a damaged or foreign file is not)."""
    try:
        with open_for_reading(path, kind) as file:
            return "format_version" in file.attrs and all(name in file for name in datasets)
    except (UserError, *DAMAGED):
        return False


def damaged(path: Path, kind: str, error: BaseException) -> UserError:
    """The one-line error for a file libhdf5 could open but not read: its name and libhdf5's reason."""
    reason = error.args[0] if isinstance(error, KeyError) and error.args else error
    return UserError(f"{path}: damaged {kind} file ({' '.join(str(reason).split())})")


def read_attribute(group: h5py.Group, name: str, kind: str) -> Any:
    """The scalar attribute ``name`` when it is of ``kind`` ("string" or "integer"); ``ValueError`` when not.

    The type is checked before the value is read: converting a damaged variable-length type can crash
    libhdf5. ``KeyError`` when the attribute is missing.
    """
    attribute = group.attrs.get_id(name)
    is_string = h5py.check_string_dtype(attribute.dtype) is not None
    is_kind = is_string if kind == "string" else attribute.dtype.kind in _KINDS[kind]
    if attribute.shape != () or not is_kind:
        raise ValueError(f"attribute {name} is {attribute.dtype} {attribute.shape}, expected a scalar {kind}")
    return group.attrs[name]


def read_array(group: h5py.Group, name: str, kind: str, file_size: int) -> np.ndarray:
    """The dataset ``name`` of numbers of ``kind`` ("integer" or "float"), checked before it is read.

    A damaged shape can claim terabytes: an uncompressed dataset larger than the file cannot be real.
    ``KeyError`` when missing, ``ValueError`` when it is something else.
    """
    dataset = group[name]
    if not isinstance(dataset, h5py.Dataset) or dataset.dtype.kind not in _KINDS[kind]:
        raise ValueError(f"{name} is not a dataset of {kind}s")
    if dataset.compression is None and dataset.nbytes > file_size:
        raise ValueError(f"{name} claims {dataset.nbytes} bytes, more than the file holds")
    return dataset[...]


def _has_hdf5_signature(path: Path) -> bool:
    """Whether the file starts as HDF5 does (this project writes no user block before the superblock)."""
    with path.open("rb") as file:
        return file.read(len(_SUPERBLOCK_SIGNATURE)) == _SUPERBLOCK_SIGNATURE


def _looping_heap_offset(path: Path) -> int | None:
    """Where a global heap collection lies that libhdf5 would walk forever (None: there is none).

    Walks each collection's objects as libhdf5 does (H5HGcache.c): an object of index 0 is the free
    space and advances by its own size, so a size of 0 never advances. A collection that runs past the end
    of the file is refused too (libhdf5 would see zeros there).
    """
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        length_size = _length_size(data)
        start = data.find(_HEAP_SIGNATURE)
        while start >= 0:
            if not _heap_walk_ends(data, start, length_size):
                return start
            start = data.find(_HEAP_SIGNATURE, start + 1)
    return None


def _length_size(data: mmap.mmap) -> int:
    """The superblock's "size of lengths" (8 unless the file says otherwise; h5py writes 8)."""
    if len(data) < 16 or data[: len(_SUPERBLOCK_SIGNATURE)] != _SUPERBLOCK_SIGNATURE:
        return 8
    version = data[8]
    length_size = data[14] if version < 2 else data[10]
    return length_size if length_size in (2, 4, 8) else 8


def _heap_walk_ends(data: mmap.mmap, start: int, length_size: int) -> bool:
    """Whether libhdf5's walk over the objects of the collection at ``start`` comes to an end."""
    header = len(_HEAP_SIGNATURE) + length_size
    end = start + int.from_bytes(data[start + len(_HEAP_SIGNATURE) : start + header], "little")
    if end > len(data):
        return False
    object_header = 8 + length_size  # index (2), references (2), reserved (4), size
    position = start + header
    while position + object_header <= end:  # less than a header left: free space, the walk ends
        index = int.from_bytes(data[position : position + 2], "little")
        size = int.from_bytes(data[position + 8 : position + object_header], "little")
        step = object_header + -(-size // 8) * 8 if index > 0 else size
        if step == 0:
            return False
        position += step
    return True
