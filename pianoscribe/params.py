"""Read a params file (``params.yaml``) and merge its sections over the built-in defaults.

Only the CLI layers call this: every other module takes plain arguments. A file named with ``--params``
must exist; without one, ``./params.yaml`` is read when present (the DVC pipeline's) and the built-in
defaults (:mod:`pianoscribe.defaults`) apply otherwise. Unknown sections and unknown keys (in any section,
checked when the file is read) are errors that name them, so a typo never silently falls back to a default;
a section the file lacks is a warning, and its defaults apply.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pianoscribe.defaults import SECTIONS, defaults
from pianoscribe.errors import UserError

DEFAULT_PARAMS = Path("params.yaml")


@dataclass(frozen=True)
class Params:
    """The sections a params file gave, and the file (None: built-in defaults only)."""

    values: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def section(self, name: str, warn: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Section ``name``: the file's values merged key by key over the defaults.

        A file that lacks the section is allowed (the defaults apply) and reported through ``warn``.
        """
        merged = defaults(name)
        if name not in self.values:
            if self.path is not None and warn is not None:
                warn(f"{self.path}: no '{name}' section; the built-in defaults apply")
            return merged
        _merge_into(merged, self.values[name], prefix=name, source=str(self.path or "params"))
        return merged


def load_params(path: Path | str | None = None) -> Params:
    """The params file at ``path`` (which must exist), or ``./params.yaml`` if present, else no file."""
    explicit = path is not None
    path = Path(path) if path is not None else DEFAULT_PARAMS
    if not path.exists():
        if explicit:
            raise UserError(f"{path}: no such params file")
        return Params()
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a params file")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from error
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not a text file ({error.reason})") from error
    if loaded is None:
        raise UserError(f"{path}: the params file is empty (expected sections: {', '.join(SECTIONS)})")
    if not isinstance(loaded, dict):
        raise UserError(f"{path}: expected a mapping of stage sections, got {type(loaded).__name__}")
    _check_sections(loaded, path)
    return Params(values=loaded, path=path)


def _check_sections(loaded: dict[Any, Any], path: Path) -> None:
    """Refuse an unknown section, or an unknown key in any section, when the file is read.

    Every section is checked, not only the ones the running command reads, so a typo in ``fit`` is
    reported by ``builder corpus`` too instead of waiting, unnoticed, for the stage that reads it.
    """
    unknown = [str(name) for name in loaded if name not in SECTIONS]
    if unknown:
        raise UserError(f"{path}: unknown section '{unknown[0]}' (sections: {', '.join(SECTIONS)})")
    for name, values in loaded.items():
        _merge_into(defaults(name), values, prefix=name, source=str(path))


def apply_overrides(values: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Overlay the CLI flags that were given (None means "not given")."""
    merged = copy.deepcopy(values)
    for key, value in overrides.items():
        if value is not None:
            merged[key] = value
    return merged


def check_known_keys(values: dict[str, Any], known: dict[str, Any], prefix: str) -> None:
    """``UserError`` naming the first key of ``values`` (at any depth) that ``known`` does not have."""
    for key, value in values.items():
        if key not in known:
            raise UserError(f"{prefix}.{key}: unknown parameter (known: {', '.join(map(str, known))})")
        if isinstance(known[key], dict):
            if not isinstance(value, dict):
                raise UserError(f"{prefix}.{key}: expected a mapping")
            check_known_keys(value, known[key], f"{prefix}.{key}")


def _merge_into(target: dict[str, Any], values: Any, prefix: str, source: str) -> None:
    """Merge ``values`` into ``target`` key by key; a key the defaults do not have is an error naming it."""
    if values is None:  # `fit:` with nothing under it
        return
    if not isinstance(values, dict):
        raise UserError(f"{source}: '{prefix}' must be a mapping, got {type(values).__name__}")
    for key, value in values.items():
        if key not in target:
            raise UserError(f"{source}: unknown parameter {prefix}.{key} (known: {', '.join(map(str, target))})")
        if isinstance(target[key], dict):
            _merge_into(target[key], value, prefix=f"{prefix}.{key}", source=source)
        else:
            target[key] = value
