"""``tf.data`` input pipelines reading the feature cache's entries.

Entries are memory-mapped and read a batch per call, several batches at once: a frame is
decoded from its JPEG (OpenCV releases the GIL), a spectrogram read as its float16 log
spectrogram (see :mod:`avsc_core.features.store`). Batches leave the pipeline as the cache
stores them, uint8 frames and float16 spectrograms, the fewest bytes to move to a GPU;
the deltas, the cast to float32 and mixup are done by the training step
(:mod:`avsc_core.train.trainer`, with :func:`stored_form` and :func:`mixup`).

An item is one training sample: a segment's spectrogram (audio backbones), one sampled
frame (visual backbones; a frame carries its clip's label) or a segment's embeddings
(fusion heads). Items are shuffled in Python with a seed that depends on the epoch, so a
resumed run sees the same order it would have seen without the interruption.

In multi-worker training each worker's pipeline reads only its :class:`Shard` of every
epoch: every worker draws the same order (same seed, same epoch) and keeps its own
positions of it, so no sample is read, or trained on, twice per epoch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import tensorflow as tf

from avsc_core.features.prepare import PreparedClip
from avsc_core.features.store import FrameFile, SpectrogramFile, open_entry


@dataclass(frozen=True)
class Shard:
    """One worker's part of every training epoch (multi-worker training).

    Every worker draws the epoch's order alike; worker ``index`` of ``count`` keeps
    positions ``index, index + count, ...`` of it. The last ``n % count`` positions of
    the order are dropped, so every worker has :meth:`size` samples and runs the same
    number of steps: collective training stalls when one worker runs out of batches
    before the others. They are at most ``count - 1`` samples an epoch, and other ones
    each epoch as the order is drawn anew; padding would show some samples twice.

    Attributes
    ----------
    index : int
        This worker's input pipeline (``tf.distribute.InputContext.input_pipeline_id``).
    count : int
        The input pipelines, one per worker.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index} of {self.count} does not exist")

    def size(self, n: int) -> int:
        """Samples per epoch in each part of ``n`` samples (the same for every worker)."""
        return n // self.count

    def take(self, order: np.ndarray) -> np.ndarray:
        """This part of an epoch's ``order`` (a permutation of the samples)."""
        return np.ascontiguousarray(order[self.index : self.size(len(order)) * self.count
                                          : self.count])


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


@cache
def _readers() -> ThreadPoolExecutor:
    """The threads reading the samples of a batch, one per core, shared by every pipeline:
    JPEG decoding and copies out of memory maps release the GIL."""
    return ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="avsc-read")


def _read(path: Path, index: tuple[int, ...] | int) -> np.ndarray:
    """What the pipeline reads of one item: decoded frames, or a spectrogram's float16
    ``(channels, bins, frames)`` log spectrogram (:func:`stored_form` adds its deltas)."""
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
    epoch_counter: list[int] | None = None,
    shard: Shard | None = None,
) -> tf.data.Dataset:
    """Batches of ``(x, one_hot(y))`` as the cache stores them: uint8 frames
    ``(batch, size, size, 3)``, or float16 ``(batch, channels, bins, frames)`` log
    spectrograms; :func:`stored_form` of the same items says how they become the
    network's input.

    Parameters
    ----------
    epoch_counter : list of one int, optional
        The epoch whose shuffling order to use next; incremented after every pass (pass
        ``[initial_epoch]`` when resuming).
    shard : Shard, optional
        The part of every epoch this worker reads (multi-worker training); all of it
        when omitted.
    """

    def load(i: int) -> tuple[np.ndarray, int]:
        item = items[i]
        return _read(item.path, item.index), item.label

    return _batches(load, len(items), n_classes, batch_size, shuffle, seed, epoch_counter,
                    shard)


def segment_dataset(
    items: Sequence[SegmentItem],
    n_classes: int,
    batch_size: int,
    shuffle: bool,
    seed: int,
    outputs: Sequence[str],
    epoch_counter: list[int] | None = None,
    shard: Shard | None = None,
) -> tf.data.Dataset:
    """Batches of ``({"spectrogram", "frames"}, {output: one_hot(y)})`` for joint
    training, as the cache stores them (see :func:`item_dataset`); every output is
    trained towards the same target; ``shard`` as for :func:`item_dataset`."""

    def load(i: int) -> tuple[dict[str, np.ndarray], int]:
        item = items[i]
        return {
            "spectrogram": _read(item.spectrogram, item.index),
            "frames": _read(item.frames, item.index),
        }, item.label

    names = tuple(outputs)
    ds = _batches(load, len(items), n_classes, batch_size, shuffle, seed, epoch_counter,
                  shard)
    return ds.map(lambda x, y: (x, {name: y for name in names}))


