"""Errors a user can act on.

Anything derived from :class:`AvscError` is reported by the CLI and the GUI as a one-line
message (exit code 1) instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path


class AvscError(Exception):
    """Base class for errors caused by the user's input, not by a bug."""


class UsageError(AvscError):
    """Options that cannot go together (``--epochs`` with ``--phase1-epochs``): the command
    line exits 2 for it, as for the usage errors argparse finds itself."""


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (its type when it has none): what a
    one-line report quotes of a library's multi-line error."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class MediaError(AvscError):
    """A media file cannot be read, or lacks what was asked of it.

    The message always names the file and the reason, e.g.
    ``"clip.mp4: no audio track"``.
    """

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class NoAudioError(MediaError):
    """The file has no audio stream (it may still be valid for the visual branch)."""

    def __init__(self, path: str | Path):
        super().__init__(path, "no audio track")


class NoVideoError(MediaError):
    """The file has no video stream (it may still be valid for the audio branch)."""

    def __init__(self, path: str | Path):
        super().__init__(path, "no video stream")


def failure_reason(exc: BaseException) -> str:
    """The reason part of a file's error, without the file's name: what a row of results
    that already names the file (a label CSV row, a ``classify --json`` object) says."""
    if isinstance(exc, MediaError):
        return exc.reason
    if isinstance(exc, AvscError):
        return str(exc)
    return f"unexpected error ({type(exc).__name__}: {exc})"
