"""Atomic file writes: a temporary file beside the target, then ``os.replace``.

``tempfile.mkstemp`` creates its file readable by its owner only; the finished file gets
the mode a plain ``open()`` would have given it (0666 less the umask), so bundles, labels
and reports saved for a team can be read by it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file for writing that replaces ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # not on Windows, where mkstemp's mode is not 0600
            os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None and _disk_full(exc, path):
            # numpy and others report a short write without errno or file name.
            raise OSError(errno.ENOSPC, "no space left on the disk", str(path)) from exc
        raise


def _disk_full(exc: OSError, path: Path) -> bool:
    if exc.errno == errno.ENOSPC:
        return True
    try:
        return shutil.disk_usage(path.parent).free < (1 << 20)
    except OSError:
        return False


def current_umask() -> int:
    """The process's umask.

    Linux shows it in ``/proc/self/status``; elsewhere reading it means setting it, which
    is set straight back (a moment in which another thread could create a file).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json(path: str | Path, data: Any) -> None:
    with atomic_write(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def save_npy(path: str | Path, array: Any) -> None:
    import numpy as np

    with atomic_write(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
