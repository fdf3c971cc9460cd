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

import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mir_eval
import numpy as np

from builder.atomic import atomic_path
from builder.errors import UserError
from builder.notes import LOWEST_KEY, N_KEYS, key_frequency, note_name
from trainer import outputs
from trainer.features import BUFFER_SIZE, SAMPLE_RATE
from trainer.transcribe import DecodeSettings, FrameModel, Transcription, notes_to_roll, transcribe_file

DEFAULT_SETTINGS: dict[str, Any] = {
    "pieces": 12,               # test pieces rendered and transcribed
    "max_seconds": 60.0,        # per piece (notes starting later are dropped)
    "onset_threshold": None,    # None: the model file's own
    "frame_threshold": None,
    "min_note_seconds": None,
}
ONSET_TOLERANCE_SECONDS = 0.05
PIECE_GAP_SECONDS = 10.0        # silence between pieces when pooling them into one mir_eval call
MANIFEST_NAME = "manifest.json"
REGISTER_KEYS = 12              # keys per register in frame_f1_by_register


@dataclass
class TestPiece:
    """One rendered held-out piece: where its audio is and what was played."""

    piece_id: str
    bank: str
    audio_path: Path
    notes: np.ndarray          # NOTE_DTYPE reference
    seconds: float


# ---------------------------------------------------------------------------------------------- test pieces


def render_test_pieces(store_path: Path, data_dir: Path, eval_dir: Path, settings: dict[str, Any],
                       progress: Callable[[str], None] = lambda message: None) -> list[TestPiece]:
    """Render the first ``settings['pieces']`` test pieces (round-robin over corpora and test banks) to ``eval_dir``.

    Writes ``NNN.wav`` (float32, 44.1 kHz mono), ``NNN.ref.csv`` (reference notes, the infer CSV format) and
    ``manifest.json``. Deterministic: same store and settings -> same pieces, same audio.
    """
    from builder import banks, corpus, render, store

    root = store.open_store(store_path)
    attrs = dict(root.attrs)
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
    notes_by_id = _notes_of_pieces(chosen_ids, attrs.get("corpora") or {}, data_dir, corpus)
    loaded_banks = {name: banks.read_bank(_bank_path(banks, data_dir, name)) for name in test_banks}

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
        pieces.append(TestPiece(piece_id=piece_id, bank=bank_name, audio_path=audio_path, notes=notes,
                                seconds=len(audio) / SAMPLE_RATE))
    manifest = {"store": str(store_path), "max_seconds": max_seconds, "pieces": [
        {"piece_id": piece.piece_id, "bank": piece.bank, "audio": piece.audio_path.name,
         "reference": piece.audio_path.with_suffix(".ref.csv").name, "seconds": round(piece.seconds, 3),
         "notes": int(len(piece.notes))} for piece in pieces]}
    _write_json(manifest, eval_dir / MANIFEST_NAME)
    return pieces


def read_test_pieces(eval_dir: Path) -> list[TestPiece]:
    """The pieces a previous ``trainer evaluate`` rendered (for scoring another system on the same audio)."""
    eval_dir = Path(eval_dir)
    manifest_path = eval_dir / MANIFEST_NAME
    if not manifest_path.exists():
        raise UserError(f"{manifest_path}: no rendered test pieces (run `trainer evaluate` first)")
    manifest = json.loads(manifest_path.read_text())
    return [TestPiece(piece_id=entry["piece_id"], bank=entry["bank"], audio_path=eval_dir / entry["audio"],
                      notes=outputs.read_csv(eval_dir / entry["reference"]), seconds=float(entry["seconds"]))
            for entry in manifest["pieces"]]


