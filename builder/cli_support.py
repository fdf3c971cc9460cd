"""What both CLIs share: one-line errors, ``--debug`` tracebacks, a console for progress."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

from rich.console import Console

from builder.errors import UserError

T = TypeVar("T")

console = Console(stderr=True, highlight=False)


def run_reporting_errors(action: Callable[[], T], debug: bool) -> T:
    """Run a command body; turn expected failures into ``error: ...`` and exit code 1.

    Expected failures are :class:`UserError` and the OS errors a bad path produces. Anything else is a
    bug and keeps its traceback. Ctrl-C exits 130 without a traceback.
    """
    try:
        return action()
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        sys.exit(130)
    except (UserError, FileNotFoundError, IsADirectoryError, PermissionError, NotADirectoryError) as error:
        if debug:
            raise
        console.print(f"[red]error:[/red] {_one_line(error)}", soft_wrap=True)
        sys.exit(1)


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    return " ".join(str(error).split())
