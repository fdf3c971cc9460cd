"""``trainer evaluate``: render the held-out pieces through unheard pianos, transcribe them, score with mir_eval.

The pieces are the store's test split (root attribute ``split``), chosen by kind of music and purpose (tune /
report: ``trainer.evaluation.pieces``), each rendered through every evaluation piano with the very synth
settings the store was made with (root attribute ``params``), so nothing the model trained on is heard.

Outputs: ``metrics/eval.json`` — the summary a person compares across runs (DVC metrics): per purpose, per
kind of music x piano and pooled, frame / note-onset / note-with-offset / velocity scores, and frame F1 per
octave; ``metrics/eval_pieces.json`` — every rendered piece's scores (detail, not a DVC metric);
``metrics/eval_roll.png`` — a typical report piece, reference above transcription. The offline model
(``--offline-model``), scored on the same audio, writes the same three as ``eval_offline*``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pianoscribe.storage import StoreLocation
from trainer.evaluation.pieces import PURPOSES, TestPiece, render_test_pieces, write_json
from trainer.evaluation.scoring import octave_group, score_group, score_piece
from trainer.inference import outputs
from trainer.inference.decode import DecodeSettings, notes_to_roll
from trainer.inference.frame_model import FrameModel
from trainer.inference.transcribe import Transcription, transcribe_file

SUMMARY_SCORES = ("frame_f1", "note_f1", "note_offset_f1", "velocity_mae")  # per group in eval.json
ALL = "all"


@dataclass
class EvaluationResult:
    """The summary (eval.json), every piece's scores (eval_pieces.json), what they came from, the pictured piece."""

    summary: dict[str, Any]
    piece_scores: list[dict[str, Any]]
    transcriptions: list[Transcription]
    pieces: list[TestPiece]
    roll_piece: TestPiece


def evaluate(
    frame_model: FrameModel,
    decode: DecodeSettings,
    store_path: StoreLocation | Path,
    data_dir: Path,
    eval_dir: Path,
    metrics_dir: Path,
    settings: dict[str, Any],
    progress: Callable[[str], None] = lambda message: None,
    offline: tuple[FrameModel, DecodeSettings] | None = None,
) -> dict[str, EvaluationResult]:
    """Render (``settings``: the ``evaluate`` section), transcribe with the ``infer`` code path and ``decode``, score;
    write ``eval.json``, ``eval_pieces.json`` and ``eval_roll.png`` into ``metrics_dir``, and the transcriptions
    beside the rendered audio. With ``offline`` (the offline model and its decoding) the same pieces are also
    scored through it, into ``eval_offline.json``, ``eval_offline_pieces.json`` and ``eval_offline_roll.png``.

    Returns the results by name: ``model``, and ``offline`` when given.
    """
    pieces = render_test_pieces(store_path, data_dir, eval_dir, settings, progress)
    results = {"model": _evaluate_model(frame_model, decode, pieces, Path(metrics_dir), "eval", True, progress)}
    if offline is not None:
        results["offline"] = _evaluate_model(*offline, pieces, Path(metrics_dir), "eval_offline", False, progress)
    return results


def _evaluate_model(
    frame_model: FrameModel,
    decode: DecodeSettings,
    pieces: list[TestPiece],
    metrics_dir: Path,
    name: str,
    write_transcriptions: bool,
    progress: Callable[[str], None],
) -> EvaluationResult:
    """Transcribe every piece with one model; write ``NAME.json``, ``NAME_pieces.json`` and ``NAME_roll.png``."""
    transcriptions = []
    for piece in pieces:
        progress(f"transcribing {piece.audio_path.name} ({frame_model.info.arch})")
        transcription = transcribe_file(piece.audio_path, frame_model, decode)
        if write_transcriptions:
            outputs.write_outputs(
                piece.audio_path.with_suffix(""),
                transcription,
                title=f"{piece.piece_id} ({piece.bank}): key amplitude",
                png=True,
            )
        transcriptions.append(transcription)
    estimates = [transcription.notes for transcription in transcriptions]
    n_frames = [len(transcription.frame_times) for transcription in transcriptions]
    groups = summarize(pieces, estimates, n_frames)
    summary = headline_of(groups)
    audio_seconds = sum(t.audio_seconds for t in transcriptions)
    wall_seconds = sum(t.wall_seconds for t in transcriptions)
    summary["audio_seconds"] = round(audio_seconds, 3)
    summary["speed_x_realtime"] = round(audio_seconds / wall_seconds, 1) if wall_seconds else None
    summary["decode"] = {
        "onset_threshold": decode.onset_threshold,
        "frame_threshold": decode.frame_threshold,
        "min_note_seconds": decode.min_note_seconds,
        "onset_neighbour_weight": decode.onset_neighbour_weight,
    }
    summary["model"] = {
        "arch": frame_model.info.arch,
        "context_frames": frame_model.info.context_frames,
        "lookahead_frames": frame_model.info.lookahead_frames,
    }
    piece_scores = [
        {
            "piece_id": piece.piece_id,
            "kind": piece.kind,
            "purpose": piece.purpose,
            "bank": piece.bank,
            "audio": piece.audio_path.name,
            **score_piece(piece.notes, estimate, frames),
        }
        for piece, estimate, frames in zip(pieces, estimates, n_frames)
    ]
    write_json(summary, metrics_dir / f"{name}.json")
    write_json(
        {"groups": groups, "pieces": piece_scores},
        metrics_dir / f"{name}_pieces.json",
    )
    roll = _typical_report_piece(piece_scores)
    _write_roll(metrics_dir / f"{name}_roll.png", pieces[roll], transcriptions[roll], piece_scores[roll])
    return EvaluationResult(summary, piece_scores, transcriptions, pieces, pieces[roll])


