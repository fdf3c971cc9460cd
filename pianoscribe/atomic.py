"""Write files and folders so that a reader never sees half of one, and nothing the project did not write is lost.

Everything is written under a temporary name beside its destination, then renamed over it. What already stands
at the destination is replaced only when a predicate says it may be (by default: a regular file; a store:
only a store this project wrote), so a mistyped ``--out`` can never delete a user's folder. OS errors while
writing name the destination, not the temporary.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from pianoscribe.errors import UserError

Replaceable = Callable[[Path], bool]
SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}  # a write that failed for lack of room


def is_regular_file(path: Path) -> bool:
    """The default rule: an existing file may be replaced, a folder never."""
    return path.is_file()


@contextlib.contextmanager
def atomic_path(
    final_path: Path | str, suffix: str = "", replaceable: Replaceable = is_regular_file, kind: str = "file"
) -> Iterator[Path]:
    """Yield a temporary path beside ``final_path``; on success rename it over ``final_path``.

    Works for files and for folders (a Zarr store). An existing ``final_path`` is replaced only if
    ``replaceable(final_path)``; otherwise ``UserError`` before anything is written (``kind`` names what was
    expected there). On failure the temporary is removed and whatever was at ``final_path`` is left untouched.
    """
    final_path = Path(final_path)
    check_replaceable(final_path, replaceable, kind)
    temporary = temporary_beside(final_path, suffix)
    try:
        yield temporary
        _replace(temporary, final_path)
    except BaseException as error:
        remove(temporary)
        if isinstance(error, OSError) and _concerns(error, temporary):
            raise UserError(f"{final_path}: {_reason(error)}") from error
        raise


@contextlib.contextmanager
def atomic_paths(final_paths: Sequence[Path], replaceable: Replaceable = is_regular_file) -> Iterator[list[Path]]:
    """``atomic_path`` for several files that must appear together or not at all (a transcription's outputs):
    every file is written to its temporary first, and only when all are written are they renamed."""
    final_paths = [Path(path) for path in final_paths]
    for path in final_paths:
        check_replaceable(path, replaceable, "file")
    temporaries: list[Path] = []
    try:
        for path in final_paths:
            temporaries.append(temporary_beside(path, path.suffix))
        yield temporaries
        for temporary, path in zip(temporaries, final_paths):
            _replace(temporary, path)
    except BaseException as error:
        for temporary in temporaries:
            remove(temporary)
        if not isinstance(error, OSError):
            raise
        if error.filename is None and error.errno in SPACE_ERRNOS:  # which of the files filled it is unknown
            names = ", ".join(path.name for path in final_paths)
            raise UserError(f"{final_paths[0].parent}: {_reason(error)} (writing {names})") from error
        failed = next((path for temporary, path in zip(temporaries, final_paths) if _concerns(error, temporary)), None)
        if failed is not None:
            raise UserError(f"{failed}: {_reason(error)}") from error
        raise


def check_replaceable(final_path: Path, replaceable: Replaceable, kind: str) -> None:
    """``UserError`` if something stands at ``final_path`` that this write must not replace."""
    if final_path.is_symlink() or not final_path.exists() or replaceable(final_path):
        return
    what = "a folder" if final_path.is_dir() else "a file"
    raise UserError(
        f"{final_path}: exists and is {what} this project did not write (expected {kind}); "
        "move it away or choose another output"
    )


def temporary_beside(final_path: Path, suffix: str = "") -> Path:
    """A fresh, unused name in ``final_path``'s folder (created if needed); the folder's problems name it."""
    try:
        final_path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary_name = tempfile.mkstemp(
            prefix=f".{final_path.name}.", suffix=f"{suffix}.tmp", dir=final_path.parent
        )
    except OSError as error:
        raise UserError(f"{final_path.parent}: cannot write here ({error.strerror or error})") from error
    os.close(handle)
    temporary = Path(temporary_name)
    temporary.unlink()
    return temporary


def remove(path: Path) -> None:
    """Delete a file or a folder if it exists (a temporary left by a failed write)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _replace(temporary: Path, final_path: Path) -> None:
    """Rename ``temporary`` over ``final_path``; a folder there is first moved aside, then deleted."""
    if final_path.is_dir() and not final_path.is_symlink():
        aside = temporary_beside(final_path, ".old")
        os.replace(final_path, aside)
        os.replace(temporary, final_path)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(temporary, final_path)


def _reason(error: OSError) -> str:
    """What went wrong, without our temporary name: a full disk is said plainly (h5py's message for it is a
    paragraph of libhdf5 detail that names the temporary file)."""
    if error.errno in SPACE_ERRNOS:
        return os.strerror(error.errno)
    return str(error.strerror or error)


def _concerns(error: BaseException, temporary: Path) -> bool:
    """Whether an OS error is about ``temporary`` (or a file inside it), so the user should see the destination.

    A full disk often fails a write with no file name: inside one file's write, that can only be that file.
    """
    if not isinstance(error, OSError):
        return False
    if error.filename is None:
        return error.errno in SPACE_ERRNOS
    return str(error.filename).startswith(str(temporary))
