"""The held-out pieces, rendered: kinds of music from the store's test split, each piece through every unheard piano.

Which pieces (a pure function of the store and the ``evaluate`` settings):
- a *kind* of music is a list of piece-id prefixes of the store's test split (``chorales/``, ``pianistic/``,
  ``scores/beethoven/`` …); its pieces are ordered by collection round-robin (so one big collection cannot fill
  a kind) and, inside a collection, by a hash of the id (a spread, not the first files);
- the first ``pieces_per_kind`` of a kind are for *tuning* (recipes and decoding thresholds are chosen on
  them), the next ``pieces_per_kind`` are for *reporting* and are never looked at while choosing;
- every chosen piece is rendered through every piano of ``pianos``, none of which a training bank may be.

Rendered audio and reference notes are kept in ``data/eval`` with a manifest, so another system can be scored
on the very same audio (``benchmarks/compare_basic_pitch.py``).
"""

from __future__ import annotations

import hashlib
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
from pianoscribe.storage import StoreLocation
from trainer.inference import outputs

MANIFEST_NAME = "manifest.json"
PURPOSES = ("tune", "report")  # tune: choices are made on these; report: the numbers a user is shown
RENDER_KIND = re.compile(r"[A-Za-z0-9_-]+")
RENDER_NAME = re.compile(r"(tune|report)-[A-Za-z0-9_-]+-\d{2}-[A-Za-z0-9_.-]+(\.ref)?\.(wav|csv|mid|npz|png)")


@dataclass
class TestPiece:
    """One rendered held-out piece: what it is, which piano played it, where its audio is, what was played."""

    piece_id: str
    kind: str
    purpose: str
    bank: str
    audio_path: Path
    notes: np.ndarray  # NOTE_DTYPE reference
    seconds: float


def choose_pieces(test_ids: list[str], kinds: dict[str, list[str]], per_kind: int) -> list[tuple[str, str, str]]:
    """``(kind, purpose, piece id)`` for every chosen piece: per kind ``per_kind`` to tune, then ``per_kind`` to
    report (fewer when the kind has fewer test pieces; a kind with none is an error naming it)."""
    chosen = []
    for kind, prefixes in kinds.items():
        members = [piece_id for piece_id in test_ids if any(piece_id.startswith(prefix) for prefix in prefixes)]
        if not members:
            raise UserError(f"evaluate.kinds.{kind}: no test piece of the store starts with {', '.join(prefixes)}")
        ordered = _spread(members)
        for position, piece_id in enumerate(ordered[: 2 * per_kind]):
            chosen.append((kind, PURPOSES[0] if position < per_kind else PURPOSES[1], piece_id))
    return chosen


def render_test_pieces(
    store_path: StoreLocation | Path,
    data_dir: Path,
    eval_dir: Path,
    settings: dict[str, Any],
    progress: Callable[[str], None] = lambda message: None,
) -> list[TestPiece]:
    """Render the chosen pieces through every evaluation piano into ``eval_dir``.

    Writes ``<purpose>-<kind>-<NN>-<piano>.wav`` (float32, 44.1 kHz mono), the reference notes beside it
    (``.ref.csv``, the infer CSV format) and ``manifest.json``. Deterministic: same store and settings -> same
    pieces, same audio.
    """
    root = store.open_store(store_path)
    attrs = store.attributes(root)
    test_ids = list((attrs.get("split") or {}).get("test") or [])
    if not test_ids:
        raise UserError(f"{store_path}: the store has no test pieces in its 'split' attribute")
    synth_settings = attrs.get("params") or {}
    pianos, kinds, per_kind, max_seconds = _checked(settings, synth_settings)
    chosen = choose_pieces(test_ids, kinds, per_kind)
    notes_by_id = _notes_of_pieces([piece_id for _, _, piece_id in chosen], attrs.get("corpora") or {}, data_dir)
    renderers = {name: render.Renderer(banks.read_bank(_bank_path(data_dir, name)), synth_settings) for name in pianos}

    eval_dir = Path(eval_dir)
    eval_dir.mkdir(parents=True, exist_ok=True)
    for stale in eval_dir.iterdir():  # a previous run with other pieces must not leave its extras behind
        if RENDER_NAME.fullmatch(stale.name) or re.fullmatch(r"\d{3}(\.ref)?\.(wav|csv|mid|npz|png)", stale.name):
            stale.unlink()
    pieces = []
    counters: dict[tuple[str, str], int] = {}
    for kind, purpose, piece_id in chosen:
        notes = _first_seconds(notes_by_id[piece_id], max_seconds)
        if len(notes) == 0:
            continue
        index = counters[(kind, purpose)] = counters.get((kind, purpose), -1) + 1
        outputs.write_csv(notes, eval_dir / f"{purpose}-{kind}-{index:02d}.ref.csv")
        for piano in pianos:
            progress(f"rendering {piece_id} through {piano}")
            audio = np.asarray(renderers[piano].render(notes), np.float32)
            audio_path = eval_dir / f"{purpose}-{kind}-{index:02d}-{piano}.wav"
            render.write_wav(audio, audio_path)
            pieces.append(TestPiece(piece_id, kind, purpose, piano, audio_path, notes, len(audio) / SAMPLE_RATE))
    write_json(
        {"store": str(store_path), "max_seconds": max_seconds, "pieces": [_entry(p) for p in pieces]},
        eval_dir / MANIFEST_NAME,
    )
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
            kind=entry["kind"],
            purpose=entry["purpose"],
            bank=entry["bank"],
            audio_path=eval_dir / entry["audio"],
            notes=outputs.read_csv(eval_dir / entry["reference"]),
            seconds=float(entry["seconds"]),
        )
        for entry in manifest["pieces"]
    ]


