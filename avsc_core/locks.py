"""One writer per output: an exclusive lock on a labels CSV or a bundle folder.

Two ``avsc label`` runs on one CSV, two trainings into one bundle, or the app and the
command line on the same output would interleave their rows or checkpoints. Whoever
writes an output holds :class:`OutputLock` on it; a second writer is refused at once
with a message naming the first (command, process id, host, start time).

The lock is ``flock`` on a small file beside the output (``.<name>.lock``), so it is
released by the kernel when its holder dies, however it dies: a stale lock file never
blocks anyone. The file is removed when the lock is released.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from avsc_core.errors import AvscError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks of this kind; writers are not guarded
    fcntl = None  # type: ignore[assignment]


class OutputBusyError(AvscError):
    """Another process is writing the output."""


def lock_path(target: str | Path) -> Path:
    """The lock file of ``target``: ``.<name>.lock`` in the same folder."""
    target = Path(target)
    return target.parent / f".{target.name}.lock"


def _holder() -> dict[str, object]:
    command = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if command in ("__main__.py", "-c", "-m"):
        command = "avsc"
    verb = next((a for a in sys.argv[1:] if not a.startswith("-")), "")
    return {
        "command": f"{command} {verb}".strip(),
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def describe_holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return (f"{info['command']} (process {info['pid']} on {info['host']}, "
                f"since {info['since']})")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


class OutputLock:
    """Exclusive claim on ``target`` while it is written.

    >>> with OutputLock("labels.csv"):          # doctest: +SKIP
    ...     write_the_rows()

    Raises
    ------
    OutputBusyError
        On entry, when another live process holds the lock.
    """

    def __init__(self, target: str | Path):
        self.target = Path(target)
        self.path = lock_path(self.target)
        self._fd: int | None = None

    def acquire(self) -> None:
        if fcntl is None or self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise OutputBusyError(
                    f"{self.target}: is being written by {describe_holder(self.path)}; "
                    "wait for it to finish or choose another output"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            # The holder released and removed the file between our open and our lock.
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(_holder()).encode("utf-8"))
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass
        os.close(self._fd)  # closing releases the flock
        self._fd = None

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
