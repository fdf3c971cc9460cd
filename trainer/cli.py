"""``trainer``: fit the CNN, transcribe recordings, evaluate. Parses, reads params, calls, prints.

TensorFlow is imported inside the commands, so ``trainer --help`` stays instant.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from builder.cli_support import console, run_reporting_errors
from builder.params import DEFAULT_PARAMS, apply_overrides, load_params, section

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

app = typer.Typer(
    help="Train the transcription model on the synthesized dataset, transcribe recordings, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")]
ParamsFile = Annotated[Path, typer.Option("--params", help="The params file to read.")]
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


@app.command()
def infer(
    files: Annotated[list[Path], typer.Argument(help="Audio files (wav, flac, ogg; any rate, mono or stereo).")],
    model: ModelPath = Path("models/model.keras"),
    out_dir: Annotated[Optional[Path], typer.Option(help="Where to write NAME.{mid,csv,npz,png} (default: beside each input).")] = None,
    params_file: ParamsFile = DEFAULT_PARAMS,
    debug: Debug = False,
) -> None:
    """Transcribe recordings to MIDI, CSV, per-frame arrays and a piano-roll picture."""
    raise NotImplementedError("issue 6")


@app.command()
def evaluate(
    model: ModelPath = Path("models/model.keras"),
    params_file: ParamsFile = DEFAULT_PARAMS,
    debug: Debug = False,
) -> None:
    """Render the test pieces through the test banks, transcribe them, score with mir_eval."""
    raise NotImplementedError("issue 6")


if __name__ == "__main__":
    app()