def reference_path(piece: TestPiece) -> Path:
    """Where a rendered piece's reference notes are (shared by the renders of one piece through each piano)."""
    name = piece.audio_path.name.removesuffix(f"-{piece.bank}.wav")
    return piece.audio_path.with_name(f"{name}.ref.csv")


def _entry(piece: TestPiece) -> dict[str, Any]:
    return {
        "piece_id": piece.piece_id,
        "kind": piece.kind,
        "purpose": piece.purpose,
        "bank": piece.bank,
        "audio": piece.audio_path.name,
        "reference": reference_path(piece).name,
        "seconds": round(piece.seconds, 3),
        "notes": len(piece.notes),
    }


def _checked(
    settings: dict[str, Any], synth_settings: dict[str, Any]
) -> tuple[list[str], dict[str, list[str]], int, float]:
    """The ``evaluate`` settings that choose and render, validated against the store's own settings."""
    pianos = list(settings["pianos"])
    heard = sorted(set(pianos) & set(synth_settings.get("train_banks") or []))
    if not pianos or heard:
        raise UserError(f"evaluate.pianos: {pianos} must name pianos no training bank is ({heard} trained on)")
    kinds = settings["kinds"]
    try:
        kinds = {str(kind["name"]): [str(prefix) for prefix in kind["prefixes"]] for kind in kinds}
    except (TypeError, KeyError) as error:
        raise UserError(f"evaluate.kinds: expected a list of {{name, prefixes}}, got {kinds!r}") from error
    if not kinds or not all(kinds.values()) or not all(RENDER_KIND.fullmatch(kind) for kind in kinds):
        raise UserError(f"evaluate.kinds: each kind needs a name of letters, digits, _ or - and prefixes: {kinds!r}")
    per_kind = int(settings["pieces_per_kind"])
    if per_kind < 1:
        raise UserError(f"evaluate.pieces_per_kind: must be >= 1, got {per_kind}")
    max_seconds = float(settings["max_seconds"])
    if max_seconds <= 0:
        raise UserError(f"evaluate.max_seconds: must be > 0, got {max_seconds}")
    return pianos, kinds, per_kind, max_seconds


def _spread(piece_ids: list[str]) -> list[str]:
    """Round-robin over collections (the first two parts of the id), each in the order of a hash of the id."""
    by_collection: dict[str, list[str]] = {}
    for piece_id in sorted(piece_ids, key=lambda text: hashlib.sha256(f"evaluate:{text}".encode()).hexdigest()):
        by_collection.setdefault("/".join(piece_id.split("/")[:2]), []).append(piece_id)
    queues = [by_collection[name] for name in sorted(by_collection)]
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
        raise UserError(f"{path}: evaluation piano is missing (run `builder bank {name}`)")
    return path


def _first_seconds(notes: np.ndarray, max_seconds: float) -> np.ndarray:
    """Notes starting before ``max_seconds``; a note still sounding there is cut at ``max_seconds``."""
    kept = np.array(notes[notes["onset"] < max_seconds], copy=True)
    kept["offset"] = np.minimum(kept["offset"], max_seconds)
    return kept[kept["offset"] > kept["onset"]]


def write_json(values: dict[str, Any], path: Path) -> None:
    with atomic_path(path, suffix=".json") as temporary:
        temporary.write_text(json.dumps(values, indent=2, sort_keys=False) + "\n")
