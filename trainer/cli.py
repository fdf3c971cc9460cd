"""``trainer``: fit the CNN, transcribe recordings, evaluate. Parses, reads params, calls, prints.

TensorFlow is imported inside the commands that need it, so ``trainer --help`` stays instant, and ``trainer infer``
with an ONNX model never imports it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, TaskID

from pianoscribe.cli import Debug, ParamsFile, StorageOptions, console, make_app, run_reporting_errors, store_location
from pianoscribe.params import apply_overrides, load_params

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

app = make_app("Train the transcription model on the synthesized dataset, transcribe recordings, evaluate.")
ModelPath = Annotated[Path, typer.Option("--model", help="The model file.")]
RunModelPath = Annotated[
    Path, typer.Option("--model", help="The model file: .keras (its current ONNX twin NAME.onnx runs it) or .onnx.")
]
Backend = Annotated[
    str,
    typer.Option(
        help="auto: onnxruntime on the ONNX twin when it was exported from this .keras, else Keras; onnx; keras."
    ),
]
DataStore = Annotated[
    str,
    typer.Option(
        "--data", help="The dataset written by `builder synth`: a folder or a URL (s3://bucket/key.zarr, gs://, ...)."
    ),
]


def _warn(message: str) -> None:
    console.print(f"[yellow]warning:[/yellow] {message}", soft_wrap=True)


class _RichFitReport:
    """A ``trainer.fit.FitReport`` drawn on the console: a progress bar per epoch and one line of scores."""

    def __init__(self) -> None:
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def message(self, text: str) -> None:
        console.print(text)

    def epoch_begin(self, epoch: int, epochs: int, steps: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        if self.progress is None:
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            self.progress.start()
        self.task = self.progress.add_task(f"epoch {epoch + 1}/{epochs}", total=steps, loss="-")

    def batch_end(self, loss: float | None) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, advance=1, loss="-" if loss is None else f"{loss:.4f}")

    def epoch_end(self, epoch: int, epochs: int, logs: dict) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.remove_task(self.task)
        if "val_loss" not in logs:  # trainer fit-offline: training losses only
            console.print(
                f"epoch {epoch + 1}/{epochs}: loss {logs.get('loss', float('nan')):.4f}  "
                f"(active {logs.get('active_loss', float('nan')):.4f}, "
                f"onset {logs.get('onset_loss', float('nan')):.4f})"
            )
            return
        console.print(
            f"epoch {epoch + 1}/{epochs}: loss {logs.get('loss', float('nan')):.4f}  "
            f"test: loss {logs.get('val_loss', float('nan')):.4f}  "
            f"frame P/R/F1 {logs.get('val_frame_precision', 0):.3f}/"
            f"{logs.get('val_frame_recall', 0):.3f}/{logs.get('val_frame_f1', 0):.3f}  "
            f"onset F1 {logs.get('val_onset_f1', 0):.3f}  energy MAE {logs.get('val_energy_mae', 0):.3f}"
        )

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


@app.command()
def fit(
    data: DataStore = "data/dataset.zarr",
    model: ModelPath = Path("models/model.keras"),
    epochs: Annotated[int | None, typer.Option(help="Epochs (params: fit.epochs).")] = None,
    arch: Annotated[str | None, typer.Option(help="Architecture: context (default) or reference.")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Batch size in slices, per replica (params: fit.batch_size).")
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(help="default (one device) or mirrored (every visible GPU) (params: fit.strategy)."),
    ] = None,
    storage_option: StorageOptions = None,
    params_file: ParamsFile = None,
    debug: Debug = False,
) -> None:
    """Train on the store's train split, scoring the test split each epoch; resumes an interrupted fit."""
    from trainer.fit import fit as fit_model

    def body() -> None:
        settings = apply_overrides(
            load_params(params_file).section("fit", _warn),
            {"epochs": epochs, "arch": arch, "batch_size": batch_size, "strategy": strategy},
        )
        location = store_location(data, storage_option)
        fit_model(location, model, settings, metrics_dir=Path("metrics"), report=_RichFitReport())

    run_reporting_errors(body, debug)


