"""``trainer evaluate``: render the held-out pieces through the held-out banks, transcribe them, score with mir_eval.

The pieces are the store's test split (root attribute ``split``), rendered with the test banks and the very
synth settings the store was made with (root attribute ``params``), so nothing the model trained on is heard.
Rendered audio and reference notes are kept in ``data/eval`` (``manifest.json`` lists them), so another
system can be scored on the very same audio (``benchmarks/compare_basic_pitch.py``) with the same scoring
functions (``score_pieces``).

Scores:
- frame precision/recall/F1 with ``mir_eval.multipitch`` on the 1024-hop grid: a key is active in a frame
  when a note sounds at the frame's centre (the same rule for reference and transcription);
- note-onset precision/recall/F1 with ``mir_eval.transcription`` (onset within 50 ms, pitch within 50 cents,
  offsets ignored).
``overall`` pools every frame and every note of all pieces (micro average); ``pieces`` has each one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainer.evaluation.pieces import TestPiece, render_test_pieces, write_json
from trainer.evaluation.scoring import score_pieces
from trainer.inference import outputs
from trainer.inference.decode import DecodeSettings, notes_to_roll
from trainer.inference.frame_model import FrameModel
from trainer.inference.transcribe import Transcription, transcribe_file


@dataclass
class EvaluationResult:
    """The scores (what eval.json holds), the transcriptions and pieces they came from, the pictured piece."""

    scores: dict[str, Any]
    transcriptions: list[Transcription]
    pieces: list[TestPiece]
    roll_piece_id: str


def evaluate(
    frame_model: FrameModel,
    decode: DecodeSettings,
    store_path: Path,
    data_dir: Path,
    eval_dir: Path,
    metrics_dir: Path,
    settings: dict[str, Any],
    progress: Callable[[str], None] = lambda message: None,
) -> EvaluationResult:
    """Render (``settings``: the ``evaluate`` section), transcribe with the ``infer`` code path and ``decode``, score;
    write ``metrics/eval.json`` and ``eval_roll.png``."""
    pieces = render_test_pieces(store_path, data_dir, eval_dir, settings, progress)
    transcriptions = []
    for piece in pieces:
        progress(f"transcribing {piece.piece_id}")
        transcription = transcribe_file(piece.audio_path, frame_model, decode)
        outputs.write_outputs(
            piece.audio_path.with_suffix(""), transcription, title=f"{piece.piece_id} ({piece.bank}): key amplitude"
        )
        transcriptions.append(transcription)
    scores = score_pieces(
        [piece.notes for piece in pieces],
        [t.notes for t in transcriptions],
        [len(t.frame_times) for t in transcriptions],
        [piece.piece_id for piece in pieces],
    )
    audio_seconds = sum(t.audio_seconds for t in transcriptions)
    wall_seconds = sum(t.wall_seconds for t in transcriptions)
    scores["overall"]["audio_seconds"] = round(audio_seconds, 3)
    scores["overall"]["speed_x_realtime"] = round(audio_seconds / wall_seconds, 1) if wall_seconds else None
    scores["decode"] = {
        "onset_threshold": decode.onset_threshold,
        "frame_threshold": decode.frame_threshold,
        "min_note_seconds": decode.min_note_seconds,
    }
    scores["model"] = {
        "arch": frame_model.info.arch,
        "context_frames": frame_model.info.context_frames,
        "lookahead_frames": frame_model.info.lookahead_frames,
    }
    for piece in pieces:
        scores["pieces"][piece.piece_id]["bank"] = piece.bank
    metrics_dir = Path(metrics_dir)
    write_json(scores, metrics_dir / "eval.json")
    roll_index = _median_piece(scores, pieces)
    piece, transcription = pieces[roll_index], transcriptions[roll_index]
    n_frames = len(transcription.frame_times)
    piece_scores = scores["pieces"][piece.piece_id]
    outputs.write_roll_comparison_png(
        metrics_dir / "eval_roll.png",
        notes_to_roll(piece.notes, n_frames, values="binary"),
        notes_to_roll(transcription.notes, n_frames, values="binary"),
        transcription.frame_times,
        reference_title=f"reference: {piece.piece_id} through {piece.bank} ({len(piece.notes)} notes)",
        estimated_title=(
            f"transcription ({len(transcription.notes)} notes): frame F1 {piece_scores['frame_f1']:.3f}, "
            f"note-onset F1 {piece_scores['note_f1']:.3f}"
        ),
    )
    return EvaluationResult(scores=scores, transcriptions=transcriptions, pieces=pieces, roll_piece_id=piece.piece_id)


def _median_piece(scores: dict[str, Any], pieces: list[TestPiece]) -> int:
    """The piece whose note F1 is the median: the picture shows a typical case, not the best one."""
    note_f1 = [scores["pieces"][piece.piece_id]["note_f1"] for piece in pieces]
    return int(np.argsort(note_f1, kind="stable")[len(note_f1) // 2])
