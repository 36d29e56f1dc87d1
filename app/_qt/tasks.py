"""Background work as Qt signals: a thread, a process, or a request to a worker server.

Each kind of :class:`Task` turns the :class:`~app.jobs.Message` stream of its worker into
signals delivered on the GUI thread, and always ends with exactly one of ``result``,
``failed`` or ``cancelled`` followed by ``finished``, so a view can re-enable its
controls in one place.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from app.jobs import JobProcess, Message, WorkerServer

POLL_MS = 40


class Task(QObject):
    """Signals common to every kind of background work."""

    progress = Signal(object)  # avsc_core.progress.Progress
    item = Signal(object)  # a partial result: a preview segment, a labelled row
    result = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.running = False
        self.outcome: str | None = None

    def cancel(self) -> None:
        raise NotImplementedError

    def _dispatch(self, message: Message) -> None:
        if not self.running:
            return
        kind = message.kind
        if kind == "progress":
            self.progress.emit(message.payload)
        elif kind in ("row", "item"):
            self.item.emit(message.payload)
        elif message.terminal:
            self.running = False
            self.outcome = kind
            if kind == "result":
                self.result.emit(message.payload)
            elif kind == "error":
                self.failed.emit(str(message.payload))
            else:
                self.cancelled.emit()
            self.finished.emit()


class _Relay(QObject):
    message = Signal(object)


class ThreadTask(Task):
    """Run ``fn(*args, send=..., cancel=...)`` in a Python thread, for light work only
    (the dataset check's probing): anything that imports TensorFlow or librosa belongs in
    a worker process (see :mod:`app.jobs`).

    ``send("item", x)`` and ``send("progress", p)`` report; the return value is the
    result; an exception becomes ``failed`` with its message.
    """

    def __init__(self, fn: Callable[..., Any], *args: Any, parent: QObject | None = None):
        super().__init__(parent)
        self._fn = fn
        self._args = args
        self._cancel = threading.Event()
        self._relay = _Relay()
        # Emitted from the worker thread, delivered queued on the GUI thread.
        self._relay.message.connect(self._dispatch)

    def start(self) -> ThreadTask:
        self.running = True
        threading.Thread(target=self._run, daemon=True, name="avsc-gui-worker").start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def _run(self) -> None:
        from app.jobs import error_text
        from avsc_core.progress import Cancelled

        def send(kind: str, payload: Any = None) -> None:
            self._relay.message.emit(Message(kind, payload))

        try:
            send("result", self._fn(*self._args, send=send, cancel=self._cancel.is_set))
        except Cancelled:
            send("cancelled")
        except Exception as exc:  # noqa: BLE001 - shown to the user, never lost
            send("error", error_text(exc))


class ProcessTask(Task):
    """Run a :class:`~app.jobs.JobProcess` and poll it from the event loop."""

    def __init__(self, target: Callable[..., Any], args: tuple, what: str,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.job = JobProcess(target, args, what)
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)

    def start(self) -> ProcessTask:
        self.running = True
        self.job.start()
        self._timer.start()
        return self

    def cancel(self) -> None:
        self.job.cancel()

    def _poll(self) -> None:
        for message in self.job.poll():
            self._dispatch(message)
        if self.job.finished:
            self._timer.stop()


class RequestTask(Task):
    """One request to a :class:`ServerClient`'s process."""

    def __init__(self, client: ServerClient, request: int):
        # No Qt parent: the task lives as long as the view that asked keeps it.
        super().__init__()
        self._client = client
        self.request = request
        self.running = True

    def cancel(self) -> None:
        self._client.server.cancel(self.request)


class ServerClient(QObject):
    """The GUI's side of a :class:`~app.jobs.WorkerServer` (``"media"``, ``"classifier"``).

    ``ready`` is emitted once the process has done its imports; ``stopped`` when it died
    (a later request starts a new one).
    """

    ready = Signal()
    stopped = Signal(str)

    def __init__(self, what: str, parent: QObject | None = None):
        super().__init__(parent)
        self.server = WorkerServer(what)
        self._tasks: dict[int, RequestTask] = {}
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)

    def start(self) -> None:
        """Start the process now (it does its imports while the user looks around)."""
        self.server.start()
        self._timer.start()

    def request(self, kind: str, **kwargs: Any) -> RequestTask:
        """Send a request; its answers arrive as the returned task's signals."""
        request = self.server.submit(kind, **kwargs)
        self._timer.start()
        task = RequestTask(self, request)
        self._tasks[request] = task
        return task

    def _poll(self) -> None:
        was_alive = self.server.pid is not None
        for message in self.server.poll():
            if message.kind == "ready":
                self.ready.emit()
            task = self._tasks.get(message.request)
            if task is not None:
                task._dispatch(message)
                if message.terminal:
                    del self._tasks[message.request]
        if was_alive and self.server.pid is None:
            self._timer.stop()
            self.stopped.emit(f"the {self.server.what} process stopped")

    def shutdown(self) -> None:
        self._timer.stop()
        self.server.stop()
