"""Resuming a killed fit: the checkpoint folder beside the model, what it is valid for, and the epoch rows."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pianoscribe.atomic import atomic_path


def fingerprint(data: Path, store_attrs: dict[str, Any], settings: dict[str, Any]) -> str:
    """What a checkpoint is valid for: the store (path and attributes) and every setting (the epoch count sets
    the learning-rate schedule, so it counts too)."""
    text = json.dumps(
        {"data": str(data.resolve()), "store": store_attrs, "settings": settings}, sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()


class History:
    """Per-epoch rows (losses, test-split scores, seconds), saved in the checkpoint folder after each epoch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []

    def keep_until(self, epoch: int) -> None:
        """Drop rows the restored weights have not seen (an epoch scored but killed before its backup)."""
        self.rows = [row for row in self.rows if row["epoch"] <= epoch]

    def record(self, row: dict[str, Any]) -> None:
        self.keep_until(row["epoch"] - 1)
        self.rows.append(row)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path) as temporary:
            temporary.write_text(json.dumps(self.rows, indent=1))


class Checkpoint:
    """The folder that lets a killed fit resume: ``.NAME.keras.checkpoint/`` beside the model."""

    def __init__(self, model_path: Path, fingerprint: str, say: Callable[[str], None]) -> None:
        self.folder = model_path.parent / f".{model_path.name}.checkpoint"
        stamp = self.folder / "fingerprint"
        if self.folder.exists():
            if stamp.exists() and stamp.read_text() == fingerprint:
                metadata = self.folder / "backup" / "training_metadata.json"
                done = json.loads(metadata.read_text())["epoch"] if metadata.exists() else 0
                say(f"resuming from {self.folder} after epoch {done}")
            else:
                say(f"{self.folder}: made with other settings or another store; starting over")
                shutil.rmtree(self.folder)
        if not self.folder.exists():
            self.folder.mkdir(parents=True)
            with atomic_path(stamp) as temporary:
                temporary.write_text(fingerprint)

    def history(self) -> History:
        return History(self.folder / "epochs.json")

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
