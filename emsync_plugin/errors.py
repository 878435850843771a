"""The one error family of emsync.

Every error a user can cause (a bad file, missing media, an impossible option) is an
``EmsyncError``: the CLI prints its one-line message and exits with status 2, without a
traceback unless ``--debug``. Messages name the file and say what to do, in the manner of
PySceneDetect: ``"<file>: <what is wrong>. <how to fix it>"``.
"""
from __future__ import annotations

from pathlib import Path


class EmsyncError(Exception):
    """Base class of every error emsync raises on purpose."""

    exit_code = 2
    #: True when a reader failed in a way it did not foresee (see ``timeline.io.read_edit``).
    unexpected = False

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None):
        self.path = Path(path) if path is not None else None
        self.reason = message.rstrip(".")
        self.hint = hint
        super().__init__(self._format())

    def _format(self) -> str:
        text = f"{self.path}: {self.reason}" if self.path is not None else self.reason
        if self.hint:
            hint = self.hint.rstrip(".")
            text += f". {hint[:1].upper()}{hint[1:]}."
        else:
            text += "."
        return " ".join(text.split())  # always one line


class TimelineError(EmsyncError):
    """A timeline file is missing, unsupported, truncated, malformed or unusable."""


class MediaError(EmsyncError):
    """Media a timeline refers to is missing or cannot be decoded."""


class OptionsError(EmsyncError):
    """An option has an impossible value (validated before any work starts)."""


class RenderError(EmsyncError):
    """The score could not be rendered to audio."""


class ModelError(EmsyncError):
    """A shipped model is missing, corrupt (checksum) or cannot be loaded."""
