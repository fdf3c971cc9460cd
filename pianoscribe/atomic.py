"""Write files and folders so that a reader never sees half of one: temporary name, then rename."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(final_path: Path | str, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``final_path``; on success rename it over ``final_path``.

    Works for files and for folders (a Zarr store). On failure the temporary is removed and whatever
    was at ``final_path`` before is left untouched.
    """
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary_name = tempfile.mkstemp(
        prefix=f".{final_path.name}.", suffix=f"{suffix}.tmp", dir=final_path.parent
    )
    os.close(handle)
    temporary = Path(temporary_name)
    temporary.unlink()
    try:
        yield temporary
        if final_path.is_dir() and not final_path.is_symlink():
            shutil.rmtree(final_path)
        os.replace(temporary, final_path)
    except BaseException:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        elif temporary.exists():
            temporary.unlink()
        raise
