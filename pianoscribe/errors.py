"""The one exception type that reaches a user as a one-line message instead of a traceback."""


class UserError(Exception):
    """Bad input from the user: a file, a parameter or a store that cannot be used.

    The message must name the file or parameter and say what is wrong with it, in one line.
    CLIs print it and exit with a non-zero code; ``--debug`` shows the traceback.
    """


def one_line(error: BaseException) -> str:
    """The message a user sees for an expected failure: one line, naming the file for an OS error."""
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror or error}"
    return " ".join(str(error).split())
