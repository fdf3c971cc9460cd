"""What both CLIs share: one-line errors, ``--debug`` tracebacks, a console for progress."""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from pianoscribe.errors import UserError, one_line

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


def expected(error: BaseException) -> bool:
    """A failure the user can act on: ours, or an OS error that names a file (or a full disk / quota)."""
    if isinstance(error, UserError):
        return True
    return isinstance(error, OSError) and (error.filename is not None or error.errno in FILE_SYSTEM_ERRNOS)
