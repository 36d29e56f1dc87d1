"""Worker processes that end with the process that started them.

A ``ProcessPoolExecutor`` worker waits for work on a queue whose pipe it holds both ends
of, so when its parent is killed (the out-of-memory killer, the app stopping a training
process) nothing ever wakes it: it would stay, holding its memory, until the machine
restarts. :func:`exit_with_parent`, a pool's ``initializer``, ends it instead.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import threading


def wait_for_parent() -> None:
    """Return once the process that started this one (with ``multiprocessing``) has
    exited, however it died: its sentinel becomes readable then. At once in a process
    ``multiprocessing`` did not start."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])


def exit_with_parent() -> None:
    """In a worker process: exit as soon as its parent process is gone (a daemon thread
    waits for it); does nothing in a process that has no parent process."""
    if multiprocessing.parent_process() is None:
        return

    def watch() -> None:
        wait_for_parent()
        os._exit(1)  # the parent was the only reader of this worker's work

    threading.Thread(target=watch, daemon=True, name="avsc-parent-watch").start()