def _round_robin_by_corpus(piece_ids: list[str]) -> list[str]:
    """Alternate corpora (the part of the id before the first '/'), so a few pieces cover every kind of music."""
    by_corpus: dict[str, list[str]] = {}
    for piece_id in piece_ids:
        by_corpus.setdefault(piece_id.split("/", 1)[0], []).append(piece_id)
    queues = [by_corpus[name] for name in sorted(by_corpus)]
    ordered = []
    for position in range(max(len(queue) for queue in queues)):
        ordered.extend(queue[position] for queue in queues if position < len(queue))
    return ordered


def _notes_of_pieces(piece_ids: list[str], corpora: dict[str, str], data_dir: Path, corpus_module) -> dict[str, np.ndarray]:
    wanted = set(piece_ids)
    found: dict[str, np.ndarray] = {}
    for corpus_name in corpora:
        path = corpus_module.corpus_path(corpus_name, data_dir)
        if not path.exists():
            raise UserError(f"{path}: corpus the store was made from is missing (run `builder corpus {corpus_name}`)")
        for piece in corpus_module.read_corpus(path).pieces:
            if piece.piece_id in wanted:
                found[piece.piece_id] = piece.notes
    missing = wanted - set(found)
    if missing:
        raise UserError(f"{data_dir}/corpus: test pieces not found in the store's corpora: "
                        f"{', '.join(sorted(missing)[:3])}{' ...' if len(missing) > 3 else ''}")
    return found


def _bank_path(banks_module, data_dir: Path, name: str) -> Path:
    path = banks_module.bank_path(name, data_dir)
    if not path.exists():
        raise UserError(f"{path}: test bank is missing (run `builder bank {name}`)")
    return path


def _first_seconds(notes: np.ndarray, max_seconds: float) -> np.ndarray:
    """Notes starting before ``max_seconds``; a note still sounding there is cut at ``max_seconds``."""
    kept = np.array(notes[notes["onset"] < max_seconds], copy=True)
    kept["offset"] = np.minimum(kept["offset"], max_seconds)
    return kept[kept["offset"] > kept["onset"]]


# ---------------------------------------------------------------------------------------------- scoring


def score_pieces(references: list[np.ndarray], estimates: list[np.ndarray], n_frames: list[int],
                 piece_ids: list[str]) -> dict[str, Any]:
    """mir_eval frame and note-onset scores per piece and pooled over all pieces (``overall``)."""
    per_piece = {piece_id: score_piece(reference, estimate, frames)
                 for piece_id, reference, estimate, frames in zip(piece_ids, references, estimates, n_frames)}
    # pool: lay the pieces end to end with silence between them, and score that as one recording
    # (the gap is a whole number of frames, so each piece keeps its own frame grid)
    gap_frames = int(round(PIECE_GAP_SECONDS * SAMPLE_RATE / BUFFER_SIZE))
    offsets_in_frames = np.cumsum([0] + [frames + gap_frames for frames in n_frames[:-1]])
    pooled_reference = _shifted_concatenation(references, offsets_in_frames * BUFFER_SIZE / SAMPLE_RATE)
    pooled_estimate = _shifted_concatenation(estimates, offsets_in_frames * BUFFER_SIZE / SAMPLE_RATE)
    total_frames = int(offsets_in_frames[-1] + n_frames[-1]) if n_frames else 0
    overall = score_piece(pooled_reference, pooled_estimate, total_frames)
    overall["pieces"] = len(piece_ids)
    return {"overall": overall, "frame_f1_by_register": frame_f1_by_register(pooled_reference, pooled_estimate,
                                                                              total_frames),
            "pieces": per_piece}


