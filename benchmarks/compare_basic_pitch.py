"""Our model vs Spotify's basic-pitch on the very audio ``trainer evaluate`` rendered, scored by the same code.

Run ``trainer evaluate`` first (it renders the held-out pieces of each kind of music through each unheard piano
into ``data/eval``), and ``make compare`` (installs basic-pitch 0.4.0 without its pinned TF/CoreML
dependencies, plus onnxruntime and librosa). basic-pitch runs its own ``predict`` on its ONNX model (shipped in
its wheel) with its default thresholds; ours runs ``trainer.inference`` with the decode section of
``params.yaml``. Both are scored by ``trainer.evaluation.evaluate.summarize`` (mir_eval), per purpose (``tune``:
pieces recipes were chosen on; ``report``: pieces nothing was chosen on), per kind of music x piano.

Speed is measured the way a user runs each system, as whole processes over all the files, outputs included:
``trainer infer FILES --out-dir`` (start-up, model load, ``.mid``/``.csv``/``.npz`` per file; its default
``--jobs``, one file per core) with its default backend (onnxruntime on the model's ONNX twin), with ``--backend
keras`` (TensorFlow) and with ``--png``, against a process that imports basic-pitch, loads its model once and
writes a MIDI file per input. Each is run ``--repeats`` times, interleaved; the fastest run counts (the machine is
shared), and every run and the ratio of the medians are printed too. Plus our streaming cost per buffer. The
offline model (``--offline-model``, ``trainer fit-offline``; skipped when the file is missing) is scored and timed
the same way, as a third system: it is the fair peer of basic-pitch, which also reads whole files.

    .venv/bin/python benchmarks/compare_basic_pitch.py [--eval-dir data/eval] [--model models/model.keras]
        [--offline-model models/offline.keras]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from builder.corpus import NOTE_DTYPE
from pianoscribe.constants import BUFFER_SIZE, SAMPLE_RATE
from pianoscribe.params import load_params
from trainer.evaluation.evaluate import ALL, summarize
from trainer.evaluation.pieces import read_test_pieces
from trainer.inference.decode import DecodeSettings
from trainer.inference.frame_model import FrameModel
from trainer.inference.streaming import StreamingTranscriber
from trainer.inference.transcribe import transcribe_file

BASIC_PITCH = "basic-pitch 0.4.0 (onnx)"
OURS = "pianoscribe"
OURS_OFFLINE = "pianoscribe offline"
# a user's basic-pitch run: import it, load the model once, write one MIDI file per input
BASIC_PITCH_PROCESS = """
import contextlib, io, logging, sys, warnings
from pathlib import Path
logging.getLogger().setLevel(logging.ERROR)
warnings.filterwarnings("ignore")
from basic_pitch import FilenameSuffix, build_icassp_2022_model_path
from basic_pitch.inference import Model, predict
model = Model(build_icassp_2022_model_path(FilenameSuffix.onnx))
out = Path(sys.argv[1])
for name in sys.argv[2:]:
    with contextlib.redirect_stdout(io.StringIO()):
        _, midi, _ = predict(name, model)
    midi.write(str(out / (Path(name).stem + ".mid")))
