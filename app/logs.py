"""Logging to a rotating file in the user log dir (the GUI has no terminal to print to)."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from app.paths import log_dir

FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"


def setup_logging(name: str = "gui", level: int = logging.INFO) -> Path | None:
    """Send log records of this process to ``<log dir>/<name>.log``.

    Returns the log file, or ``None`` when the log dir cannot be written (the app still
    runs; records then go to stderr).
    """
    root = logging.getLogger()
    root.setLevel(level)
    try:
        folder = log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.log"
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=2_000_000, backupCount=3, encoding="utf-8"
        )
    except OSError:
        path = None
        handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    if not any(getattr(h, "_avsc", False) for h in root.handlers):
        handler._avsc = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    return path
