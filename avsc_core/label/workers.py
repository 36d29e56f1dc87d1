"""Decoder processes: files in, batches of network inputs out.

``avsc label --jobs N`` runs N-1 of these while the main process runs the model, so the
model does not wait on decoding when there are cores to spare. With ``--jobs 1``,
:class:`~avsc_core.inference.decoding.DecodeAhead` decodes the next file in a thread of
the main process while the networks run on the current one.

Workers are started with ``spawn`` (TensorFlow must never be forked) and never import
it. When no worker has a batch ready (a small model, or workers still starting), the main
process decodes the next waiting file itself, one batch at a time, rather than sit idle.

Each worker has its own pair of pipes. Sending a batch blocks until the main process
reads it, so a worker decodes at most one batch ahead of the model and memory stays flat
whatever the number or length of the files. Separate pipes (rather than one shared queue)
also mean that a worker dying mid-send (a decoder crash on a damaged file, the kernel's
out-of-memory killer) cannot leave a lock held that would stall the others: its pipe
simply closes, the file it was decoding is reported as failed and a fresh worker takes
over its other files.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Self

from avsc_core.errors import AvscError
from avsc_core.features import FeatureExtractor
from avsc_core.inference.decoding import POLL_SECONDS, Decoded, decode_file
from avsc_core.inference.inputs import SEGMENT_BATCH, InputPlan
from avsc_core.progress import Cancelled

log = logging.getLogger(__name__)

# Files assigned to a worker ahead of time, so it starts the next one without waiting.
PREFETCH = 2


def _decode(tasks: Connection, results: Connection, plan: InputPlan, batch_size: int) -> None:
    """Worker process: decode each assigned file and send its batches back."""
    # Ctrl-C reaches the whole process group; the main process decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    extractor = FeatureExtractor(plan.features, plan.media.sample_rate)
    try:
        results.send(("ready", -1, None))
        while (task := tasks.recv()) is not None:
            for message in decode_file(*task, plan, extractor, batch_size):
                results.send(message)
    except (EOFError, BrokenPipeError):
        pass  # the main process is gone (killed): nothing left to do for it


@dataclass
class _Worker:
    process: Any
    tasks: Connection
    results: Connection
    assigned: collections.deque[int] = field(default_factory=collections.deque)
    ready: bool = False


class DecoderPool:
    """``workers`` decoder processes for one labelling run; use as a context manager."""

    def __init__(self, workers: int, plan: InputPlan, batch_size: int = SEGMENT_BATCH):
        self.plan = plan
        self.batch_size = batch_size
        self._context = multiprocessing.get_context("spawn")
        self._extractor = FeatureExtractor(plan.features, plan.media.sample_rate)
        self._workers: list[_Worker] = [self._start_worker() for _ in range(max(1, workers))]

    def _start_worker(self) -> _Worker:
        task_reader, task_writer = self._context.Pipe(duplex=False)
        result_reader, result_writer = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_decode,
            args=(task_reader, result_writer, self.plan, self.batch_size),
            name="avsc-decoder",
            daemon=True,
        )
        process.start()
        # Only the worker may hold these ends, so its exit shows here as end-of-file.
        task_reader.close()
        result_writer.close()
        return _Worker(process, task_writer, result_reader)

    def run(
        self, files: list[tuple[int, Path]], cancel: Callable[[], bool] | None = None
    ) -> Iterator[Decoded]:
        """Decode ``(index, path)`` pairs, yielding events as they arrive.

        ``cancel`` is also polled while no event arrives (a long file being decoded);
        when it returns True, :class:`Cancelled` is raised.
        """
        paths = dict(files)
        pending = collections.deque(paths)
        remaining = len(paths)
        here: Iterator[tuple[str, int, Any]] | None = None  # a file decoded in this process
        while remaining:
            for worker in self._workers:
                while pending and len(worker.assigned) < PREFETCH:
                    index = pending.popleft()
                    try:
                        worker.tasks.send((index, str(paths[index])))
                    except OSError:
                        pending.appendleft(index)  # it died: its pipe will tell below
                        break
                    worker.assigned.append(index)
            if cancel is not None and cancel():
                raise Cancelled()
            by_pipe = {w.results: w for w in self._workers}
            can_work_here = here is not None or bool(pending)
            ready_pipes = wait(list(by_pipe), timeout=0 if can_work_here else POLL_SECONDS)
            if not ready_pipes and can_work_here:
                # The workers have nothing for the model: decode a batch here meanwhile.
                if here is None:
                    index = pending.popleft()
                    here = decode_file(index, paths[index], self.plan, self._extractor,
                                       self.batch_size)
                    yield Decoded("start", index, None)
                kind, index, value = next(here)
                if kind in ("done", "error"):
                    here = None
                    remaining -= 1
                yield Decoded(kind, index, value)
                continue
            for ready in ready_pipes:
                worker = by_pipe[ready]
                try:
                    kind, index, value = worker.results.recv()
                except (EOFError, OSError):
                    event = self._replace(worker, pending)
                    if event is not None:
                        remaining -= 1
                        yield event
                    continue
                if kind == "ready":
                    worker.ready = True
                    continue
                if kind in ("done", "error"):
                    worker.assigned.remove(index)
                    remaining -= 1
                yield Decoded(kind, index, value)

    def _replace(self, worker: _Worker, pending: collections.deque) -> Decoded | None:
        """Swap a dead worker for a new one; the file it was decoding failed."""
        worker.process.join()
        code = worker.process.exitcode
        worker.tasks.close()
        worker.results.close()
        if not worker.ready:
            # Not a file's fault: no worker of this run could do better.
            raise AvscError(f"decoder processes cannot start (exit code {code}); "
                            "run with --jobs 1 or --debug to see why")
        log.warning("a decoder process died (exit code %s)", code)
        self._workers[self._workers.index(worker)] = self._start_worker()
        if not worker.assigned:
            return None
        # Its files are decoded in order: the first one is the one it died on.
        failed = worker.assigned.popleft()
        pending.extendleft(reversed(worker.assigned))
        return Decoded("error", failed, f"decoding crashed (decoder exit code {code})")

    def close(self, wait_for_exit: bool = True) -> None:
        """Stop the workers: idle ones exit on their own, the rest are terminated."""
        for worker in self._workers:
            if wait_for_exit:
                try:
                    worker.tasks.send(None)
                except OSError:
                    pass  # already gone
        for worker in self._workers:
            if wait_for_exit:
                worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join()
            worker.tasks.close()
            worker.results.close()
        self._workers = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # After an error or a cancel the queued work is not wanted: do not wait for it.
        self.close(wait_for_exit=exc_type is None)