@app.command("fit-offline")
def fit_offline(
    data: DataStore = "data/dataset.zarr",
    model: Annotated[
        Path, typer.Option(help="The streaming model the offline pass reads (written by trainer fit).")
    ] = Path("models/model.keras"),
    out: Annotated[
        Path, typer.Option(help="The offline model to write (.keras; its ONNX twin goes beside it).")
    ] = Path("models/offline.keras"),
    storage_option: StorageOptions = None,
    params_file: ParamsFile = None,
    debug: Debug = False,
) -> None:
    """Train the offline pass over the streaming model's heads (1.4 s ahead and back) and write the offline model."""
    from trainer.fit.offline import fit_offline as fit_offline_model

    def body() -> None:
        settings = load_params(params_file).section("offline", _warn)
        location = store_location(data, storage_option)
        fit_offline_model(location, model, out, settings, metrics_dir=Path("metrics"), report=_RichFitReport())

    run_reporting_errors(body, debug)


OnsetThreshold = Annotated[
    float | None,
    typer.Option(
        help="Onset probability a note must reach to start, with decode.onset_neighbour_weight of its larger "
        "neighbouring frame added (params: decode.onset_threshold, decode.offline for an offline model; null: the "
        "model's)."
    ),
]
FrameThreshold = Annotated[
    float | None,
    typer.Option(
        help="Frame probability a note must keep to go on sounding (params: decode.frame_threshold; null: the model's)."
    ),
]
MinNote = Annotated[
    float | None,
    typer.Option(
        "--min-note", help="Shortest note kept, seconds (params: decode.min_note_seconds; null: the model's)."
    ),
]


def _decode_settings(params, info, onset_threshold, frame_threshold, min_note):
    """The ``decode`` section for this model with the flags given over it, resolved against the model file's own
    values."""
    from trainer.inference.decode import DecodeSettings

    flags = {"onset_threshold": onset_threshold, "frame_threshold": frame_threshold, "min_note_seconds": min_note}
    return DecodeSettings.resolve(params.section("decode", _warn), info, flags)


@app.command()
def export(
    model: ModelPath = Path("models/model.keras"),
    out: Annotated[Path | None, typer.Option(help="The ONNX file (default: NAME.onnx beside the model).")] = None,
    debug: Debug = False,
) -> None:
    """Write the ONNX twin of a .keras model (trainer fit does it too), for inference without TensorFlow."""
    from trainer.model.onnx_file import export_onnx

    def body() -> None:
        with console.status(f"exporting {model}"):
            written = export_onnx(model, out)
        console.print(f"wrote {written}", soft_wrap=True)

    run_reporting_errors(body, debug)


@app.command()
def infer(
    files: Annotated[list[Path], typer.Argument(help="Audio files (wav, flac, ogg; any rate, mono or stereo).")],
    model: RunModelPath = Path("models/model.keras"),
    backend: Backend = "auto",
    out_dir: Annotated[
        Path | None, typer.Option(help="Where to write NAME.{mid,csv,npz} (default: beside each input).")
    ] = None,
    png: Annotated[
        bool, typer.Option("--png", help="Also draw the piano roll, NAME.png (matplotlib: ~0.5 s per file).")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace existing outputs (default: refuse, per file).")
    ] = False,
    jobs: Annotated[
        int,
        typer.Option(
            min=0,
            help="Files transcribed at once (0: one per CPU core, each on one core; 1: one at a time, all cores).",
        ),
    ] = 0,
    onset_threshold: OnsetThreshold = None,
    frame_threshold: FrameThreshold = None,
    min_note: MinNote = None,
    params_file: ParamsFile = None,
    debug: Debug = False,
) -> None:
    """Transcribe recordings to MIDI, CSV and per-frame arrays (and, with --png, a piano-roll picture)."""
    from trainer.inference import infer as infer_module
    from trainer.inference.frame_model import FrameModel

    suffixes = "{mid,csv,npz,png}" if png else "{mid,csv,npz}"

    def report(result) -> None:
        if result.error is not None:
            console.print(f"[red]error:[/red] {result.error}", soft_wrap=True)
            return
        transcription = result.transcription
        stem = infer_module.output_stem(result.path, out_dir)
        console.print(
            f"{result.path}: {len(transcription.notes)} notes in {transcription.audio_seconds:.1f} s of audio, "
            f"transcribed in {transcription.wall_seconds:.2f} s ({transcription.speed:.0f}x realtime) "
            f"-> {stem}.{suffixes}",
            soft_wrap=True,
        )

    def body() -> int:
        params = load_params(params_file)
        files_at_once, threads = infer_module.concurrency(len(files), jobs)
        frame_model = FrameModel.load(model, backend, warn=_warn, threads=threads)
        decode = _decode_settings(params, frame_model.info, onset_threshold, frame_threshold, min_note)
        started = time.perf_counter()
        results = infer_module.infer_files(
            files, frame_model, decode, out_dir, report=report, overwrite=overwrite, png=png, jobs=files_at_once
        )
        wall_seconds = time.perf_counter() - started
        done = [result.transcription for result in results if result.transcription is not None]
        audio_seconds = sum(transcription.audio_seconds for transcription in done)
        speed = f"{audio_seconds / wall_seconds:.0f}x realtime" if wall_seconds > 0 else "-"
        console.print(
            f"{len(done)} of {len(results)} files transcribed: "
            f"{sum(len(transcription.notes) for transcription in done)} notes, {audio_seconds:.1f} s of audio "
            f"in {wall_seconds:.2f} s with outputs ({speed}, {files_at_once} at a time); "
            f"model {frame_model.network.path} ({frame_model.network.backend})",
            soft_wrap=True,
        )
        return len(results) - len(done)

    failed = run_reporting_errors(body, debug)
    if failed:
        raise typer.Exit(1)