"""


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
    frame_model = FrameModel.load(model_path)
    decode = DecodeSettings.resolve(load_params(params_path).section("decode"), frame_model.info, overrides)
    return frame_model, lambda audio_path: transcribe_file(audio_path, frame_model, decode).notes


def whole_process_seconds(command: list[str]) -> float:
    """Wall time of a command from start to exit (start-up and outputs included); it must succeed."""
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        sys.exit(f"{' '.join(command[:3])} ... failed:\n{completed.stderr[-2000:]}")
    return seconds


def streaming_milliseconds(frame_model: FrameModel, audio_path: Path, buffers: int = 400) -> float:
    """Mean wall time of one ``StreamingTranscriber.push`` (one 1024-sample buffer in, 88 values out)."""
    import soundfile

    audio = soundfile.read(str(audio_path), frames=buffers * BUFFER_SIZE, dtype="float32")[0]
    audio = audio[: len(audio) // BUFFER_SIZE * BUFFER_SIZE]
    streaming = StreamingTranscriber(frame_model)
    for buffer in audio[: 20 * BUFFER_SIZE].reshape(-1, BUFFER_SIZE):  # warm-up
        streaming.push(buffer)
    started = time.perf_counter()
    for buffer in audio.reshape(-1, BUFFER_SIZE):
        streaming.push(buffer)
    return 1000 * (time.perf_counter() - started) / max(len(audio) // BUFFER_SIZE, 1)


def table_lines(summaries: dict[str, dict], purpose: str, system: str = OURS) -> list[str]:
    """One row per kind x piano: our scores (``system``), basic-pitch's, and the difference in frame and note F1."""
    ours, peer = summaries[system][purpose], summaries[BASIC_PITCH][purpose]
    lines = [
        f"{system} vs basic-pitch",
        f"{purpose}: {'kind':10s} {'piano':10s} | {'ours: frame':>11s} {'note':>6s} {'+off':>6s} {'vel':>5s} | "
        f"{'basic-pitch: frame':>18s} {'note':>6s} {'+off':>6s} {'vel':>5s} | {'d frame':>7s} {'d note':>7s}",
    ]
    for kind, by_piano in ours.items():
        if kind == "frame_f1_by_octave":
            continue
        for piano, mine in by_piano.items():
            theirs = peer[kind][piano]
            lines.append(
                f"{'':{len(purpose) + 2}s}{kind:10s} {piano:10s} | {mine['frame_f1']:11.3f} {mine['note_f1']:6.3f} "
                f"{mine['note_offset_f1']:6.3f} {mine['velocity_mae']:5.1f} | {theirs['frame_f1']:18.3f} "
                f"{theirs['note_f1']:6.3f} {theirs['note_offset_f1']:6.3f} {theirs['velocity_mae']:5.1f} | "
                f"{mine['frame_f1'] - theirs['frame_f1']:+7.3f} {mine['note_f1'] - theirs['note_f1']:+7.3f}"
            )
    octaves = list(ours["frame_f1_by_octave"])
    lines.append(f"{'':{len(purpose) + 2}s}frame F1 by octave         " + " ".join(f"{name:>7s}" for name in octaves))
    for name in (system, BASIC_PITCH):
        values = summaries[name][purpose]["frame_f1_by_octave"]
        lines.append(f"{'':{len(purpose) + 4}s}{name:25s} " + " ".join(f"{values[o]:7.2f}" for o in octaves))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-dir", type=Path, default=Path("data/eval"))
    parser.add_argument("--model", type=Path, default=Path("models/model.keras"))
    parser.add_argument("--offline-model", type=Path, default=Path("models/offline.keras"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, default=Path("metrics/compare_basic_pitch.json"))
    parser.add_argument("--onset-threshold", type=float, help="override params.yaml decode.onset_threshold")
    parser.add_argument("--frame-threshold", type=float, help="override params.yaml decode.frame_threshold")
    parser.add_argument("--repeats", type=int, default=3, help="whole-process runs of each system (fastest counts)")
    args = parser.parse_args()

    pieces = read_test_pieces(args.eval_dir)
    if not pieces:
        sys.exit(f"{args.eval_dir}: no rendered pieces (run `trainer evaluate` first)")
    import soundfile

    n_frames = [-(-soundfile.info(str(piece.audio_path)).frames // BUFFER_SIZE) for piece in pieces]
    audio_seconds = sum(n_frames) * BUFFER_SIZE / SAMPLE_RATE
    print(
        f"{len(pieces)} renders of held-out pieces ({len({p.piece_id for p in pieces})} pieces x "
        f"{', '.join(sorted({p.bank for p in pieces}))}), {audio_seconds:.0f} s of audio, from {args.eval_dir}; "
        f"{os.cpu_count()} CPU cores"
    )
    overrides = {"onset_threshold": args.onset_threshold, "frame_threshold": args.frame_threshold}
    frame_model, ours = ours_runner(args.model, args.params, overrides)
    systems = [(OURS, ours, args.model)]
    if args.offline_model.exists():
        systems.append((OURS_OFFLINE, ours_runner(args.offline_model, args.params, overrides)[1], args.offline_model))
    else:
        print(f"{args.offline_model}: no such file, the offline model is left out (make it with trainer fit-offline)")
    summaries = {}
    for name, transcribe in [*((name, run) for name, run, _ in systems), (BASIC_PITCH, basic_pitch_runner())]:
        estimates = [transcribe(piece.audio_path) for piece in pieces]
        summaries[name] = summarize(pieces, estimates, n_frames)
    for name, _, _ in systems:
        for purpose in ("report", "tune"):
            if purpose in summaries[name]:
                print("\n".join(table_lines(summaries, purpose, name)))

    files = [str(piece.audio_path) for piece in pieces]
    trainer = Path(sys.executable).parent / "trainer"
    infer = [str(trainer), "infer", *files, "--params", str(args.params), "--overwrite"]
    commands = {
        f"{OURS} (onnxruntime)": [*infer, "--model", str(args.model), "--backend", "auto"],
        f"{OURS} (keras)": [*infer, "--model", str(args.model), "--backend", "keras"],
        f"{OURS} (onnxruntime, --png)": [*infer, "--model", str(args.model), "--backend", "auto", "--png"],
        BASIC_PITCH: [sys.executable, "-c", BASIC_PITCH_PROCESS],
    }
    if len(systems) > 1:
        commands[f"{OURS_OFFLINE} (onnxruntime)"] = [*infer, "--model", str(args.offline_model), "--backend", "auto"]
    runs: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(max(args.repeats, 1)):
        for name, command in commands.items():
            with tempfile.TemporaryDirectory() as out:
                where = [out, *files] if name == BASIC_PITCH else ["--out-dir", out]
                runs[name].append(whole_process_seconds([*command, *where]))
    seconds = {name: min(walls) for name, walls in runs.items()}
    median_ratio = statistics.median(runs[BASIC_PITCH]) / statistics.median(runs[f"{OURS} (onnxruntime)"])
    push_ms = streaming_milliseconds(frame_model, pieces[0].audio_path)
    buffer_ms = 1000 * BUFFER_SIZE / SAMPLE_RATE
    peer_seconds = seconds[BASIC_PITCH]
    print(
        f"whole processes over {len(files)} files ({audio_seconds:.0f} s of audio, outputs written; fastest of "
        f"{max(args.repeats, 1)}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores):"
    )
    print(f"  {'system':34s} {'wall s':>7s} {'x realtime':>10s} {'basic-pitch / this':>18s}   every run, s")
    for name, wall in seconds.items():
        every = " ".join(f"{run:.1f}" for run in runs[name])
        print(f"  {name:34s} {wall:7.1f} {audio_seconds / wall:10.0f} {peer_seconds / wall:17.1f}x   {every}")
    print(f"  medians: basic-pitch / pianoscribe (onnxruntime) = {median_ratio:.1f}x")
    print(
        f"pianoscribe streaming: {push_ms:.2f} ms per 1024-sample buffer ({buffer_ms:.1f} ms of audio, "
        f"{buffer_ms / push_ms:.0f}x realtime), latency {frame_model.info.lookahead_frames} buffer(s) lookahead"
    )
    for name, _, _ in systems:
        report = summaries[name].get("report", {}).get(ALL, {}).get(ALL)
        if report:
            peer = summaries[BASIC_PITCH]["report"][ALL][ALL]
            print(
                f"report, all kinds and pianos: {name} - basic-pitch frame F1 "
                f"{report['frame_f1'] - peer['frame_f1']:+.3f}, "
                f"note-onset F1 {report['note_f1'] - peer['note_f1']:+.3f}"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "audio_seconds": audio_seconds,
                "systems": summaries,
                "whole_process_seconds": seconds,
                "whole_process_runs": runs,
                "speed_ratio_of_medians": median_ratio,
                "speed_ratio": peer_seconds / seconds[f"{OURS} (onnxruntime)"],
                "speed_ratio_offline": (
                    peer_seconds / seconds[f"{OURS_OFFLINE} (onnxruntime)"] if len(systems) > 1 else None
                ),
                "streaming_ms_per_buffer": push_ms,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
