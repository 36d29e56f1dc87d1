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


def _limit() -> Any:
    global _controller, _modules_seen
    # Finding the loaded libraries takes a millisecond or two, so it is done again only
    # after new modules were imported (which is how another BLAS, scipy's, gets loaded).
    if len(sys.modules) != _modules_seen:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
        _modules_seen = len(sys.modules)
    return _controller.limit(limits=1, user_api="blas")


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the block with BLAS (numpy's, and any other loaded) on one thread, then give
    back the earlier counts.

    The limit is the process's (BLAS has no per-thread setting), so blocks in several
    threads share it: it holds from the first block's start to the last one's end.
    """
    global _depth, _limiter
    with _lock:
        if _depth == 0:
            _limiter = _limit()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _limiter.restore_original_limits()
                _limiter = None
