"""The settings every generated corpus shares: how many pieces, how long each, which seed."""

from __future__ import annotations

from typing import Any

from pianoscribe.errors import UserError


def generator_settings(settings: dict[str, Any], section: str) -> tuple[int, float, int]:
    """(pieces, seconds, seed) from the params section ``corpus.<section>``, or a UserError naming the bad key."""
    values = {}
    for name, whole in (("pieces", True), ("seconds", False), ("seed", True)):
        where = f"params corpus.{section}.{name}"
        if name not in settings:
            raise UserError(f"{where}: missing")
        value = settings[name]
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{where}: {value!r} is not a number") from None
        if isinstance(value, bool) or (whole and not number.is_integer()):
            raise UserError(f"{where}: {value!r} is not a whole number")
        values[name] = number
    pieces_count, seconds, seed = int(values["pieces"]), values["seconds"], int(values["seed"])
    if pieces_count < 1:
        raise UserError(f"params corpus.{section}.pieces: {pieces_count}, must be at least 1")
    if not 1.0 <= seconds <= 3600.0:
        raise UserError(f"params corpus.{section}.seconds: {seconds}, must be between 1 and 3600")
    if seed < 0:
        raise UserError(f"params corpus.{section}.seed: {seed}, must be non-negative")
    return pieces_count, seconds, seed