@dataclass(frozen=True)
class StoredForm:
    """What one sample of :func:`item_dataset` or :func:`segment_dataset` is, and how it
    becomes the network's input.

    Attributes
    ----------
    shape : tuple of int, or dict of them
        One sample's shape as the cache stores it (the dataset's ``x`` per sample).
    to_network : callable
        TensorFlow ops from a float32 batch of that form to the network's input:
        spectrograms get their deltas (:func:`tf_network_input`); frames are already it
        (the visual networks rescale them themselves).
    """

    shape: tuple[int, ...] | dict[str, tuple[int, ...]]
    to_network: Callable[[tf.Tensor | dict], tf.Tensor | dict]


def stored_form(items: Sequence[Item] | Sequence[SegmentItem]) -> StoredForm:
    """The :class:`StoredForm` of the samples of ``items``."""
    if not items:
        raise ValueError("no samples")
    first = items[0]
    if isinstance(first, SegmentItem):
        sound, pictures = stored_form([Item(first.spectrogram, (0,), 0)]), _open(first.frames)

        def segment(x: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            return {"spectrogram": sound.to_network(x["spectrogram"]), "frames": x["frames"]}

        return StoredForm({"spectrogram": sound.shape, "frames": pictures.shape[1:]}, segment)
    entry = _open(first.path)
    if isinstance(entry, SpectrogramFile):
        deltas = entry.deltas
        return StoredForm(entry.log_spectrograms().shape[1:],
                          lambda x: tf_network_input(x, deltas))
    return StoredForm(entry.shape[2:], lambda x: x)


def _batches(
    load: Callable[[int], tuple[np.ndarray | dict[str, np.ndarray], int]],
    n: int,
    n_classes: int,
    batch_size: int,
    shuffle: bool,
    seed: int,
    epoch_counter: list[int] | None,
    shard: Shard | None = None,
) -> tf.data.Dataset:
    """Batches of ``(x, one_hot(y))`` of samples ``load(0) .. load(n - 1)``, shuffled per epoch
    (only ``shard``'s part of each epoch when given).

    ``x`` stacks what ``load`` returns, an array or a dict of arrays whose shapes and
    types come from the first sample. One call reads a whole batch, its samples on every
    core (:func:`_readers`), and several batches are read ahead; one call per batch rather
    than per sample keeps Python's per-call cost low, and the threads keep the cores busy
    when ``tf.data`` runs few calls at once (``benchmarks/train.py --pipeline`` measures
    both pipelines).
    """
    if n == 0:
        raise ValueError("no training samples")
    length = n if shard is None else shard.size(n)
    if length == 0:
        raise ValueError(f"{n} training samples cannot be shared by {shard.count} workers")
    counter = epoch_counter if epoch_counter is not None else [0]
    first, _ = load(0)
    first_leaves = tf.nest.flatten(first)
    dtypes = [tf.as_dtype(a.dtype) for a in first_leaves]

    def order() -> np.ndarray:
        indices = np.arange(n, dtype=np.int64)
        if shuffle:
            np.random.default_rng([seed, counter[0]]).shuffle(indices)
            counter[0] += 1
        # The whole order is drawn on every worker, so that the parts are disjoint.
        return indices if shard is None else shard.take(indices)

    def load_batch(indices: np.ndarray) -> list[np.ndarray]:
        samples = list(_readers().map(load, indices.tolist()))
        columns = zip(*(tf.nest.flatten(x) for x, _ in samples), strict=True)
        return [*(np.stack(c) for c in columns), np.array([y for _, y in samples], np.int32)]

    def read(indices: tf.Tensor) -> tuple:
        *leaves, y = tf.numpy_function(load_batch, [indices], [*dtypes, tf.int32],
                                       stateful=False)
        leaves = [tf.ensure_shape(t, (None, *a.shape))
                  for t, a in zip(leaves, first_leaves, strict=True)]
        label = tf.one_hot(tf.ensure_shape(y, (None,)), n_classes)
        return tf.nest.pack_sequence_as(first, leaves), label

    def epoch(_: tf.Tensor) -> tf.data.Dataset:
        # One call per pass over the data (each iterator runs it again): a new order.
        indices = tf.numpy_function(order, [], tf.int64, stateful=True)
        return tf.data.Dataset.from_tensor_slices(tf.ensure_shape(indices, (length,)))

    ds = tf.data.Dataset.range(1).flat_map(epoch).batch(batch_size)
    ds = ds.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def array_dataset(
    x: dict[str, np.ndarray] | np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    batch_size: int,
    shuffle: bool,
    seed: int,
    shard: Shard | None = None,
) -> tf.data.Dataset:
    """Batches from in-memory arrays (Phase II embeddings); mixup is the training step's.

    With ``shard``, this worker's part of every epoch (see :class:`Shard`): every worker
    holds the same arrays and, seeded alike, shuffles them alike.
    """
    ds = tf.data.Dataset.from_tensor_slices((x, tf.one_hot(labels, n_classes)))
    if shuffle:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    if shard is not None:
        if shard.size(len(labels)) == 0:
            raise ValueError(f"{len(labels)} training samples cannot be shared by "
                             f"{shard.count} workers")
        ds = ds.take(shard.size(len(labels)) * shard.count).shard(shard.count, shard.index)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
