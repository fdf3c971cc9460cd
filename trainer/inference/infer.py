"""``trainer infer``: many recordings, one loaded model; each file transcribed and written on its own.

A bad file is reported and skipped (its ``UserError`` line is kept in the result), so one corrupt recording
in a batch does not lose the others; the caller turns "any failed" into the exit code. Outputs never replace
an existing file unless ``overwrite`` (``trainer infer song.wav`` beside a ``song.mid`` the user wrote must not
destroy it), and a file's outputs (``.mid``, ``.csv``, ``.npz``, with ``png`` also ``.png``) appear together or
not at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pianoscribe.errors import UserError, one_line
from trainer.inference import outputs
from trainer.inference.decode import DecodeSettings
from trainer.inference.frame_model import FrameModel
from trainer.inference.transcribe import Transcription, transcribe_file


@dataclass
class FileResult:
    """What happened to one input: its transcription and outputs, or the one-line reason it failed."""

    path: Path
    transcription: Transcription | None = None
    written: list[Path] | None = None
    error: str | None = None
    total_wall_seconds: float = 0.0  # transcription plus writing the outputs


def output_stem(path: Path, out_dir: Path | None) -> Path:
    """``DIR/NAME`` for input ``NAME.ext`` (``DIR`` defaults to the input's folder)."""
    path = Path(path)
    return (Path(out_dir) if out_dir is not None else path.parent) / path.stem


def infer_files(
    paths: list[Path],
    frame_model: FrameModel,
    decode: DecodeSettings,
    out_dir: Path | None,
    report: Callable[[FileResult], None] = lambda result: None,
    overwrite: bool = False,
    png: bool = False,
) -> list[FileResult]:
    """Transcribe each file and write ``NAME.{mid,csv,npz}`` (and ``NAME.png`` with ``png``); ``report`` is called
    after each file."""
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise UserError(f"{out_dir}: --out-dir is a file, not a folder")
    results = []
    claimed: dict[Path, Path] = {}  # output stem -> the input that writes it
    for path in paths:
        started = time.perf_counter()
        result = FileResult(path=Path(path))
        try:
            stem = output_stem(path, out_dir)
            if stem.resolve() in claimed:
                raise UserError(
                    f"{path}: its outputs {stem}.* would overwrite those of {claimed[stem.resolve()]} "
                    f"(same name); transcribe it separately or with another --out-dir"
                )
            claimed[stem.resolve()] = Path(path)
            existing = [output for output in outputs.output_paths(stem, png) if output.exists()]
            if existing and not overwrite:
                raise UserError(
                    f"{existing[0]}: exists; give --overwrite to replace {path}'s outputs, or another --out-dir"
                )
            transcription = transcribe_file(path, frame_model, decode)
            result.written = outputs.write_outputs(
                stem, transcription, title=f"{Path(path).name}: key amplitude", png=png
            )
            result.transcription = transcription
        except (UserError, OSError) as error:
            result.error = one_line(error)
        result.total_wall_seconds = time.perf_counter() - started
        results.append(result)
        report(result)
    return results
