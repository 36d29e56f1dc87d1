"""Durations as people read them, and time-left estimates for batch work."""

from __future__ import annotations

import math
import time


def format_seconds(seconds: float | None) -> str:
    """``75`` -> ``"1 min 15 s"``; ``None`` -> ``"-"``."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class EtaEstimator:
    """Time left from the rate of the items finished in this run.

    Items done before the run started (a resumed batch) do not count towards the rate.
    """

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._start: float | None = None
        self._first_done = 0

    def eta(self, done: int, total: int) -> float | None:
        now = self._clock()
        if self._start is None:
            self._start, self._first_done = now, done
            return None
        finished = done - self._first_done
        if finished <= 0:
            return None
        return (now - self._start) / finished * max(0, total - done)
