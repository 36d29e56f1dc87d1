"""The compiled training step: what the input pipeline hands over becomes the network's
input on the device, mixup included, so the CPUs only read the cache.

The pipeline (:mod:`avsc_core.train.pipeline`) yields what the cache stores: uint8 frames
and float16 log spectrograms (a quarter and a sixth of the float32 network inputs). A
:class:`DeviceTrainer` takes that form, casts it to float32 and mixes it up in its
``train_step`` (traced by ``tf.function``, run on the GPU when there is one), and its
graph adds the spectrograms' deltas before the network it trains, whose layers it
shares. The visual networks' own preprocessing (rescaling, ConvNeXt's normalisation) is
part of the networks. The trainer adds no variable, so checkpoints of its weights are the
network's; it is never saved (the network is).

Also here: the learning-rate schedule, and the loss and metrics every trained model
compiles with.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from avsc_core.models import scene_loss
from avsc_core.train.distribute import is_multi_worker
from avsc_core.train.pipeline import StoredForm, mixup


class _Prepare(keras.layers.Layer):
    """``prepare`` as a layer (float32 whatever the policy: deltas of float16 log
    spectrograms would lose their precision); training models only, never saved."""

    def __init__(self, prepare: Callable[[Any], Any], **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self._prepare = prepare

    def call(self, x):
        return self._prepare(x)


class DeviceTrainer(keras.Model):
    """A functional model ``stored form -> network input -> network`` whose steps cast what
    the pipeline yields to float32 and, in training, mix it up.

    Mixup mixes the stored form (frames, log spectrograms before their deltas): the
    deltas are linear, so it is the mixup of the network inputs, on a sixth of the data.
    Built by :func:`training_model`.

    Parameters
    ----------
    mixup_alpha : float
        Mixup's Beta(alpha, alpha); 0 turns it off.
    seed : int
        With the optimizer's step count (restored by checkpoints, so a resumed run mixes
        as an uninterrupted one would) and the replica, seeds each batch's mixup.
    """

    def __init__(self, inputs, outputs, *, mixup_alpha: float = 0.0, seed: int = 0,
                 **kwargs):
        super().__init__(inputs, outputs, **kwargs)
        self._mixup_alpha = float(mixup_alpha)
        self._seed = int(seed)

    def train_step(self, data):
        x, y = data
        x = _to_float32(x)
        if self._mixup_alpha > 0:
            x, y = self._mixup(x, y)
        return self._reducible(super().train_step((x, y)))

    def test_step(self, data):
        x, y = data
        return self._reducible(super().test_step((_to_float32(x), y)))

    def _reducible(self, logs):
        # With several workers Keras averages a step's figures over the replicas along
        # their first axis, which a scalar lacks (keras-team/keras#20585): one replica's
        # figure becomes a vector of one. Epoch figures are read from the metrics.
        if not is_multi_worker(self.distribute_strategy):
            return logs
        return tf.nest.map_structure(lambda v: tf.reshape(v, [-1]), logs)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras learns the batch's shapes from the first batch averaged over the replicas:
        # with several workers that is a collective over a whole batch, and one that fails
        # on a batch of several tensors (keras-team/keras#20585). One replica's batch has
        # the shapes as well.
        if iterator is not None and is_multi_worker(self.distribute_strategy):
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(_one_replica, next(batches))
                break
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _mixup(self, x, y):
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        key = tf.stack([tf.constant(self._seed, tf.int64) * 1009 + tf.cast(replica, tf.int64),
                        tf.cast(self.optimizer.iterations, tf.int64)])
        if isinstance(y, dict):
            # Every output of a joint model learns the same mixed target.
            first = next(iter(y))
            x, mixed = mixup(x, y[first], self._mixup_alpha, key)
            return x, {name: mixed for name in y}
        return mixup(x, y, self._mixup_alpha, key)


def _one_replica(value):
    """The first local replica's part of a distributed value (the value itself otherwise)."""
    if isinstance(value, tf.distribute.DistributedValues):
        return value.values[0]
    return value


def _to_float32(x):
    return tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), x)


def training_model(net: keras.Model, stored: StoredForm | None, mixup_alpha: float,
                   seed: int) -> DeviceTrainer:
    """A :class:`DeviceTrainer` of ``net`` (built, not compiled): train it, save ``net``.

    ``stored`` is the form the pipeline yields (:func:`~avsc_core.train.pipeline.stored_form`);
    ``None`` when it yields ``net``'s input already (Phase II embeddings).
    """
    name = f"{net.name}_training"
    if stored is None:
        return DeviceTrainer(net.input, net.output, mixup_alpha=mixup_alpha, seed=seed,
                             name=name)
    inputs = ({key: keras.Input(shape, name=key) for key, shape in stored.shape.items()}
              if isinstance(stored.shape, dict) else keras.Input(stored.shape))
    outputs = net(_Prepare(stored.to_network, name="network_input")(inputs))
    return DeviceTrainer(inputs, outputs, mixup_alpha=mixup_alpha, seed=seed, name=name)


def learning_rate(peak: float, schedule: str, warmup_fraction: float, total_steps: int):
    """The learning rate of one network's training: ``peak``, or (``"cosine"``) a linear
    warm-up from 0 to ``peak`` over ``warmup_fraction`` of ``total_steps`` followed by a
    cosine decay to 0 at ``total_steps``.

    The schedule reads the optimizer's step count, which checkpoints restore, so a
    resumed run continues on the same curve.
    """
    if schedule == "constant" or total_steps < 1:
        return peak
    warmup = math.floor(warmup_fraction * total_steps)
    if warmup == 0:
        return keras.optimizers.schedules.CosineDecay(peak, total_steps)
    return keras.optimizers.schedules.CosineDecay(
        0.0, total_steps - warmup, warmup_target=peak, warmup_steps=warmup)


def metrics() -> list[keras.metrics.Metric]:
    """Accuracy, and the log loss that selects the best epoch and stops training early
    (the loss itself adds the L2 penalty and, in training, sees mixed targets)."""
    return [keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.CategoricalCrossentropy(name="log_loss")]


def compile_model(model: keras.Model, optimizer: keras.optimizers.Optimizer) -> None:
    """Compile a single-output network (a backbone, a fusion head) with the scene loss."""
    model.compile(optimizer=optimizer, loss=scene_loss(), metrics=metrics())
