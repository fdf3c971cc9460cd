"""The library versions an output was made with, recorded inside it (bank, corpus, store, model).

Why: bytes are reproducible only with the same versions (``requirements/lock.txt`` pins them); when two
machines disagree, the file itself says what made it.
"""

from __future__ import annotations

import importlib.metadata
import platform


def library_versions(*packages: str) -> dict[str, str]:
    """``{package: version}`` of installed distributions (``"missing"`` when one is not installed) and Python."""
    found = {}
    for package in packages:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "missing"
    found["python"] = platform.python_version()
    return found
