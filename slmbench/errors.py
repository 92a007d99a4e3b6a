"""The exception types of every user-facing error, and one-line warnings.

The CLI catches :class:`SlmbenchError` and prints its message as one line, exit code 2; anything
else is a bug and keeps its traceback.  Messages name the file/field and say what to do.  The
subclasses let a caller of the Python API tell the kinds apart (``except ModelFetchError``).
"""

from __future__ import annotations

import sys
from typing import TextIO


class SlmbenchError(Exception):
    """A problem the user can fix (bad input, missing file, unreachable hub...)."""

    def __init__(self, message: str):
        # Keep the message on one line: the CLI prints it as is.
        super().__init__(" ".join(str(message).split()))


class ConfigError(SlmbenchError):
    """Bad settings, suite, catalog or targets: nothing was measured."""


class ModelFetchError(SlmbenchError):
    """A model file could not be had: download, hub, cache, synthesis."""


class ModelLoadError(SlmbenchError):
    """A model file exists but cannot be read or loaded (not GGUF, truncated, unsupported)."""


class MeasurementError(SlmbenchError):
    """llama.cpp failed while measuring (decode error, context full, out of memory)."""


class ProfileError(SlmbenchError):
    """An operator profile cannot be taken: this llama-cpp-python or backend does not expose or
    call the scheduler's evaluation callback, or its tensor layout is not the one known."""


class HubError(SlmbenchError):
    """Sharing results through the Hugging Face hub failed: auth, a missing dataset, a rejected
    commit, the network or offline mode (`slmbench push` / `pull`, hf:// paths)."""


class ResultsFormatError(SlmbenchError):
    """A results directory or file cannot be read (missing, newer schema, not a run)."""


def warn(message: str, stream: TextIO | None = None) -> None:
    """A user-facing warning: one clean line on stderr (not Python's ``UserWarning`` with a
    source line), e.g. ``slmbench: warning: results.jsonl:7: skipped malformed line``."""
    out = stream or sys.stderr
    out.write("slmbench: warning: " + " ".join(str(message).split()) + "\n")
    out.flush()
