"""Our model vs Spotify's basic-pitch on the very audio ``trainer evaluate`` rendered, scored by the same code.

Run ``trainer evaluate`` first (it renders the held-out pieces into ``data/eval``), and ``make compare``
(installs basic-pitch 0.4.0 without its pinned TF/CoreML dependencies, plus onnxruntime and librosa).
basic-pitch runs its own ``predict`` on its ONNX model (shipped in its wheel) with its default thresholds;
ours runs ``trainer.inference`` with the decode section of ``params.yaml``. Both read the same WAV files,
both are timed from file to notes (model loading and a warm-up run excluded), and both are scored with
``trainer.evaluation.scoring.score_pieces`` (mir_eval frame and note-onset F1). Prints one table; writes
``metrics/compare_basic_pitch.json``.

    .venv/bin/python benchmarks/compare_basic_pitch.py [--eval-dir data/eval] [--model models/model.keras]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from builder.corpus import NOTE_DTYPE
from pianoscribe.constants import BUFFER_SIZE, SAMPLE_RATE
from pianoscribe.params import apply_overrides, load_params
from trainer.evaluation.pieces import read_test_pieces
from trainer.evaluation.scoring import score_pieces
from trainer.inference.decode import DecodeSettings
from trainer.inference.frame_model import FrameModel
from trainer.inference.streaming import StreamingTranscriber
from trainer.inference.transcribe import transcribe_file


def basic_pitch_runner():
    """basic-pitch's ``predict`` bound to its ONNX model, loaded once; returns (path -> notes)."""
    logging.getLogger().setLevel(logging.ERROR)  # its import warns about every runtime it does not find
    warnings.filterwarnings("ignore")
    try:
        from basic_pitch import FilenameSuffix, build_icassp_2022_model_path
        from basic_pitch.inference import Model, predict
    except ImportError as error:
        sys.exit(f"basic-pitch is not installed ({error}); run `make compare` first")
    model = Model(build_icassp_2022_model_path(FilenameSuffix.onnx))

    def transcribe(audio_path: Path) -> np.ndarray:
        with contextlib.redirect_stdout(io.StringIO()):  # it prints "Predicting MIDI for ..." per file
            _, _, note_events = predict(str(audio_path), model)
        notes = np.zeros(len(note_events), dtype=NOTE_DTYPE)
        for index, (start, end, pitch, amplitude, _) in enumerate(note_events):
            notes[index] = (start, end, pitch, int(np.clip(round(127 * amplitude), 1, 127)))
        notes = notes[(notes["key"] >= 21) & (notes["key"] <= 108)]
        return notes[np.lexsort((notes["key"], notes["onset"]))]

    return transcribe


def ours_runner(model_path: Path, params_path: Path, overrides: dict):
    settings = apply_overrides(load_params(params_path).section("decode"), overrides)
    frame_model = FrameModel.load(model_path)
    decode = DecodeSettings.resolve(settings, frame_model.info)
    return frame_model, lambda audio_path: transcribe_file(audio_path, frame_model, decode).notes