def summarize(pieces: list[TestPiece], estimates: list[np.ndarray], n_frames: list[int]) -> dict[str, Any]:
    """Pooled scores per purpose, ``[purpose][kind][piano]`` with ``all`` for either, and frame F1 per octave.

    Every score (precision, recall, counts: ``NAME_pieces.json``); ``headline_of`` keeps what eval.json holds.
    The same function scores any system (basic-pitch in the benchmark).
    """
    summary: dict[str, Any] = {}
    for purpose in PURPOSES:
        chosen = [index for index, piece in enumerate(pieces) if piece.purpose == purpose]
        if not chosen:
            continue
        groups: dict[tuple[str, str], list[int]] = {}
        for index in chosen:
            kind, piano = pieces[index].kind, pieces[index].bank
            for key in ((kind, piano), (kind, ALL), (ALL, piano), (ALL, ALL)):
                groups.setdefault(key, []).append(index)
        table: dict[str, Any] = {}
        for (kind, piano), members in groups.items():
            scores = score_group(
                [pieces[i].notes for i in members], [estimates[i] for i in members], [n_frames[i] for i in members]
            )
            table.setdefault(kind, {})[piano] = {name: _rounded(value) for name, value in scores.items()}
        octaves = octave_group(
            [pieces[i].notes for i in chosen], [estimates[i] for i in chosen], [n_frames[i] for i in chosen]
        )
        table["frame_f1_by_octave"] = {name: round(scores["frame_f1"], 4) for name, scores in octaves.items()}
        summary[purpose] = table
    return summary


def headline_of(groups: dict[str, Any]) -> dict[str, Any]:
    """The scores a person compares across runs (``SUMMARY_SCORES``: eval.json) from ``summarize``'s."""
    return {
        purpose: {
            kind: (
                by_piano
                if kind == "frame_f1_by_octave"
                else {piano: {name: scores[name] for name in SUMMARY_SCORES} for piano, scores in by_piano.items()}
            )
            for kind, by_piano in table.items()
        }
        for purpose, table in groups.items()
    }


def _rounded(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def _typical_report_piece(piece_scores: list[dict[str, Any]]) -> int:
    """The report piece whose note F1 is the median: the picture shows a typical case, not the best one."""
    candidates = [index for index, scores in enumerate(piece_scores) if scores["purpose"] == "report"]
    candidates = candidates or list(range(len(piece_scores)))
    candidates.sort(key=lambda index: piece_scores[index]["note_f1"])
    return candidates[len(candidates) // 2]


def _write_roll(path: Path, piece: TestPiece, transcription: Transcription, scores: dict[str, Any]) -> None:
    n_frames = len(transcription.frame_times)
    outputs.write_roll_comparison_png(
        path,
        notes_to_roll(piece.notes, n_frames, values="binary"),
        notes_to_roll(transcription.notes, n_frames, values="binary"),
        transcription.frame_times,
        reference_title=f"reference: {piece.piece_id} ({piece.kind}) through {piece.bank} ({len(piece.notes)} notes)",
        estimated_title=(
            f"transcription ({len(transcription.notes)} notes): frame F1 {scores['frame_f1']:.3f}, "
            f"note-onset F1 {scores['note_f1']:.3f}"
        ),
    )
