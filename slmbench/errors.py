"""One exception type for every user-facing error.

The CLI catches :class:`SlmbenchError` and prints its message as one line, exit code 2; anything
else is a bug and keeps its traceback.  Messages name the file/field and say what to do.
"""


class SlmbenchError(Exception):
    """A problem the user can fix (bad input, missing file, unreachable hub...)."""

    def __init__(self, message: str):
        # Keep the message on one line: the CLI prints it as is.
        super().__init__(" ".join(str(message).split()))
