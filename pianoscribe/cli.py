"""What both CLIs share: one-line errors, ``--debug`` tracebacks, a console for progress."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml
from rich.console import Console

from pianoscribe.errors import UserError, one_line
from pianoscribe.storage import StoreLocation

T = TypeVar("T")
FILE_SYSTEM_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}

console = Console(stderr=True, highlight=False)

Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")]
ParamsFile = Annotated[
    Path | None,
    typer.Option(
        "--params", help="The params file to read (default: ./params.yaml if present, else built-in defaults)."
    ),
]

StorageOptions = Annotated[
    list[str] | None,
    typer.Option(
        "--storage-option",
        metavar="KEY=VALUE",
        help="An fsspec storage option for a store at a URL, e.g. endpoint_url=http://127.0.0.1:9000 or anon=true "
        "(repeatable; values read as YAML). Credentials otherwise come the backend's usual way (AWS_* variables).",
    ),
]


def make_app(help_text: str) -> typer.Typer:
    """A Typer app as both CLIs want it: help on no arguments, our own one-line errors, no completion noise."""
    return typer.Typer(help=help_text, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def run_reporting_errors(action: Callable[[], T], debug: bool) -> T:
    """Run a command body; turn expected failures into ``error: ...`` and exit code 1.

    Expected failures are :class:`UserError` and the OS errors of the file system (a bad path, no permission, a
    full disk: ``OSError`` with a file name), wherever they surface. Anything else is a bug and keeps its
    traceback. Ctrl-C exits 130 without a traceback.
    """
    try:
        return action()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        sys.exit(130)
    except (UserError, OSError) as error:
        if debug or not expected(error):
            raise
        console.print(f"[red]error:[/red] {one_line(error)}", soft_wrap=True)
        sys.exit(1)


def store_location(text: str, storage_options: list[str] | None) -> StoreLocation:
    """A store argument (a path or a URL) with its ``--storage-option KEY=VALUE`` pairs."""
    options: dict[str, Any] = {}
    for pair in storage_options or []:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise UserError(f"--storage-option: expected KEY=VALUE, got {pair!r}")
        try:
            options[key.strip()] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError as error:
            raise UserError(f"--storage-option {key}: cannot read the value {value!r} ({error})") from error
    location = StoreLocation(text, options)
    if options and not location.is_remote:
        raise UserError(f"--storage-option: {text} is a local path; storage options are for a store at a URL")
    return location


def expected(error: BaseException) -> bool:
    """A failure the user can act on: ours, or an OS error that names a file (or a full disk / quota)."""
    if isinstance(error, UserError):
        return True
    return isinstance(error, OSError) and (error.filename is not None or error.errno in FILE_SYSTEM_ERRNOS)
