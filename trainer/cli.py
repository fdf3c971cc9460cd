"""``trainer``: fit the CNN, transcribe recordings, evaluate. Parses, reads params, calls, prints.

TensorFlow is imported inside the commands, so ``trainer --help`` stays instant.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from builder.cli_support import Debug, ParamsFile, console, make_app, run_reporting_errors
from builder.params import DEFAULT_PARAMS, apply_overrides, load_params, section

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

app = make_app("Train the transcription model on the synthesized dataset, transcribe recordings, evaluate.")
ModelPath = Annotated[Path, typer.Option("--model", help="The model file.")]


@app.command()
def fit(
    data: Annotated[Path, typer.Option(help="The dataset written by `builder synth`.")] = Path("data/dataset.zarr"),
    model: ModelPath = Path("models/model.keras"),
    epochs: Annotated[Optional[int], typer.Option(help="Epochs (params: fit.epochs).")] = None,
    arch: Annotated[Optional[str], typer.Option(help="Architecture: context (default) or reference.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Batch size (params: fit.batch_size).")] = None,
    params_file: ParamsFile = DEFAULT_PARAMS,
    debug: Debug = False,
) -> None:
    """Train on the store's train split, scoring the test split each epoch; resumes an interrupted fit."""
    from trainer import fit as fit_module

    def body() -> None:
        settings = apply_overrides(section(load_params(params_file), "fit", fit_module.DEFAULT_SETTINGS),
                                   {"epochs": epochs, "arch": arch, "batch_size": batch_size})
        fit_module.fit(data, model, settings, metrics_dir=Path("metrics"), console=console)

    run_reporting_errors(body, debug)


OnsetThreshold = Annotated[Optional[float], typer.Option(
    help="Onset probability a note must reach to start (params: evaluate.onset_threshold; else the model's).")]
FrameThreshold = Annotated[Optional[float], typer.Option(
    help="Frame probability a note must keep to go on sounding (params: evaluate.frame_threshold; else the model's).")]
MinNote = Annotated[Optional[float], typer.Option(
    "--min-note", help="Shortest note kept, seconds (params: evaluate.min_note_seconds; else the model's).")]


@app.command()
def infer(
    files: Annotated[list[Path], typer.Argument(help="Audio files (wav, flac, ogg; any rate, mono or stereo).")],
    model: ModelPath = Path("models/model.keras"),
    out_dir: Annotated[Optional[Path], typer.Option(help="Where to write NAME.{mid,csv,npz,png} (default: beside each input).")] = None,
    onset_threshold: OnsetThreshold = None,
    frame_threshold: FrameThreshold = None,
    min_note: MinNote = None,
    params_file: ParamsFile = DEFAULT_PARAMS,
    debug: Debug = False,
) -> None:
    """Transcribe recordings to MIDI, CSV, per-frame arrays and a piano-roll picture."""
    from trainer import evaluate as evaluate_module
    from trainer import infer as infer_module
    from trainer.transcribe import DecodeSettings, FrameModel

    def report(result) -> None:
        if result.error is not None:
            console.print(f"[red]error:[/red] {result.error}", soft_wrap=True)
            return
        transcription = result.transcription
        stem = infer_module.output_stem(result.path, out_dir)
        console.print(f"{result.path}: {len(transcription.notes)} notes in {transcription.audio_seconds:.1f} s of audio, "
                      f"transcribed in {transcription.wall_seconds:.2f} s ({transcription.speed:.0f}x realtime) "
                      f"-> {stem}.{{mid,csv,npz,png}}", soft_wrap=True)

    def body() -> int:
        settings = apply_overrides(section(load_params(params_file), "evaluate", evaluate_module.DEFAULT_SETTINGS),
                                   {"onset_threshold": onset_threshold, "frame_threshold": frame_threshold,
                                    "min_note_seconds": min_note})
        frame_model = FrameModel.load(model)
        decode = DecodeSettings.resolve(settings, frame_model.info)
        results = infer_module.infer_files(files, frame_model, decode, out_dir, report=report)
        done = [result for result in results if result.error is None]
        audio_seconds = sum(result.transcription.audio_seconds for result in done)
        wall_seconds = sum(result.transcription.wall_seconds for result in done)
        speed = f"{audio_seconds / wall_seconds:.0f}x realtime" if wall_seconds > 0 else "-"
        console.print(f"{len(done)} of {len(results)} files transcribed: "
                      f"{sum(len(result.transcription.notes) for result in done)} notes, {audio_seconds:.1f} s of audio "
                      f"in {wall_seconds:.2f} s ({speed})", soft_wrap=True)
        return len(results) - len(done)

    failed = run_reporting_errors(body, debug)
    if failed:
        raise typer.Exit(1)


