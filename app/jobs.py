"""Work that runs in other processes: decoding, classification, training, labelling,
adapting a model to reviewed labels.

The GUI process only draws. Importing TensorFlow, or librosa's numba, holds the
interpreter lock for up to a second at a time (measured: 0.57 s and 0.8 s stalls of the
event loop when done in a thread), and a crash in native code would take the window
down; so that work runs in processes started with ``spawn`` (TensorFlow must not be
forked). They talk back through a queue of :class:`Message`, which the GUI polls from
its event loop without ever blocking.

- :class:`JobProcess`: one job, one process (training, labelling a folder, adapting).
  Cancel sets an event that the job's ``cancel`` callable reads.
- :class:`WorkerServer`: a long-lived process serving requests one after another: the
  ``"media"`` one reads files for display, the ``"classifier"`` one keeps the model loaded.

A process that dies without saying why (killed, out of memory, a crash in native code) is
reported as an ``error`` message, so the GUI can re-enable its controls.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import multiprocessing
import os
import queue as queue_module
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from avsc_core.orphans import wait_for_parent

log = logging.getLogger(__name__)

TERMINAL = frozenset({"result", "error", "cancelled"})

_live: list[JobProcess | WorkerServer] = []


@dataclass(frozen=True)
class Message:
    """What a job sends back.

    ``kind`` is ``"progress"`` (payload: :class:`~avsc_core.progress.Progress`), ``"row"``
    (a result row of a batch job), ``"ready"``, or one of the terminal kinds
    ``"result"``, ``"error"`` (payload: a one-line message) and ``"cancelled"``.
    ``request`` tells the requests of an :class:`InferenceServer` apart.
    """

    kind: str
    payload: Any = None
    request: int = 0

    @property
    def terminal(self) -> bool:
        return self.kind in TERMINAL


def _context() -> multiprocessing.context.SpawnContext:
    return multiprocessing.get_context("spawn")


def _drain(source: Any, deadline: float) -> list[Message]:
    messages: list[Message] = []
    while time.monotonic() < deadline:
        try:
            messages.append(source.get_nowait())
        except queue_module.Empty:
            break
        except (EOFError, OSError, ValueError):
            break  # the queue was closed, or the child died mid-message
    return messages


def _died(what: str, exitcode: int | None) -> str:
    how = f"exit code {exitcode}" if exitcode is None or exitcode >= 0 else f"signal {-exitcode}"
    return f"the {what} process stopped unexpectedly ({how}); see the log for details"


class JobProcess:
    """Run ``target(*args, send=..., cancel=...)`` in a spawned process.

    ``target`` must be importable from a module without Qt (see :mod:`app.child`); it
    reports through ``send(kind, payload)`` and its return value becomes the ``result``.

    Parameters
    ----------
    target : callable
        Module-level function run in the child.
    args : tuple
        Its positional arguments (picklable).
    what : str
        Names the job in error messages ("training", "labelling").
    """

    def __init__(self, target: Callable[..., Any], args: tuple = (), what: str = "job"):
        context = _context()
        self.what = what
        self._queue = context.Queue()
        self._cancel = context.Event()
        # Not a daemon: training starts its own decoding processes.
        self._process = context.Process(
            target=_run_job, args=(target, args, self._queue, self._cancel), name=f"avsc-{what}"
        )
        self.finished = False

    def start(self) -> JobProcess:
        self._process.start()
        _live.append(self)
        log.info("started %s process %s", self.what, self._process.pid)
        return self

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def cancel(self) -> None:
        """Ask the job to stop at its next check; it answers with ``cancelled``."""
        self._cancel.set()

    def poll(self, budget: float = 0.02) -> list[Message]:
        """Messages that arrived, read for at most ``budget`` seconds."""
        if self.finished:
            return []
        messages = _drain(self._queue, time.monotonic() + budget)
        if any(m.terminal for m in messages):
            self._finish()
        elif not self._process.is_alive():
            # Whatever the child sent before exiting is in the pipe by now.
            messages += _drain(self._queue, time.monotonic() + 0.2)
            if not any(m.terminal for m in messages):
                messages.append(Message("error", _died(self.what, self._process.exitcode)))
            self._finish()
        return messages

    def _finish(self) -> None:
        self.finished = True
        if self in _live:
            _live.remove(self)

    def stop(self, timeout: float = 2.0) -> None:
        """Cancel, wait up to ``timeout`` s, then terminate the process.

        Training and labelling save their progress as they go, so a terminated job loses
        at most its current epoch or file and can be resumed.
        """
        self.cancel()
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(2)
        self._finish()


class WorkerServer:
    """A process that serves requests (see :data:`app.child.REQUESTS`) one at a time.

    Requests run in submission order. Submitting a new request cancels the ones before it
    (a user who drops another file no longer wants the first answer). The process starts
    on the first request, or earlier with :meth:`start` so its imports happen while the
    user looks at the window; it restarts after a crash.

    Parameters
    ----------
    what : str
        ``"media"`` or ``"classifier"``: names the process and picks what it imports
        first (:data:`app.child.WARM_UPS`).
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._process: multiprocessing.Process | None = None
        self._ids = itertools.count(1)
        self._pending: set[int] = set()
        self.ready = False

    def start(self) -> None:
        if self._process is not None and self._process.is_alive():
            return
        context = _context()
        self._requests = context.Queue()
        self._replies = context.Queue()
        # Requests with an id up to this value are cancelled.
        self._cancel_upto = context.Value("q", 0)
        self._process = context.Process(
            target=_serve, args=(self.what, self._requests, self._replies, self._cancel_upto),
            name=f"avsc-{self.what}", daemon=True,
        )
        self._process.start()
        self.ready = False
        if self not in _live:
            _live.append(self)
        log.info("started %s process %s", self.what, self._process.pid)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def submit(self, kind: str, **kwargs: Any) -> int:
        """Queue a request (a key of :data:`app.child.REQUESTS`) and return its id."""
        self.start()
        request = next(self._ids)
        self._cancel_upto.value = request - 1
        self._pending.add(request)
        self._requests.put((request, kind, kwargs))
        return request

    def cancel(self, request: int) -> None:
        self._cancel_upto.value = max(self._cancel_upto.value, request)

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def poll(self, budget: float = 0.02) -> list[Message]:
        if self._process is None:
            return []
        messages = _drain(self._replies, time.monotonic() + budget)
        for message in messages:
            if message.kind == "ready":
                self.ready = True
            if message.terminal:
                self._pending.discard(message.request)
        if not self._process.is_alive():
            messages += _drain(self._replies, time.monotonic() + 0.2)
            for message in messages:
                if message.terminal:
                    self._pending.discard(message.request)
            reason = _died(self.what, self._process.exitcode)
            messages += [Message("error", reason, r) for r in sorted(self._pending)]
            self._pending.clear()
            self._process = None
            self.ready = False
        return messages

    def stop(self, timeout: float = 1.0) -> None:
        """Ask the process to finish, and terminate it if it has not within ``timeout`` s.

        A process still importing (not ``ready``) is terminated at once: it holds no work.
        """
        if self._process is None:
            return
        if self._process.is_alive():
            self._cancel_upto.value = 2**62
            self._requests.put(None)
            self._process.join(timeout if self.ready else 0)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(2)
        self._process = None
        self._pending.clear()
        if self in _live:
            _live.remove(self)


