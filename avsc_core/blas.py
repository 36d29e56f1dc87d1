"""Keeping numpy's BLAS on one thread while avsc computes.

avsc's matrix products are small: a filter bank applied to one segment's spectrogram, a
segment's embedding against the model's known ones. On several threads they are no
quicker, and OpenBLAS's threads spin for a while after each product, taking CPU time
from the networks and decoders running beside them. Labelling the 10-s TAU videos, the
spinning cost 0.12 CPU-s a clip, a seventh of the whole. One thread also makes the
gammatone spectrogram the same whatever the machine's core count: OpenBLAS rounds a
product split over threads differently.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

_lock = threading.Lock()
_depth = 0
_limiter: Any = None
_controller: Any = None
_modules_seen = -1


def _blas_libraries() -> Any:
    global _controller, _modules_seen
    # Finding the loaded libraries takes a millisecond or two, so it is done again only
    # after new modules were imported (which is how another BLAS, scipy's, gets loaded).
    if len(sys.modules) != _modules_seen:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController().select(user_api="blas")
        _modules_seen = len(sys.modules)
    return _controller


def _as_any_thread(change: Any) -> Any:
    """Run ``change()`` (a limit or its undoing) from whichever thread holds ``_lock``.

    threadpoolctl lets only the first thread that sets OpenBLAS's shared pool set it
    again, and ignores the others; here the count of open blocks decides instead.
    """
    try:
        from threadpoolctl import OpenBLASController
    except ImportError:
        return change()
    clear = getattr(OpenBLASController, "clear_controlling_thread", None)
    if clear is None:  # an older threadpoolctl, without that rule
        return change()
    clear(force=True)
    try:
        return change()
    finally:
        clear(force=True)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with BLAS (numpy's, and any other loaded) on one thread, then give
    back the earlier thread counts.

    OpenBLAS built with its own threads, as numpy's wheels are, has one pool for the
    whole process, so blocks in several threads share the limit: it holds from the first
    block's start to the last one's end, whichever threads they run in. Where BLAS's
    threads are per thread (OpenMP builds), the limit is the first block's thread's.
    """
    global _depth, _limiter
    with _lock:
        if _depth == 0:
            libraries = _blas_libraries()
            _limiter = _as_any_thread(lambda: libraries.limit(limits=1))
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _as_any_thread(_limiter.restore_original_limits)
                _limiter = None
