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
        self._last_stage = None

    def __call__(self, event: Progress) -> None:
        if not self.enabled:
            return
        if event.stage != self._last_stage:
            if self._last_stage is not None:
                self.stream.write("\n")
            self._last_stage = event.stage
            self._start = time.monotonic()
        if event.total:
            frac = min(1.0, event.done / event.total)
            filled = int(frac * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            elapsed = time.monotonic() - self._start
            eta = elapsed / frac - elapsed if frac > 0 else 0.0
            text = f"\r{event.stage}: [{bar}] {event.done}/{event.total} ETA {eta:4.0f}s"
        else:
            text = f"\r{event.stage}: {event.done}"
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._last_stage is not None:
            self.stream.write("\n")
            self.stream.flush()
        self._last_stage = None
