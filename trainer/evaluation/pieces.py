"""The held-out pieces, rendered: the store's test split through its test banks, kept in ``data/eval`` with a
manifest so another system can be scored on the very same audio (``benchmarks/compare_basic_pitch.py``)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from builder import banks, corpus
from builder.dataset import render, store
from pianoscribe.atomic import atomic_path
from pianoscribe.constants import SAMPLE_RATE
from pianoscribe.errors import UserError
from trainer.inference import outputs

MANIFEST_NAME = "manifest.json"


@dataclass
class TestPiece:
    """One rendered held-out piece: where its audio is and what was played."""

    piece_id: str
    bank: str
    audio_path: Path
    notes: np.ndarray  # NOTE_DTYPE reference
    seconds: float


def render_test_pieces(
    store_path: Path,
    data_dir: Path,
    eval_dir: Path,
    settings: dict[str, Any],
    progress: Callable[[str], None] = lambda message: None,
) -> list[TestPiece]:
    """Render the first ``settings['pieces']`` test pieces (round-robin over corpora and test banks) to ``eval_dir``.

    Writes ``NNN.wav`` (float32, 44.1 kHz mono), ``NNN.ref.csv`` (reference notes, the infer CSV format) and
    ``manifest.json``. Deterministic: same store and settings -> same pieces, same audio.
    """
    root = store.open_store(store_path)
    attrs = store.attributes(root)
    split = attrs.get("split") or {}
    test_ids = list(split.get("test") or [])
    if not test_ids:
        raise UserError(f"{store_path}: the store has no test pieces in its 'split' attribute")
    synth_settings = attrs.get("params") or {}
    test_banks = list(synth_settings.get("test_banks") or [])
    if not test_banks:
        raise UserError(f"{store_path}: the store's params name no test_banks")
    n_pieces = int(settings["pieces"])
    if n_pieces < 1:
        raise UserError(f"evaluate.pieces: must be >= 1, got {n_pieces}")
    max_seconds = float(settings["max_seconds"])
    if max_seconds <= 0:
        raise UserError(f"evaluate.max_seconds: must be > 0, got {max_seconds}")

    chosen_ids = _round_robin_by_corpus(test_ids)[:n_pieces]
    notes_by_id = _notes_of_pieces(chosen_ids, attrs.get("corpora") or {}, data_dir)
    loaded_banks = {name: banks.read_bank(_bank_path(data_dir, name)) for name in test_banks}

    eval_dir = Path(eval_dir)
    eval_dir.mkdir(parents=True, exist_ok=True)
    for stale in eval_dir.iterdir():  # a previous run with more pieces must not leave its extras behind
        if re.fullmatch(r"\d{3}(\.ref)?\.(wav|csv|mid|npz|png)", stale.name):
            stale.unlink()
    pieces = []
    for index, piece_id in enumerate(chosen_ids):
        bank_name = test_banks[index % len(test_banks)]
        notes = _first_seconds(notes_by_id[piece_id], max_seconds)
        if len(notes) == 0:
            continue
        progress(f"rendering {piece_id} through {bank_name}")
        audio = np.asarray(render.render_notes(notes, loaded_banks[bank_name], synth_settings), np.float32)
        audio_path = eval_dir / f"{index:03d}.wav"
        render.write_wav(audio, audio_path)
        outputs.write_csv(notes, eval_dir / f"{index:03d}.ref.csv")
        pieces.append(
            TestPiece(
                piece_id=piece_id, bank=bank_name, audio_path=audio_path, notes=notes, seconds=len(audio) / SAMPLE_RATE
            )
        )
    manifest = {
        "store": str(store_path),
        "max_seconds": max_seconds,
        "pieces": [
            {
                "piece_id": piece.piece_id,
                "bank": piece.bank,
                "audio": piece.audio_path.name,
                "reference": piece.audio_path.with_suffix(".ref.csv").name,
                "seconds": round(piece.seconds, 3),
                "notes": len(piece.notes),
            }
            for piece in pieces
        ],
    }
    write_json(manifest, eval_dir / MANIFEST_NAME)
    return pieces


def read_test_pieces(eval_dir: Path) -> list[TestPiece]:
    """The pieces a previous ``trainer evaluate`` rendered (for scoring another system on the same audio)."""
    eval_dir = Path(eval_dir)
    manifest_path = eval_dir / MANIFEST_NAME
    if not manifest_path.exists():
        raise UserError(f"{manifest_path}: no rendered test pieces (run `trainer evaluate` first)")
    manifest = json.loads(manifest_path.read_text())
    return [
        TestPiece(
            piece_id=entry["piece_id"],
            bank=entry["bank"],
            audio_path=eval_dir / entry["audio"],
            notes=outputs.read_csv(eval_dir / entry["reference"]),
            seconds=float(entry["seconds"]),
        )
        for entry in manifest["pieces"]
    ]


def _round_robin_by_corpus(piece_ids: list[str]) -> list[str]:
    """Alternate corpora (the part of the id before the first '/'), so a few pieces cover every kind of music."""
    by_corpus: dict[str, list[str]] = {}
    for piece_id in piece_ids:
        by_corpus.setdefault(piece_id.split("/", 1)[0], []).append(piece_id)
    queues = [by_corpus[name] for name in sorted(by_corpus)]
    ordered: list[str] = []
    for position in range(max(len(queue) for queue in queues)):
        ordered.extend(queue[position] for queue in queues if position < len(queue))
    return ordered


def _notes_of_pieces(piece_ids: list[str], corpora: dict[str, str], data_dir: Path) -> dict[str, np.ndarray]:
    wanted = set(piece_ids)
    found: dict[str, np.ndarray] = {}
    for corpus_name in corpora:
        path = corpus.corpus_path(corpus_name, data_dir)
        if not path.exists():
            raise UserError(f"{path}: corpus the store was made from is missing (run `builder corpus {corpus_name}`)")
        for piece in corpus.read_corpus(path).pieces:
            if piece.piece_id in wanted:
                found[piece.piece_id] = piece.notes
    missing = wanted - set(found)
    if missing:
        raise UserError(
            f"{data_dir}/corpus: test pieces not found in the store's corpora: "
            f"{', '.join(sorted(missing)[:3])}{' ...' if len(missing) > 3 else ''}"
        )
    return found


def _bank_path(data_dir: Path, name: str) -> Path:
    path = banks.bank_path(name, data_dir)
    if not path.exists():
        raise UserError(f"{path}: test bank is missing (run `builder bank {name}`)")
    return path


def _first_seconds(notes: np.ndarray, max_seconds: float) -> np.ndarray:
    """Notes starting before ``max_seconds``; a note still sounding there is cut at ``max_seconds``."""
    kept = np.array(notes[notes["onset"] < max_seconds], copy=True)
    kept["offset"] = np.minimum(kept["offset"], max_seconds)
    return kept[kept["offset"] > kept["onset"]]


def write_json(values: dict[str, Any], path: Path) -> None:
    with atomic_path(path, suffix=".json") as temporary:
        temporary.write_text(json.dumps(values, indent=2, sort_keys=False) + "\n")