def frame_f1_by_register(reference: np.ndarray, estimate: np.ndarray, n_frames: int) -> dict[str, dict[str, float]]:
    """Frame P/R/F1 per octave of keys (A0-G#1, A1-G#2, ..., A7-C8): where on the keyboard a system fails.

    Counted key by key on the same grid and rule as the frame scores (for exact piano-key pitches these are
    mir_eval's counts split by key).
    """
    reference_roll = notes_to_roll(reference, n_frames, values="binary") > 0
    estimate_roll = notes_to_roll(estimate, n_frames, values="binary") > 0
    true_positive = (reference_roll & estimate_roll).sum(axis=0)
    reference_count, estimate_count = reference_roll.sum(axis=0), estimate_roll.sum(axis=0)
    registers = {}
    for first in range(0, N_KEYS, REGISTER_KEYS):
        keys = slice(first, min(first + REGISTER_KEYS, N_KEYS))
        hits, wanted, found = int(true_positive[keys].sum()), int(reference_count[keys].sum()), int(estimate_count[keys].sum())
        precision = hits / found if found else 0.0
        recall = hits / wanted if wanted else 0.0
        name = f"{note_name(LOWEST_KEY + first)}-{note_name(LOWEST_KEY + keys.stop - 1)}"
        registers[name] = {"frame_precision": precision, "frame_recall": recall, "frame_f1": _f1(precision, recall),
                           "reference_frames": wanted}
    return registers


def score_piece(reference: np.ndarray, estimate: np.ndarray, n_frames: int) -> dict[str, float]:
    """Frame P/R/F1 (multipitch on frame centres) and note-onset P/R/F1 of one recording."""
    frame = _frame_scores(reference, estimate, n_frames)
    note = _note_onset_scores(reference, estimate)
    return {**frame, **note, "reference_notes": int(len(reference)), "estimated_notes": int(len(estimate)),
            "frames": int(n_frames)}


def _frame_scores(reference: np.ndarray, estimate: np.ndarray, n_frames: int) -> dict[str, float]:
    centres = (np.arange(n_frames) + 0.5) * BUFFER_SIZE / SAMPLE_RATE
    reference_hz = _frame_frequencies(notes_to_roll(reference, n_frames, values="binary"))
    estimate_hz = _frame_frequencies(notes_to_roll(estimate, n_frames, values="binary"))
    if n_frames == 0:
        return {"frame_precision": 0.0, "frame_recall": 0.0, "frame_f1": 0.0}
    with warnings.catch_warnings():  # "frequencies are all empty" is a legitimate silent piece, scored 0
        warnings.simplefilter("ignore", UserWarning)
        scores = mir_eval.multipitch.evaluate(centres, reference_hz, centres, estimate_hz)
    precision, recall = float(scores["Precision"]), float(scores["Recall"])
    return {"frame_precision": precision, "frame_recall": recall, "frame_f1": _f1(precision, recall)}


