"""Running an iterator ahead of its consumer in a background thread.

FFmpeg decodes with Python's GIL released, so a decoder thread keeps a core busy while the
calling thread computes spectrograms or runs a network. The queue between them is bounded,
so the decoder is never more than ``depth`` items ahead and memory stays flat.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()
# How often a blocked producer checks whether the consumer has gone away (s).
_POLL = 0.05


class prefetch(Iterator[T]):  # lower case: used like a function, as itertools' classes are
    """Yield the items of ``items``, produced ahead by a background thread.

    The thread starts at once, so work begins before the first item is asked for. An
    exception raised while producing is raised here, at the point of the item that failed.
    :meth:`close` (also called when the prefetcher is garbage-collected) stops the thread
    and closes ``items`` in that thread, which releases any file it holds.
    """

    def __init__(self, items: Iterable[T], depth: int = 2, name: str = "avsc-prefetch"):
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self._pipe: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        # The thread gets the queue and the event, not ``self``: a prefetcher nobody
        # holds any more is then collected, and its __del__ stops the thread.
        self._thread = threading.Thread(
            target=_produce, args=(items, self._pipe, self._stop), name=name, daemon=True
        )
        self._thread.start()

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        ok, item = self._pipe.get()
        if not ok or item is _END:
            self.close()
            if not ok:
                raise item  # type: ignore[misc]
            raise StopIteration
        return item  # type: ignore[return-value]

    def close(self) -> None:
        """Stop the producer and wait for it to release its input."""
        self._done = True
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)  # absent when __init__ refused its arguments
        if stop is not None:
            stop.set()


def _put(pipe: queue.Queue, stop: threading.Event, entry: tuple[bool, object]) -> bool:
    while not stop.is_set():
        try:
            pipe.put(entry, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False


def _produce(items: Iterable, pipe: queue.Queue, stop: threading.Event) -> None:
    source = iter(items)
    try:
        for item in source:
            if not _put(pipe, stop, (True, item)):
                return
        _put(pipe, stop, (True, _END))
    except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
        _put(pipe, stop, (False, exc))
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
