"""The training input pipeline reads the compact cache entries exactly as evaluation and
Phase II read them (deltas added by TensorFlow ops in the training step, to the bit)."""

from __future__ import annotations

import numpy as np
import pytest

from avsc_core.features.store import open_entry, write_frames, write_spectrograms
from avsc_core.train.pipeline import (
    Item,
    SegmentItem,
    item_dataset,
    segment_dataset,
    stored_form,
)


@pytest.fixture
def entries(tmp_path):
    rng = np.random.default_rng(0)
    paths = {}
    for name, shape, deltas in (("stereo", (2, 2, 16, 25), True), ("mono", (2, 1, 16, 25), True),
                                ("plain", (2, 2, 16, 25), False)):
        paths[name] = tmp_path / f"{name}.f16"
        write_spectrograms(paths[name], rng.normal(-8, 3, shape), deltas)
    paths["frames"] = tmp_path / "frames.jpg"
    write_frames(paths["frames"], rng.integers(0, 256, (2, 3, 16, 16, 3), dtype=np.uint8))
    return paths


def test_spectrogram_and_frame_items_equal_the_entries(entries):
    for name in ("stereo", "mono", "plain"):
        entry = open_entry(entries[name])
        items = [Item(entries[name], (s,), s) for s in range(2)]
        x, y = next(iter(item_dataset(items, 2, 2, False, 0)))
        np.testing.assert_array_equal(stored_form(items).to_network(x).numpy(), entry[:])
        np.testing.assert_array_equal(y.numpy(), np.eye(2))
    frames = open_entry(entries["frames"])
    items = [Item(entries["frames"], (s, f), 1) for s in range(2) for f in range(3)]
    x, _ = next(iter(item_dataset(items, 2, 6, False, 0)))
    assert x.dtype == "uint8"  # frames travel as stored, cast in the training step
    np.testing.assert_array_equal(x.numpy(), frames[:].reshape(6, 16, 16, 3))


def test_segment_items_equal_the_entries(entries):
    items = [SegmentItem(entries["stereo"], entries["frames"], s, s) for s in range(2)]
    x, y = next(iter(segment_dataset(items, 2, 2, False, 0, ("fused", "audio"))))
    x = stored_form(items).to_network(x)
    np.testing.assert_array_equal(x["spectrogram"].numpy(), open_entry(entries["stereo"])[:])
    np.testing.assert_array_equal(x["frames"].numpy(), open_entry(entries["frames"])[:])
    assert set(y) == {"fused", "audio"}


def test_shuffling_is_the_same_for_the_same_epoch(entries):
    items = [Item(entries["frames"], (s, f), s) for s in range(2) for f in range(3)]
    first = [x.numpy() for x, _ in item_dataset(items, 2, 6, True, 7, epoch_counter=[3])]
    again = [x.numpy() for x, _ in item_dataset(items, 2, 6, True, 7, epoch_counter=[3])]
    other = [x.numpy() for x, _ in item_dataset(items, 2, 6, True, 7, epoch_counter=[4])]
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.array_equal(first[0], other[0])