def _note_onset_scores(reference: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    if len(reference) == 0 or len(estimate) == 0:
        return {"note_precision": 0.0, "note_recall": 0.0, "note_f1": 0.0}
    precision, recall, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(
        *_intervals_and_hz(reference), *_intervals_and_hz(estimate),
        onset_tolerance=ONSET_TOLERANCE_SECONDS, offset_ratio=None)
    return {"note_precision": float(precision), "note_recall": float(recall), "note_f1": float(f1)}


def _frame_frequencies(roll: np.ndarray) -> list[np.ndarray]:
    key_hz = np.array([key_frequency(key) for key in range(21, 109)])
    return [key_hz[np.flatnonzero(row)] for row in roll]


def _intervals_and_hz(notes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    intervals = np.stack([notes["onset"], np.maximum(notes["offset"], notes["onset"] + 1e-3)], axis=1)
    return intervals.astype(np.float64), np.array([key_frequency(int(key)) for key in notes["key"]])


def _shifted_concatenation(note_lists: list[np.ndarray], offsets: np.ndarray) -> np.ndarray:
    if not note_lists:
        from builder.corpus import NOTE_DTYPE

        return np.zeros(0, dtype=NOTE_DTYPE)
    shifted = []
    for notes, offset in zip(note_lists, offsets):
        moved = np.array(notes, copy=True)
        moved["onset"] += offset
        moved["offset"] += offset
        shifted.append(moved)
    return np.concatenate(shifted)


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


# ---------------------------------------------------------------------------------------------- the command


@dataclass
class EvaluationResult:
    scores: dict[str, Any]
    transcriptions: list[Transcription]
    pieces: list[TestPiece]
    roll_piece_id: str


def evaluate(frame_model: FrameModel, store_path: Path, data_dir: Path, eval_dir: Path, metrics_dir: Path,
             settings: dict[str, Any], progress: Callable[[str], None] = lambda message: None) -> EvaluationResult:
    """Render, transcribe with the ``infer`` code path, score; write ``metrics/eval.json`` and ``eval_roll.png``."""
    decode = DecodeSettings.resolve(settings, frame_model.info)
    pieces = render_test_pieces(store_path, data_dir, eval_dir, settings, progress)
    transcriptions = []
    for piece in pieces:
        progress(f"transcribing {piece.piece_id}")
        transcription = transcribe_file(piece.audio_path, frame_model, decode)
        outputs.write_transcription(piece.audio_path.with_suffix(""), transcription.notes, transcription.amplitude,
                                    transcription.probability, transcription.frame_times,
                                    title=f"{piece.piece_id} ({piece.bank}): key amplitude",
                                    extra_arrays={"onset_probability": transcription.onset_probability})
        transcriptions.append(transcription)
    scores = score_pieces([piece.notes for piece in pieces], [t.notes for t in transcriptions],
                          [len(t.frame_times) for t in transcriptions], [piece.piece_id for piece in pieces])
    audio_seconds = sum(t.audio_seconds for t in transcriptions)
    wall_seconds = sum(t.wall_seconds for t in transcriptions)
    scores["overall"]["audio_seconds"] = round(audio_seconds, 3)
    scores["overall"]["speed_x_realtime"] = round(audio_seconds / wall_seconds, 1) if wall_seconds else None
    scores["decode"] = {"onset_threshold": decode.onset_threshold, "frame_threshold": decode.frame_threshold,
                        "min_note_seconds": decode.min_note_seconds}
    scores["model"] = {"arch": frame_model.info.arch, "context_frames": frame_model.info.context_frames,
                       "lookahead_frames": frame_model.info.lookahead_frames}
    for piece in pieces:
        scores["pieces"][piece.piece_id]["bank"] = piece.bank
    metrics_dir = Path(metrics_dir)
    _write_json(scores, metrics_dir / "eval.json")
    roll_index = _median_piece(scores, pieces)
    piece, transcription = pieces[roll_index], transcriptions[roll_index]
    n_frames = len(transcription.frame_times)
    piece_scores = scores["pieces"][piece.piece_id]
    outputs.write_roll_comparison_png(
        metrics_dir / "eval_roll.png", notes_to_roll(piece.notes, n_frames, values="binary"),
        notes_to_roll(transcription.notes, n_frames, values="binary"),
        transcription.frame_times,
        reference_title=f"reference: {piece.piece_id} through {piece.bank} ({len(piece.notes)} notes)",
        estimated_title=(f"transcription ({len(transcription.notes)} notes): frame F1 {piece_scores['frame_f1']:.3f}, "
                         f"note-onset F1 {piece_scores['note_f1']:.3f}"))
    return EvaluationResult(scores=scores, transcriptions=transcriptions, pieces=pieces, roll_piece_id=piece.piece_id)


def _median_piece(scores: dict[str, Any], pieces: list[TestPiece]) -> int:
    """The piece whose note F1 is the median: the picture shows a typical case, not the best one."""
    note_f1 = [scores["pieces"][piece.piece_id]["note_f1"] for piece in pieces]
    return int(np.argsort(note_f1, kind="stable")[len(note_f1) // 2])


def _write_json(values: dict[str, Any], path: Path) -> None:
    with atomic_path(path, suffix=".json") as temporary:
        temporary.write_text(json.dumps(values, indent=2, sort_keys=False) + "\n")