@app.command()
def evaluate(
    model: RunModelPath = Path("models/model.keras"),
    offline_model: Annotated[
        Path | None,
        typer.Option(help="Also score this offline model (trainer fit-offline) on the same audio: eval_offline.json."),
    ] = None,
    backend: Backend = "auto",
    data: DataStore = "data/dataset.zarr",
    pieces: Annotated[
        int | None,
        typer.Option(help="Pieces per kind of music, to tune and again to report (params: evaluate.pieces_per_kind)."),
    ] = None,
    max_seconds: Annotated[
        float | None, typer.Option(help="Seconds of each piece (params: evaluate.max_seconds).")
    ] = None,
    onset_threshold: OnsetThreshold = None,
    frame_threshold: FrameThreshold = None,
    min_note: MinNote = None,
    eval_dir: Annotated[
        Path, typer.Option(help="Where the rendered test audio, references and transcriptions go.")
    ] = Path("data/eval"),
    metrics_dir: Annotated[Path, typer.Option(help="Where eval.json, eval_pieces.json and eval_roll.png go.")] = Path(
        "metrics"
    ),
    storage_option: StorageOptions = None,
    params_file: ParamsFile = None,
    debug: Debug = False,
) -> None:
    """Render held-out pieces of each kind of music through unheard pianos, transcribe them, score with mir_eval."""
    from trainer.evaluation import evaluate as evaluate_module
    from trainer.evaluation.report import summary_lines
    from trainer.inference.frame_model import FrameModel

    def body() -> None:
        params = load_params(params_file)
        settings = apply_overrides(
            params.section("evaluate", _warn), {"pieces_per_kind": pieces, "max_seconds": max_seconds}
        )
        frame_model = FrameModel.load(model, backend, warn=_warn)
        decode = _decode_settings(params, frame_model.info, onset_threshold, frame_threshold, min_note)
        offline = None
        if offline_model is not None:
            offline_frame_model = FrameModel.load(offline_model, backend, warn=_warn)
            offline_decode = _decode_settings(
                params, offline_frame_model.info, onset_threshold, frame_threshold, min_note
            )
            offline = (offline_frame_model, offline_decode)
        with console.status("evaluating") as status:
            results = evaluate_module.evaluate(
                frame_model,
                decode,
                store_location(data, storage_option),
                Path("data"),
                eval_dir,
                metrics_dir,
                settings,
                progress=status.update,
                offline=offline,
            )
        for name, result in results.items():
            prefix = "eval" if name == "model" else f"eval_{name}"
            console.print(f"[bold]{result.summary['model']['arch']} model[/bold] ({prefix}.json)", soft_wrap=True)
            for line in summary_lines(result.summary):
                console.print(line, soft_wrap=True)
            console.print(
                f"wrote {metrics_dir / (prefix + '.json')}, {metrics_dir / (prefix + '_pieces.json')}, "
                f"{metrics_dir / (prefix + '_roll.png')} ({result.roll_piece.piece_id} through "
                f"{result.roll_piece.bank})",
                soft_wrap=True,
            )
        console.print(f"audio and transcriptions in {eval_dir}", soft_wrap=True)

    run_reporting_errors(body, debug)


if __name__ == "__main__":
    app()
