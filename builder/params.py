"""Read ``params.yaml`` sections and apply command-line overrides.

Only the CLI layers call this: every other module takes plain arguments.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from builder.errors import UserError

DEFAULT_PARAMS = Path("params.yaml")


def load_params(path: Path | str = DEFAULT_PARAMS) -> dict[str, Any]:
    """Return the whole params file as a dict ({} when there is none: built-in defaults apply)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from error
    if not isinstance(loaded, dict):
        raise UserError(f"{path}: expected a mapping of stage sections, got {type(loaded).__name__}")
    return loaded


def section(params: dict[str, Any], name: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """Merge one stage section over its built-in defaults (nested dicts merge key by key)."""
    merged = copy.deepcopy(defaults)
    _merge_into(merged, params.get(name) or {}, prefix=name)
    return merged


def apply_overrides(values: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Overlay the CLI flags that were given (None means "not given")."""
    merged = copy.deepcopy(values)
    for key, value in overrides.items():
        if value is not None:
            merged[key] = value
    return merged


def _merge_into(target: dict[str, Any], source: dict[str, Any], prefix: str) -> None:
    if not isinstance(source, dict):
        raise UserError(f"params.yaml: section '{prefix}' must be a mapping")
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge_into(target[key], value, prefix=f"{prefix}.{key}")
        else:
            target[key] = value
