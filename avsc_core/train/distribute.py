"""Choosing the ``tf.distribute`` strategy: several GPUs, several machines, or one device;
and the datasets of a multi-worker run, each worker reading its own part of every epoch.

The devices asked for are checked when the strategy is made, which a run does before it
decodes any clip (:func:`avsc_core.train.run.train_model`): a GPU that is not there is one
line naming what TensorFlow sees, not a failure after hours of decoding.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from avsc_core.errors import AvscError
from avsc_core.train.pipeline import Shard

log = logging.getLogger(__name__)

Devices = Sequence[str] | int | None


def _visible_gpus() -> list[str]:
    return [d.name for d in tf.config.list_logical_devices("GPU")]


def _why_no_gpu() -> str:
    if not tf.test.is_built_with_cuda():
        return "this TensorFlow is built without CUDA (install tensorflow[and-cuda])"
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None:
        return f"CUDA_VISIBLE_DEVICES is {hidden!r}"
    return "no CUDA driver or device was found; see nvidia-smi"


def _same_device(a: str, b: str) -> bool:
    spec_a, spec_b = tf.DeviceSpec.from_string(a), tf.DeviceSpec.from_string(b)
    return ((spec_a.device_type or "").upper(), spec_a.device_index or 0) == (
        (spec_b.device_type or "").upper(), spec_b.device_index or 0)


def _cluster() -> dict:
    """The ``TF_CONFIG`` cluster spec, or an error naming what is wrong with it."""
    try:
        spec = json.loads(os.environ["TF_CONFIG"])
        cluster = spec["cluster"]
        if not isinstance(cluster, dict) or not isinstance(spec.get("task", {}), dict):
            raise TypeError("'cluster' and 'task' must be objects")
    except (ValueError, KeyError, TypeError) as exc:
        raise AvscError(f"TF_CONFIG: not a multi-worker cluster spec ({exc}); unset it to "
                        "train on this machine alone") from None
    return cluster


def device_names(devices: Devices) -> list[str]:
    """The devices ``devices`` names, checked against what TensorFlow sees.

    Parameters
    ----------
    devices : sequence of str, int or None
        Device names (``"/gpu:0"``, ``"/cpu:0"``), or a number of GPUs (the first ones);
        ``None`` for every visible GPU (none on a machine without).

    Raises
    ------
    AvscError
        A device TensorFlow does not see, or more GPUs than it sees; the message names
        the visible GPUs, or why there are none.
    """
    gpus = _visible_gpus()
    seen = (f"the GPUs it sees: {', '.join(gpus)}" if gpus
            else f"it sees no GPU: {_why_no_gpu()}")
    if devices is None:
        return gpus
    if isinstance(devices, int):
        if devices < 1 or devices > len(gpus):
            raise AvscError(f"--devices {devices}: TensorFlow cannot train on {devices} "
                            f"GPU(s); {seen}")
        return gpus[:devices]
    visible = [d.name for d in tf.config.list_logical_devices()]
    for name in devices:
        try:
            known = any(_same_device(name, v) for v in visible)
        except ValueError:
            known = False
        if not known:
            raise AvscError(f"--devices {','.join(devices)}: TensorFlow does not see "
                            f"{name}; {seen}")
    return list(devices)


def distribution_strategy(devices: Devices = None) -> tf.distribute.Strategy:
    """The strategy training runs under.

    - ``TF_CONFIG`` in the environment (a cluster spec): ``MultiWorkerMirroredStrategy``,
      one process per machine.
    - ``devices`` given, or more than one GPU visible: ``MirroredStrategy`` over them.
    - Otherwise the default strategy (one device).

    Raises
    ------
    AvscError
        Devices that are not there (:func:`device_names`), a ``TF_CONFIG`` that is not a
        cluster spec.
    """
    if os.environ.get("TF_CONFIG"):
        log.info("multi-worker training over %s", _cluster())
        return tf.distribute.MultiWorkerMirroredStrategy()
    names = device_names(devices)
    if devices is not None or len(names) > 1:
        return tf.distribute.MirroredStrategy(names)
    return tf.distribute.get_strategy()


def uses_gpu(strategy: tf.distribute.Strategy) -> bool:
    """Whether ``strategy`` computes on GPUs (the default and multi-worker strategies do
    when TensorFlow sees one)."""
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return any("GPU" in d.upper() for d in strategy.extended.worker_devices)
    return bool(_visible_gpus())


# make(batch, shard) -> (training dataset, validation dataset or None): see worker_datasets.
MakeDatasets = Callable[[int, Shard | None], tuple[Any, Any]]


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """Whether ``strategy`` trains across processes (``TF_CONFIG``, one per machine)."""
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode())


def worker_steps(examples: int, per_replica_batch: int, workers: int,
                 local_replicas: int = 1) -> int:
    """Steps per epoch of every worker when each reads its :class:`Shard` of ``examples``.

    Each worker's pipeline yields ``examples // workers`` samples (the same on every
    worker) in batches of ``per_replica_batch``; a step takes one batch per local replica
    (the last step may leave some replicas without one, as it does on one machine).
    """
    batches = math.ceil(Shard(0, workers).size(examples) / per_replica_batch)
    return math.ceil(batches / local_replicas)


def epoch_steps(examples: int, batch: int, strategy: tf.distribute.Strategy) -> int:
    """Steps per epoch of ``examples`` in global batches of ``batch`` under ``strategy``
    (what the learning-rate schedule and the progress count on)."""
    if not is_multi_worker(strategy):
        return math.ceil(examples / batch)
    local = len(strategy.extended.worker_devices)
    workers = strategy.num_replicas_in_sync // local
    return worker_steps(examples, batch // strategy.num_replicas_in_sync, workers, local)


def worker_datasets(strategy: tf.distribute.Strategy, batch: int,
                    make: MakeDatasets) -> tuple[Any, Any]:
    """The training and validation datasets of a stage, for ``model.fit``.

    Parameters
    ----------
    strategy : tf.distribute.Strategy
    batch : int
        The global batch (every replica's, summed).
    make : callable
        ``make(batch, shard)``: the training dataset (reading only ``shard``'s part of
        every epoch when ``shard`` is not ``None``) and the validation one (or ``None``),
        batched by ``batch``.

    Returns
    -------
    tuple
        ``make(batch, None)`` unless ``strategy`` is multi-worker, so that a run on one
        machine reads what it always has. Multi-worker: distributed datasets that each
        worker builds for itself, batched per replica (``tf.distribute``'s
        ``distribute_datasets_from_function``); its training dataset reads the worker's
        :class:`~avsc_core.train.pipeline.Shard` of every epoch (:func:`worker_steps`
        steps, the same on every worker), and its validation dataset all of the
        validation split: no validation sample is dropped, and every worker weighs the
        whole split alike in the validation figures that choose the best epoch and stop
        early (which Keras averages over the workers, so each takes the same decisions).
    """
    if not is_multi_worker(strategy):
        return make(batch, None)
    built: dict[int, tuple[Any, Any]] = {}

    def pipelines(context: tf.distribute.InputContext) -> tuple[Any, Any]:
        # Built once per worker, for both datasets (each reads one of the pair).
        key = context.input_pipeline_id
        if key not in built:
            shard = Shard(context.input_pipeline_id, context.num_input_pipelines)
            built[key] = make(context.get_per_replica_batch_size(batch), shard)
        return built[key]

    train = strategy.distribute_datasets_from_function(lambda c: pipelines(c)[0])
    if all(val is None for _, val in built.values()):
        return train, None
    return train, strategy.distribute_datasets_from_function(lambda c: pipelines(c)[1])
