"""The background decoder thread: order, errors, bounded look-ahead and clean stops."""

from __future__ import annotations

import threading
import time

import pytest

from avsc_core.media.prefetch import prefetch


def test_items_arrive_in_order_and_the_thread_ends():
    items = prefetch(range(50), depth=3)
    assert list(items) == list(range(50))
    assert not items._thread.is_alive()


def test_a_producer_error_is_raised_at_the_item_that_failed():
    def source():
        yield 1
        yield 2
        raise ValueError("corrupt packet")

    items = prefetch(source())
    assert next(items) == 1
    assert next(items) == 2
    with pytest.raises(ValueError, match="corrupt packet"):
        next(items)
    with pytest.raises(StopIteration):
        next(items)


def test_the_producer_stays_at_most_depth_items_ahead():
    produced = []

    def source():
        for i in range(100):
            produced.append(i)
            yield i

    items = prefetch(source(), depth=2)
    time.sleep(0.3)
    # depth items queued, plus one produced and waiting to be queued
    assert len(produced) <= 3
    assert next(items) == 0
    items.close()


def test_closing_early_stops_the_thread_and_releases_the_source():
    released = threading.Event()

    def source():
        try:
            yield from range(10_000)
        finally:
            released.set()  # where a decoder closes its file

    items = prefetch(source(), depth=1)
    assert next(items) == 0
    items.close()
    assert released.is_set()
    assert not items._thread.is_alive()
    with pytest.raises(StopIteration):
        next(items)


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth"):
        prefetch([1], depth=0)


def test_a_dropped_prefetcher_stops_its_thread():
    import gc

    items = prefetch(iter(range(10_000)), depth=1)
    thread = items._thread
    del items
    gc.collect()
    thread.join(timeout=2)
    assert not thread.is_alive()
