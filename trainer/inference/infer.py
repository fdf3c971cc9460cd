"""``trainer infer``: many recordings, one loaded model; each file transcribed and written on its own.

A bad file is reported and skipped (its ``UserError`` line is kept in the result), so one corrupt recording
in a batch does not lose the others; the caller turns "any failed" into the exit code. Outputs never replace
an existing file unless ``overwrite`` (``trainer infer song.wav`` beside a ``song.mid`` the user wrote must not
destroy it), and a file's outputs (``.mid``, ``.csv``, ``.npz``, with ``png`` also ``.png``) appear together or
not at all.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
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


def concurrency(n_files: int, jobs: int = 0, cores: int | None = None) -> tuple[int, int]:
    """``(files transcribed at once, onnxruntime threads per model call)`` for ``jobs`` (0: choose).

    By default one file per core, each model call on one core: a 2-core machine transcribes 1.5x as many files
    per second that way as one file at a time on both cores (a second onnxruntime thread speeds a call up only
    1.5x, and reading, features and writing the outputs overlap the other file's model calls). One file gets
    every core."""
    cores = max(int(cores or os.cpu_count() or 1), 1)
    jobs = int(jobs) if jobs and jobs > 0 else cores
    jobs = max(min(jobs, n_files), 1)
    return jobs, (0 if jobs == 1 else max(cores // jobs, 1))


def infer_files(
    paths: list[Path],
    frame_model: FrameModel,
    decode: DecodeSettings,
    out_dir: Path | None,
    report: Callable[[FileResult], None] = lambda result: None,
    overwrite: bool = False,
    png: bool = False,
    jobs: int = 1,
) -> list[FileResult]:
    """Transcribe each file and write ``NAME.{mid,csv,npz}`` (and ``NAME.png`` with ``png``); ``report`` is called
    after each file, in input order.

    ``jobs`` files are transcribed at once (threads: onnxruntime, TensorFlow, the engine and soundfile release
    the GIL); outputs are written one file at a time by the caller's thread, in order (matplotlib's pyplot is
    not thread-safe), while the next files are transcribed."""
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise UserError(f"{out_dir}: --out-dir is a file, not a folder")
    results = [FileResult(path=Path(path)) for path in paths]
    claimed: dict[Path, Path] = {}  # output stem -> the input that writes it
    for result in results:
        try:
            _check_outputs(result.path, out_dir, claimed, overwrite, png)
        except (UserError, OSError) as error:
            result.error = one_line(error)
    jobs = max(int(jobs), 1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        pending: collections.deque[concurrent.futures.Future] = collections.deque()  # in input order
        todo = iter([result.path for result in results if result.error is None])
        for result in results:
            while len(pending) <= jobs:  # a bounded window: at most jobs + 1 transcriptions held
                upcoming = next(todo, None)
                if upcoming is None:
                    break
                pending.append(pool.submit(transcribe_file, upcoming, frame_model, decode))
            if result.error is None:
                future = pending.popleft()
                try:
                    transcription = future.result()
                    started = time.perf_counter()
                    result.written = outputs.write_outputs(
                        output_stem(result.path, out_dir),
                        transcription,
                        title=f"{result.path.name}: key amplitude",
                        png=png,
                    )
                    result.transcription = transcription
                    result.total_wall_seconds = transcription.wall_seconds + time.perf_counter() - started
                except (UserError, OSError) as error:
                    result.error = one_line(error)
            report(result)
    return results


def _check_outputs(path: Path, out_dir: Path | None, claimed: dict[Path, Path], overwrite: bool, png: bool) -> None:
    """Refuse, before any work, an input whose outputs would collide with another's or replace existing files."""
    stem = output_stem(path, out_dir)
    if stem.resolve() in claimed:
        raise UserError(
            f"{path}: its outputs {stem}.* would overwrite those of {claimed[stem.resolve()]} "
            f"(same name); transcribe it separately or with another --out-dir"
        )
    claimed[stem.resolve()] = Path(path)
    existing = [output for output in outputs.output_paths(stem, png) if output.exists()]
    if existing and not overwrite:
        raise UserError(f"{existing[0]}: exists; give --overwrite to replace {path}'s outputs, or another --out-dir")
