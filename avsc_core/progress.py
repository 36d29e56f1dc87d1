"""Progress reporting through plain callbacks.

Core functions take ``progress: ProgressCallback | None`` and call it with a
:class:`Progress`; the CLI turns that into a bar on stderr, the GUI into signals.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO


@dataclass(frozen=True)
class Progress:
    """One progress event.

    ``done`` out of ``total`` units (``total`` may be ``None`` when unknown) of the task
    named ``stage``; ``info`` carries task-specific values (metrics, current file...).
    """

    stage: str
    done: int
    total: int | None = None
    info: dict = field(default_factory=dict)


ProgressCallback = Callable[[Progress], None]


class Cancelled(Exception):
    """Raised inside a core function when its cancel flag was set."""


class TerminalProgress:
    """A progress bar on a terminal stream; silent when the stream is not a terminal."""

    def __init__(self, stream: TextIO | None = None, width: int = 30):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.width = width
        self._start = time.monotonic()
        self._first_done = 0
        self._last_stage = None

    def __call__(self, event: Progress) -> None:
        if not self.enabled:
            return
        if event.stage != self._last_stage:
            if self._last_stage is not None:
                self.stream.write("\n")
            self._last_stage = event.stage
            self._start = time.monotonic()
            # Units done when the stage starts (clips already cached, a resumed run) took
            # no time here: the rate counts only those done since.
            self._first_done = event.done
        if event.total:
            frac = min(1.0, event.done / event.total)
            filled = int(frac * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            finished = event.done - self._first_done
            eta = "?"
            if finished > 0:
                rate = finished / max(time.monotonic() - self._start, 1e-9)
                eta = _duration(max(0, event.total - event.done) / rate)
            text = f"\r{event.stage}: [{bar}] {event.done}/{event.total} ETA {eta:>7}"
        else:
            text = f"\r{event.stage}: {event.done}"
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._last_stage is not None:
            self.stream.write("\n")
            self.stream.flush()
        self._last_stage = None


def _duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``: short enough for a progress line."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
