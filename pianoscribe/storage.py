"""Where a dataset store lives: a local folder (a plain path, as always) or a URL fsspec reaches (``s3://``,
``gs://``, ``memory://`` ...), with the fsspec storage options that reach it.

A plain path keeps every local guarantee (a partial store renamed into place, a lock file); a URL is an object
store, which has no rename and no lock, so the build stage writes it in place (``builder.dataset.resume``).
fsspec is imported only for a URL: a local run never loads it. Credentials come the backend's usual way (for
``s3://``: the ``AWS_*`` variables, ``~/.aws``; ``AWS_ENDPOINT_URL`` for an S3-compatible server), or as
storage options (``--storage-option KEY=VALUE``).
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pianoscribe.errors import UserError, one_line

URL_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
# the extra that brings each backend (pyproject.toml), named when it is missing
BACKEND_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}


@dataclass(frozen=True)
class StoreLocation:
    """A store's place as the user named it: ``text`` (a path or a URL) and the fsspec options for a URL."""

    text: str
    storage_options: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_remote(self) -> bool:
        """A URL other than ``file://``: reached through fsspec."""
        match = URL_SCHEME.match(self.text)
        return match is not None and match.group(1) != "file"

    @property
    def path(self) -> Path:
        """The local folder (``file://`` stripped); ``ValueError`` for a remote URL."""
        if self.is_remote:
            raise ValueError(f"{self.text} is not a local path")
        return Path(self.text.removeprefix("file://"))

    def __str__(self) -> str:
        return self.text

    def identity(self) -> str:
        """What names the store for fingerprints: the absolute path, or the URL."""
        return self.text if self.is_remote else str(self.path.resolve())

    def zarr_target(self) -> str:
        """What ``zarr.open_group`` takes as the store (with ``zarr_storage_options``)."""
        return self.text if self.is_remote else str(self.path)

    def zarr_storage_options(self) -> dict[str, Any] | None:
        return dict(self.storage_options) if self.is_remote else None

    def exists(self) -> bool:
        """Whether anything is stored there (for a URL: any object under it)."""
        if not self.is_remote:
            return self.path.exists()
        with self.reaching():
            filesystem, root = self._filesystem()
            return bool(filesystem.exists(root))

    def remove(self) -> None:
        """Delete everything stored there (nothing if there is nothing)."""
        if not self.is_remote:
            if self.path.is_dir() and not self.path.is_symlink():
                shutil.rmtree(self.path, ignore_errors=True)
            elif self.path.exists() or self.path.is_symlink():
                self.path.unlink()
            return
        with self.reaching():
            filesystem, root = self._filesystem()
            if filesystem.exists(root):
                filesystem.rm(root, recursive=True)

    def stored_bytes(self) -> int:
        """Bytes of everything stored there (file sizes, or object sizes for a URL)."""
        if not self.is_remote:
            return sum(file.stat().st_size for file in self.path.rglob("*") if file.is_file())
        with self.reaching():
            filesystem, root = self._filesystem()
            return int(filesystem.du(root, total=True))

    @contextlib.contextmanager
    def reaching(self) -> Iterator[None]:
        """Failures to reach a URL (no backend installed, no credentials, no bucket, no network) as one line;
        a local path's errors pass as they are."""
        if not self.is_remote:
            yield
            return
        try:
            yield
        except UserError:
            raise
        except ImportError as error:
            scheme = URL_SCHEME.match(self.text)
            extra = BACKEND_EXTRAS.get(scheme.group(1) if scheme else "", "")
            hint = f'; install it with pip install ".[{extra}]"' if extra else ""
            raise UserError(f"{self.text}: no fsspec backend for this URL ({one_line(error)}){hint}") from error
        except ValueError as error:
            if not str(error).startswith("Protocol not known"):
                raise UserError(f"{self.text}: {type(error).__name__}: {one_line(error)}") from error
            raise UserError(f"{self.text}: no fsspec backend for this URL ({one_line(error)})") from error
        except Exception as error:  # botocore, aiohttp, gcsfs ... each raise their own kinds
            raise UserError(f"{self.text}: cannot be reached ({type(error).__name__}: {one_line(error)})") from error

    def _filesystem(self) -> tuple[Any, str]:
        from fsspec.core import url_to_fs

        filesystem, root = url_to_fs(self.text, **self.storage_options)
        filesystem.invalidate_cache()  # listings cached by an earlier call would hide what other writers did
        return filesystem, root


def store_location(
    place: StoreLocation | Path | str, storage_options: Mapping[str, Any] | None = None
) -> StoreLocation:
    """``place`` as a ``StoreLocation`` (one given as such is kept, with its own options)."""
    if isinstance(place, StoreLocation):
        return place
    return StoreLocation(str(place), dict(storage_options or {}))
