"""Opening this project's HDF5 files (banks, corpora) for reading, with one clear error for a bad path."""

from __future__ import annotations

from pathlib import Path

import h5py

from pianoscribe.errors import UserError


def open_for_reading(path: Path, kind: str) -> h5py.File:
    """The HDF5 file at ``path``; ``UserError`` "no such {kind} file" or "not a {kind} (not an HDF5 file)"."""
    if not path.is_file():
        raise UserError(f"{path}: no such {kind} file")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise UserError(f"{path}: not a {kind} (not an HDF5 file)") from error