def streaming_milliseconds(frame_model: FrameModel, audio_path: Path, buffers: int = 400) -> float:
    """Mean wall time of one ``StreamingTranscriber.push`` (one 1024-sample buffer in, 88 values out)."""
    import soundfile

    audio = soundfile.read(str(audio_path), frames=buffers * BUFFER_SIZE, dtype="float32")[0]
    streaming = StreamingTranscriber(frame_model)
    for buffer in audio[: 20 * BUFFER_SIZE].reshape(-1, BUFFER_SIZE):  # warm-up
        streaming.push(buffer)
    started = time.perf_counter()
    for buffer in audio.reshape(-1, BUFFER_SIZE):
        streaming.push(buffer)
    return 1000 * (time.perf_counter() - started) / (len(audio) // BUFFER_SIZE)


def timed_run(transcribe, pieces) -> tuple[list[np.ndarray], float]:
    transcribe(pieces[0].audio_path)  # warm-up: graph tracing, session start, caches
    started = time.perf_counter()
    notes = [transcribe(piece.audio_path) for piece in pieces]
    return notes, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=Path("data/eval"))
    parser.add_argument("--model", type=Path, default=Path("models/model.keras"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, default=Path("metrics/compare_basic_pitch.json"))
    parser.add_argument("--onset-threshold", type=float, help="override params.yaml decode.onset_threshold")
    parser.add_argument("--frame-threshold", type=float, help="override params.yaml decode.frame_threshold")
    parser.add_argument(
        "--skip",
        type=int,
        default=0,
        help="leave out the first N pieces (e.g. `trainer evaluate --pieces 24` then --skip 12: "
        "pieces no recipe was chosen on)",
    )
    args = parser.parse_args()

    pieces = read_test_pieces(args.eval_dir)[args.skip :]
    if not pieces:
        sys.exit(f"{args.eval_dir}: no pieces left after --skip {args.skip}")
    import soundfile

    n_samples = [soundfile.info(str(piece.audio_path)).frames for piece in pieces]
    n_frames = [-(-samples // BUFFER_SIZE) for samples in n_samples]
    audio_seconds = sum(n_samples) / SAMPLE_RATE
    references = [piece.notes for piece in pieces]
    piece_ids = [piece.piece_id for piece in pieces]
    print(
        f"{len(pieces)} held-out pieces, {audio_seconds:.0f} s of audio, from {args.eval_dir} "
        f"({', '.join(sorted({piece.bank for piece in pieces}))}); {os.cpu_count()} CPU cores"
    )

    frame_model, ours = ours_runner(
        args.model, args.params, {"onset_threshold": args.onset_threshold, "frame_threshold": args.frame_threshold}
    )
    systems = {"pianoscribe": ours, "basic-pitch 0.4.0 (onnx)": basic_pitch_runner()}
    results = {}
    for name, transcribe in systems.items():
        notes, wall_seconds = timed_run(transcribe, pieces)
        scores = score_pieces(references, notes, n_frames, piece_ids)
        results[name] = {
            **scores["overall"],
            "wall_seconds": wall_seconds,
            "frame_f1_by_register": scores["frame_f1_by_register"],
            "speed_x_realtime": audio_seconds / wall_seconds,
            "pieces": {piece_id: dict(piece_scores) for piece_id, piece_scores in scores["pieces"].items()},
        }

    header = (
        f"{'system':26s} {'frame P':>8s} {'frame R':>8s} {'frame F1':>8s} {'note P':>8s} {'note R':>8s} "
        f"{'note F1':>8s} {'notes':>7s} {'wall s':>8s} {'x realtime':>10s}"
    )
    print(header)
    print("-" * len(header))
    for name, result in results.items():
        print(
            f"{name:26s} {result['frame_precision']:8.3f} {result['frame_recall']:8.3f} {result['frame_f1']:8.3f} "
            f"{result['note_precision']:8.3f} {result['note_recall']:8.3f} {result['note_f1']:8.3f} "
            f"{result['estimated_notes']:7d} {result['wall_seconds']:8.2f} {result['speed_x_realtime']:10.1f}"
        )
    ours, peer = results["pianoscribe"], results["basic-pitch 0.4.0 (onnx)"]
    print(f"reference notes: {ours['reference_notes']}")
    print("frame F1 by register:  " + "  ".join(f"{register:>7s}" for register in ours["frame_f1_by_register"]))
    for name, result in results.items():
        print(
            f"  {name[:20]:20s} "
            + "  ".join(f"{scores['frame_f1']:7.2f}" for scores in result["frame_f1_by_register"].values())
        )
    print(
        f"ours - basic-pitch: frame F1 {ours['frame_f1'] - peer['frame_f1']:+.3f}, "
        f"note-onset F1 {ours['note_f1'] - peer['note_f1']:+.3f}; "
        f"speed ratio {peer['wall_seconds'] / ours['wall_seconds']:.1f}x (ours faster when > 1)"
    )
    push_ms = streaming_milliseconds(frame_model, pieces[0].audio_path)
    buffer_ms = 1000 * BUFFER_SIZE / SAMPLE_RATE
    print(
        f"pianoscribe streaming: {push_ms:.2f} ms per 1024-sample buffer ({buffer_ms:.1f} ms of audio, "
        f"{buffer_ms / push_ms:.0f}x realtime), latency {frame_model.info.lookahead_frames} buffer(s) lookahead"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"audio_seconds": audio_seconds, "systems": results, "streaming_ms_per_buffer": push_ms}, indent=2)
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