@app.command()
def evaluate(
    model: ModelPath = Path("models/model.keras"),
    data: Annotated[Path, typer.Option(help="The dataset whose test split (pieces, banks) is evaluated.")] = Path("data/dataset.zarr"),
    pieces: Annotated[Optional[int], typer.Option(help="Test pieces rendered and transcribed (params: evaluate.pieces).")] = None,
    max_seconds: Annotated[Optional[float], typer.Option(help="Seconds of each piece (params: evaluate.max_seconds).")] = None,
    onset_threshold: OnsetThreshold = None,
    frame_threshold: FrameThreshold = None,
    min_note: MinNote = None,
    eval_dir: Annotated[Path, typer.Option(help="Where the rendered test audio, references and transcriptions go.")] = Path("data/eval"),
    metrics_dir: Annotated[Path, typer.Option(help="Where eval.json and eval_roll.png go.")] = Path("metrics"),
    params_file: ParamsFile = DEFAULT_PARAMS,
    debug: Debug = False,
) -> None:
    """Render the test pieces through the test banks, transcribe them, score with mir_eval."""
    from trainer import evaluate as evaluate_module
    from trainer.transcribe import FrameModel

    def body() -> None:
        settings = apply_overrides(section(load_params(params_file), "evaluate", evaluate_module.DEFAULT_SETTINGS),
                                   {"pieces": pieces, "max_seconds": max_seconds, "onset_threshold": onset_threshold,
                                    "frame_threshold": frame_threshold, "min_note_seconds": min_note})
        frame_model = FrameModel.load(model)
        with console.status("evaluating") as status:
            result = evaluate_module.evaluate(frame_model, data, Path("data"), eval_dir, metrics_dir, settings,
                                              progress=status.update)
        for piece_id, scores in result.scores["pieces"].items():
            console.print(f"  {piece_id:40s} frame F1 {scores['frame_f1']:.3f}  note-onset F1 {scores['note_f1']:.3f}  "
                          f"({scores['reference_notes']} notes, {scores['estimated_notes']} found)", soft_wrap=True)
        overall = result.scores["overall"]
        console.print(f"overall ({overall['pieces']} pieces, {overall['audio_seconds']:.0f} s): "
                      f"frame P/R/F1 {overall['frame_precision']:.3f}/{overall['frame_recall']:.3f}/"
                      f"{overall['frame_f1']:.3f}, note-onset P/R/F1 {overall['note_precision']:.3f}/"
                      f"{overall['note_recall']:.3f}/{overall['note_f1']:.3f}, {overall['speed_x_realtime']}x realtime",
                      soft_wrap=True)
        registers = result.scores["frame_f1_by_register"]
        console.print("frame F1 by register: " + ", ".join(f"{name} {scores['frame_f1']:.2f}"
                                                           for name, scores in registers.items()), soft_wrap=True)
        console.print(f"wrote {metrics_dir / 'eval.json'}, {metrics_dir / 'eval_roll.png'} ({result.roll_piece_id}), "
                      f"audio and transcriptions in {eval_dir}", soft_wrap=True)

    run_reporting_errors(body, debug)


if __name__ == "__main__":
    app()