@atexit.register
def stop_all() -> None:
    """Stop every child still running (the app is quitting)."""
    for job in _live:
        job.stop(timeout=3.0)


# Workers yield the CPU to the window: TensorFlow uses every core, and a GUI thread
# starved of CPU stutters as badly as a blocked one.
WORKER_NICENESS = 10


def _child_setup() -> None:
    if hasattr(os, "nice"):
        os.nice(WORKER_NICENESS)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from avsc_core.quiet import quiet_tensorflow_import

    quiet_tensorflow_import()
    from app.logs import setup_logging

    setup_logging("worker")


def error_text(exc: BaseException) -> str:
    """A one-line message for the user; unexpected errors are logged with their traceback."""
    from avsc_core.errors import AvscError

    if isinstance(exc, AvscError):
        return str(exc)
    log.exception("unexpected error in a worker process")
    return f"unexpected error: {type(exc).__name__}: {exc} (details in the log)"


def _watch_parent(orphaned: threading.Event, grace: float = 30.0) -> None:
    """If the GUI dies, ask the job to stop (its work is resumable), then make sure."""
    wait_for_parent()
    log.warning("the app is gone: stopping this worker")
    orphaned.set()
    time.sleep(grace)
    os._exit(1)


def _run_job(target: Callable[..., Any], args: tuple, queue: Any, cancel: Any) -> None:
    _child_setup()
    from avsc_core.progress import Cancelled

    orphaned = threading.Event()
    threading.Thread(target=_watch_parent, args=(orphaned,), daemon=True).start()

    def send(kind: str, payload: Any = None) -> None:
        queue.put(Message(kind, payload))

    def cancelled() -> bool:
        return cancel.is_set() or orphaned.is_set()

    try:
        send("result", target(*args, send=send, cancel=cancelled))
    except Cancelled:
        send("cancelled")
    except Exception as exc:  # noqa: BLE001 - reported to the GUI, logged with its traceback
        send("error", error_text(exc))
    finally:
        queue.close()
        queue.join_thread()


def _serve(what: str, requests: Any, replies: Any, cancel_upto: Any) -> None:
    _child_setup()
    from app import child
    from avsc_core.progress import Cancelled

    child.WARM_UPS[what]()
    replies.put(Message("ready"))
    parent = multiprocessing.parent_process()
    while True:
        try:
            item = requests.get(timeout=1.0)
        except queue_module.Empty:
            if parent is not None and not parent.is_alive():
                break  # the app is gone
            continue
        if item is None:
            break
        request, kind, kwargs = item

        def send(kind: str, payload: Any = None, request: int = request) -> None:
            replies.put(Message(kind, payload, request))

        def cancelled(request: int = request) -> bool:
            return cancel_upto.value >= request

        if cancelled():
            send("cancelled")
            continue
        try:
            handler = child.REQUESTS[kind]
            send("result", handler(**kwargs, send=send, cancel=cancelled))
        except Cancelled:
            send("cancelled")
        except Exception as exc:  # noqa: BLE001 - one bad request never stops the server
            send("error", error_text(exc))
