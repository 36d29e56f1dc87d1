"""``tf.data`` input pipelines reading the feature cache's entries.

Entries are memory-mapped and read by parallel calls: a frame is decoded from its JPEG
(OpenCV releases the GIL), a spectrogram read as its float16 log spectrogram and given its
deltas by TensorFlow ops (see :mod:`avsc_core.features.store`).

An item is one training sample: a segment's spectrogram (audio backbones), one sampled
frame (visual backbones; a frame carries its clip's label) or a segment's embeddings
(fusion heads). Items are shuffled in Python with a seed that depends on the epoch, so a
resumed run sees the same order it would have seen without the interruption.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import tensorflow as tf

from avsc_core.features.store import FrameFile, SpectrogramFile, open_entry
from avsc_core.train.prepare import PreparedClip


@dataclass(frozen=True)
class Item:
    """One sample: array file, index within it, label index."""

    path: Path
    index: tuple[int, ...]
    label: int


def spectrogram_items(
    clips: Sequence[PreparedClip], kind: str, classes: Sequence[str]
) -> list[Item]:
    lookup = {c: i for i, c in enumerate(classes)}
    return [
        Item(c.features[kind], (s,), lookup[c.clip.label])
        for c in clips
        if kind in c.features
        for s in range(c.segments)
    ]


def frame_items(
    clips: Sequence[PreparedClip], classes: Sequence[str], frames_per_segment: int
) -> list[Item]:
    lookup = {c: i for i, c in enumerate(classes)}
    return [
        Item(c.frames, (s, f), lookup[c.clip.label])
        for c in clips
        if c.frames is not None
        for s in range(c.segments)
        for f in range(frames_per_segment)
    ]


@dataclass(frozen=True)
class SegmentItem:
    """One segment for joint training: its spectrogram and its frames, and its label."""

    spectrogram: Path
    frames: Path
    index: int
    label: int


def segment_items(
    clips: Sequence[PreparedClip], kind: str, classes: Sequence[str]
) -> list[SegmentItem]:
    """Every segment of the clips that have both spectrogram ``kind`` and frames."""
    lookup = {c: i for i, c in enumerate(classes)}
    return [
        SegmentItem(c.features[kind], c.frames, s, lookup[c.clip.label])
        for c in clips
        if kind in c.features and c.frames is not None
        for s in range(c.segments)
    ]


@lru_cache(maxsize=256)
def _open(path: Path) -> SpectrogramFile | FrameFile:
    return open_entry(path)


def _read(path: Path, index: tuple[int, ...] | int) -> np.ndarray:
    """What the pipeline reads of one item: decoded frames, or a spectrogram's float16
    ``(channels, bins, frames)`` log spectrogram (:func:`tf_network_input` adds its deltas)."""
    entry = _open(path)
    if isinstance(entry, SpectrogramFile):
        return np.asarray(entry.log_spectrograms()[index])
    return np.asarray(entry[index])


def tf_network_input(log_spec: tf.Tensor, deltas: bool) -> tf.Tensor:
    """:func:`avsc_core.features.deltas.network_input` of ``(..., channels, bins, frames)``
    log spectrograms, in TensorFlow.

    The same float32 operations, so the same values to the bit (tested), at a fraction of
    the cost: numpy's copy into rows of six channels takes about 1 ms per sample, which
    starved the input pipeline.
    """
    x = tf.cast(log_spec, tf.float32)
    if deltas:
        delta = (x[..., 2:] - x[..., :-2]) * 0.5
        delta2 = (delta[..., 2:] - delta[..., :-2]) * 0.5
        x = tf.concat([x[..., 2:-2], delta[..., 1:-1], delta2], axis=-3)
    rank = x.shape.rank
    return tf.transpose(x, [*range(rank - 3), rank - 2, rank - 1, rank - 3])


def mixup(
    x: tf.Tensor | dict, y: tf.Tensor, alpha: float, seed: tf.Tensor
) -> tuple[tf.Tensor | dict, tf.Tensor]:
    """Mix each sample with another of the batch: ``lam * a + (1 - lam) * b``.

    ``lam ~ Beta(alpha, alpha)`` per sample; labels mix with the same weights, so they
    become soft and the loss is the KL divergence. ``x`` may be a dict of tensors (fusion
    embeddings), mixed with the same weights and partners.
    """
    batch = tf.shape(y)[0]
    seeds = tf.random.experimental.stateless_split(seed, 3)
    g1 = tf.random.stateless_gamma([batch], seeds[0], alpha=alpha)
    g2 = tf.random.stateless_gamma([batch], seeds[1], alpha=alpha)
    lam = g1 / (g1 + g2 + 1e-12)
    partner = tf.argsort(tf.random.stateless_uniform([batch], seeds[2]))

    def mix(t: tf.Tensor) -> tf.Tensor:
        t = tf.cast(t, tf.float32)
        shape = tf.concat([[batch], tf.ones(tf.rank(t) - 1, tf.int32)], 0)
        weight = tf.reshape(lam, shape)
        return weight * t + (1.0 - weight) * tf.gather(t, partner)

    mixed = {k: mix(v) for k, v in x.items()} if isinstance(x, dict) else mix(x)
    return mixed, mix(y)


def item_dataset(
    items: Sequence[Item],
    n_classes: int,
    batch_size: int,
    shuffle: bool,
    seed: int,
    mixup_alpha: float = 0.0,
    epoch_counter: list[int] | None = None,
) -> tf.data.Dataset:
    """Batches of ``(x, one_hot(y))`` from cached arrays.

    Parameters
    ----------
    epoch_counter : list of one int, optional
        The epoch whose shuffling order to use next; incremented after every pass (pass
        ``[initial_epoch]`` when resuming).
    """

    def load(i: int) -> tuple[np.ndarray, int]:
        item = items[i]
        return _read(item.path, item.index), item.label

    transform = None
    first = _open(items[0].path) if items else None
    if isinstance(first, SpectrogramFile):
        deltas = first.deltas

        def transform(x: tf.Tensor) -> tf.Tensor:
            return tf_network_input(x, deltas)

    return _batches(load, len(items), n_classes, batch_size, shuffle, seed, mixup_alpha,
                    epoch_counter, transform).prefetch(2)


def _batches(
    load: Callable[[int], tuple[np.ndarray | dict[str, np.ndarray], int]],
    n: int,
    n_classes: int,
    batch_size: int,
    shuffle: bool,
    seed: int,
    mixup_alpha: float,
    epoch_counter: list[int] | None,
    transform: Callable[[tf.Tensor | dict], tf.Tensor | dict] | None = None,
) -> tf.data.Dataset:
    """Batches of ``(x, one_hot(y))`` of samples ``load(0) .. load(n - 1)``, shuffled per epoch.

    ``x`` is ``transform`` (TensorFlow ops) of what ``load`` returns, an array or a dict of
    arrays whose shapes and types come from the first sample. Samples are loaded by
    parallel calls, one sample each, in the shuffled order (measured faster than one call
    per batch, which must then stack and transform the batch in one piece).
    """
    if n == 0:
        raise ValueError("no training samples")
    counter = epoch_counter if epoch_counter is not None else [0]
    first, _ = load(0)
    first_leaves = tf.nest.flatten(first)
    dtypes = [tf.as_dtype(a.dtype) for a in first_leaves]

    def order() -> np.ndarray:
        indices = np.arange(n, dtype=np.int64)
        if shuffle:
            np.random.default_rng([seed, counter[0]]).shuffle(indices)
            counter[0] += 1
        return indices

    def load_leaves(i: np.ndarray) -> list[np.ndarray]:
        x, y = load(int(i))
        return [*tf.nest.flatten(x), np.int32(y)]

    def load_sample(i: tf.Tensor) -> tuple:
        *leaves, y = tf.numpy_function(load_leaves, [i], [*dtypes, tf.int32], stateful=False)
        leaves = [tf.ensure_shape(t, a.shape) for t, a in zip(leaves, first_leaves, strict=True)]
        label = tf.one_hot(tf.ensure_shape(y, ()), n_classes)
        x = tf.nest.pack_sequence_as(first, leaves)
        return (x if transform is None else transform(x)), label

    def epoch(_: tf.Tensor) -> tf.data.Dataset:
        # One call per pass over the data (each iterator runs it again): a new order.
        indices = tf.numpy_function(order, [], tf.int64, stateful=True)
        return tf.data.Dataset.from_tensor_slices(tf.ensure_shape(indices, (n,)))

    ds = tf.data.Dataset.range(1).flat_map(epoch)
    ds = ds.map(load_sample, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size)
    if mixup_alpha > 0:
        ds = _with_mixup(ds, mixup_alpha, seed, counter)
    return ds


def _with_mixup(
    ds: tf.data.Dataset, alpha: float, seed: int, counter: list[int]
) -> tf.data.Dataset:
    def mix(i: tf.Tensor, batch: tuple) -> tuple:
        # The epoch and the batch index give each batch its own, reproducible seed.
        epoch = tf.py_function(lambda: counter[0], [], tf.int64)
        key = tf.stack([tf.cast(seed, tf.int64) * 100003 + epoch, i])
        return mixup(batch[0], batch[1], alpha, key)

    return ds.enumerate().map(mix)


def segment_dataset(
    items: Sequence[SegmentItem],
    n_classes: int,
    batch_size: int,
    shuffle: bool,
    seed: int,
    outputs: Sequence[str],
    mixup_alpha: float = 0.0,
    epoch_counter: list[int] | None = None,
) -> tf.data.Dataset:
    """Batches of ``({"spectrogram", "frames"}, {output: one_hot(y)})`` for joint training.

    Mixup mixes a segment's sound and pictures with the same partner and weight; every
    output is trained towards the same (mixed) target.
    """

    def load(i: int) -> tuple[dict[str, np.ndarray], int]:
        item = items[i]
        return {
            "spectrogram": _read(item.spectrogram, item.index),
            "frames": _read(item.frames, item.index),
        }, item.label

    deltas = bool(items) and _open(items[0].spectrogram).deltas

    def transform(x: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {**x, "spectrogram": tf_network_input(x["spectrogram"], deltas)}

    names = tuple(outputs)
    ds = _batches(load, len(items), n_classes, batch_size, shuffle, seed, mixup_alpha,
                  epoch_counter, transform)
    return ds.map(lambda x, y: (x, {name: y for name in names})).prefetch(2)


def array_dataset(
    x: dict[str, np.ndarray] | np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    batch_size: int,
    shuffle: bool,
    seed: int,
    mixup_alpha: float = 0.0,
) -> tf.data.Dataset:
    """Batches from in-memory arrays (Phase II embeddings)."""
    ds = tf.data.Dataset.from_tensor_slices((x, tf.one_hot(labels, n_classes)))
    if shuffle:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if mixup_alpha > 0:
        ds = ds.enumerate().map(
            lambda i, batch: mixup(
                batch[0], batch[1], mixup_alpha, tf.stack([tf.cast(seed, tf.int64), i])
            )
        )
    return ds.prefetch(2)
