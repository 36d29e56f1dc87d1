"""Checking where a command will write, before any work starts.

A run that decodes for minutes and then fails to write its answer wastes the user's time,
and the ``OSError`` it gets is a traceback to them. Commands call these checks first (they
need nothing heavier than ``os``), so a bad output path is one line naming the path and
the reason, given at once.
"""

from __future__ import annotations

import os
from pathlib import Path

from avsc_core.errors import AvscError


def nearest_existing(path: Path) -> Path:
    """``path`` or the first of its parents that exists."""
    current = path
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def _check_creatable(path: Path, what: str) -> None:
    """Refuse a ``path`` whose nearest existing parent is not a writable folder."""
    base = nearest_existing(path.parent if path.parent != Path("") else Path("."))
    if not base.is_dir():
        raise AvscError(f"{path}: cannot write the {what}: {base} is not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise AvscError(f"{path}: cannot write the {what}: {base} is not writable")
    # Pseudo-filesystems (/proc, /sys) pass os.access for root but refuse new files.
    probe = base / f".avsc-write-test-{os.getpid()}"
    try:
        probe.mkdir()
    except FileExistsError:
        pass
    except OSError as exc:
        reason = (os.strerror(exc.errno) if exc.errno else str(exc)).lower()
        raise AvscError(
            f"{path}: cannot write the {what}: {base} does not accept new files ({reason})"
        ) from None
    else:
        probe.rmdir()


def check_output_file(path: str | Path, what: str = "output") -> Path:
    """Make sure a file can be written at ``path`` (folders above it may be created).

    Parameters
    ----------
    path : str or Path
    what : str
        What the file is, for the message (``"labels CSV"``, ``"JSON report"``).

    Raises
    ------
    AvscError
        ``path`` is a folder, is an existing read-only file, or sits where no file can be
        created (a read-only or pseudo filesystem, below a file).
    """
    path = Path(path)
    if path.is_dir():
        raise AvscError(f"{path}: is a folder; give a file name for the {what}")
    if path.exists() and not os.access(path, os.W_OK):
        raise AvscError(f"{path}: cannot write the {what}: the file is read-only")
    _check_creatable(path, what)
    return path


def check_output_folder(path: str | Path, what: str = "output folder") -> Path:
    """Make sure ``path`` is, or can be created as, a writable folder.

    Raises
    ------
    AvscError
        ``path`` is a file, or cannot be created or written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise AvscError(f"{path}: is a file; the {what} must be a folder")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise AvscError(f"{path}: cannot write the {what}: permission denied")
        _check_creatable(path / "x", what)
        return path
    _check_creatable(path, what)
    return path
