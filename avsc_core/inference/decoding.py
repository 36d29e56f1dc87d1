"""Decoding files for the networks, one file ahead of them.

:func:`decode_file` turns one file into the events the networks' side takes
(:class:`Decoded`); :class:`DecodeAhead` runs it in a background thread, the next file
while the networks run on the current one (FFmpeg and the networks release the GIL).
``avsc classify`` with several files and ``avsc label --jobs 1`` decode this way; the
decoder processes of ``--jobs N`` (:mod:`avsc_core.label.workers`) and Ray's tasks send
the same events. Nothing here imports TensorFlow or Keras: decoder processes run it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from avsc_core.errors import failure_reason
from avsc_core.features import FeatureExtractor
from avsc_core.inference.inputs import (
    SEGMENT_BATCH,
    InputPlan,
    SegmentBatch,
    iter_input_batches,
    stream_warnings,
)
from avsc_core.media import MediaInfo, probe
from avsc_core.progress import Cancelled

# Longest wait for news of the decoding before polling the cancel flag again (s).
POLL_SECONDS = 0.5
# Batches :class:`DecodeAhead` decodes ahead of the networks.
BATCHES_AHEAD = 2


def decode_file(
    index: int, path: str | Path, plan: InputPlan, extractor: FeatureExtractor, batch_size: int
) -> Iterator[tuple[str, int, Any]]:
    """``(kind, index, value)`` messages for one file (see :class:`Decoded`)."""
    try:
        info = probe(path)
        stream_warnings(path, info, plan)  # fail before decoding what cannot be used
        yield ("info", index, info)
        for batch in iter_input_batches(path, plan, info, extractor, batch_size):
            yield ("batch", index, batch)
    except Exception as exc:  # noqa: BLE001 - a failure belongs to this file only
        yield ("error", index, failure_reason(exc))
    else:
        yield ("done", index, None)


@dataclass(frozen=True)
class Decoded:
    """An event of the decoding of file ``index`` (:class:`DecodeAhead`, or
    :meth:`~avsc_core.label.workers.DecoderPool.run`).

    ``kind`` is ``"info"`` (``value`` a :class:`MediaInfo`), ``"batch"`` (a
    :class:`SegmentBatch`), ``"done"`` (``None``) or ``"error"`` (the reason).
    Events of one file come in this order; files interleave. A file the main process
    decodes itself is first announced by ``"start"`` (``None``), before its decoding
    begins, so a crash of the main process while decoding it can be blamed on it.
    """

    kind: str
    index: int
    value: MediaInfo | SegmentBatch | str | None


class DecodeAhead:
    """:class:`Decoded` events of ``files`` in order, decoded by a background thread.

    The thread starts at once and runs at most one file and :data:`BATCHES_AHEAD`
    batches ahead of the consumer: while the networks run on file ``i``, file ``i + 1``
    is probed and decoded, so memory stays flat whatever the number or length of the
    files. Each file's events are ``"start"`` (with it the consumer takes the file on),
    ``"info"``, its ``"batch"`` events, then ``"done"`` or ``"error"``, as
    :meth:`~avsc_core.label.workers.DecoderPool.run` gives them for a file it decodes in
    the main process.

    A file is the consumer's (its ``"start"`` event) only once the consumer has taken
    every event of the one before it, so a labelling run's journal names the files whose
    networks run (with ``jobs=1``: a file, and the next one when it is taken on before
    the lanes are through with the first), not the one being read ahead (see
    :mod:`avsc_core.label.journal`). Use as a context
    manager, or call :meth:`close`: the thread stops at its next event.
    """

    def __init__(self, files: list[tuple[int, str | Path]], plan: InputPlan,
                 batch_size: int = SEGMENT_BATCH, batches_ahead: int = BATCHES_AHEAD,
                 extractor: FeatureExtractor | None = None):
        self._events: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._batches = threading.BoundedSemaphore(max(1, batches_ahead))
        # Released when the consumer starts a file: the thread may then open the next.
        self._files = threading.Semaphore(1)
        self._thread = threading.Thread(
            target=self._produce,
            args=(list(files), plan, batch_size,
                  extractor or FeatureExtractor(plan.features, plan.media.sample_rate)),
            name="avsc-decode-ahead", daemon=True)
        self._thread.start()

    def _wait(self, semaphore: threading.Semaphore) -> bool:
        while not self._stop.is_set():
            if semaphore.acquire(timeout=POLL_SECONDS / 10):
                return True
        return False

    def _produce(self, files, plan, batch_size, extractor) -> None:
        try:
            for index, path in files:
                if not self._wait(self._files):
                    return
                self._events.put(("start", index, None))
                messages = decode_file(index, path, plan, extractor, batch_size)
                try:
                    for kind, i, value in messages:
                        if kind == "batch" and not self._wait(self._batches):
                            return
                        if self._stop.is_set():
                            return
                        self._events.put((kind, i, value))
                finally:
                    messages.close()  # lets go of the file at once, also when stopped
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            self._events.put(("raise", -1, exc))
        finally:
            self._events.put(("end", -1, None))

    def events(self, cancel: Callable[[], bool] | None = None) -> Iterator[Decoded]:
        """The events, as they come; ``cancel`` is polled while none is ready."""
        while True:
            try:
                kind, index, value = self._events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                if cancel is not None and cancel():
                    raise Cancelled() from None
                continue
            if kind == "end":
                return
            if kind == "raise":
                raise value
            if kind == "start":
                self._files.release()  # this file is the consumer's: read the next ahead
            elif kind == "batch":
                self._batches.release()
            yield Decoded(kind, index, value)

    def close(self) -> None:
        """Stop the thread and wait for it to let go of its file."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()


def decode_in_turn(todo: list[tuple[int, str | Path]], plan: InputPlan) -> Iterator[Decoded]:
    """The events of :class:`DecodeAhead`, each file decoded only when it is its turn."""
    extractor = FeatureExtractor(plan.features, plan.media.sample_rate)
    for index, path in todo:
        yield Decoded("start", index, None)
        for kind, i, value in decode_file(index, path, plan, extractor, SEGMENT_BATCH):
            yield Decoded(kind, i, value)
