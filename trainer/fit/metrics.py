"""The metric files a fit leaves: ``fit.csv`` (one row per epoch, DVC plots) and ``fit.json`` (final scores)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pianoscribe.atomic import atomic_path
from trainer.fit.scores import SCORES

CSV_COLUMNS = (
    "epoch",
    "loss",
    "active_loss",
    "onset_loss",
    "energy_loss",
    *(f"val_{score}" for score in SCORES),
    "seconds",
)


def write_metrics(metrics_dir: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """``fit.csv``: one row per epoch (DVC plots: header + rows); ``fit.json``: the final scores (DVC metrics)."""
    metrics_dir.mkdir(parents=True, exist_ok=True)
    lines = [",".join(CSV_COLUMNS)]
    for row in rows:
        lines.append(",".join(_csv_value(row.get(column)) for column in CSV_COLUMNS))
    with atomic_path(metrics_dir / "fit.csv") as temporary:
        temporary.write_text("\n".join(lines) + "\n")
    write_json(summary, metrics_dir / "fit.json")


def write_json(values: dict[str, Any], path: Path) -> None:
    """One metrics file (DVC metrics), atomically, floats rounded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(_rounded(values), indent=2) + "\n")


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    return {key: round(value, 6) if isinstance(value, float) else value for key, value in values.items()}
