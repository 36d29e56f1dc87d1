"""Choosing the ``tf.distribute`` strategy: several GPUs, several machines, or one device."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence

import tensorflow as tf

log = logging.getLogger(__name__)


def distribution_strategy(devices: Sequence[str] | None = None) -> tf.distribute.Strategy:
    """The strategy training runs under.

    - ``TF_CONFIG`` in the environment (a cluster spec): ``MultiWorkerMirroredStrategy``,
      one process per machine.
    - ``devices`` given, or more than one GPU visible: ``MirroredStrategy`` over them.
    - Otherwise the default strategy (one device).
    """
    if os.environ.get("TF_CONFIG"):
        cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
        log.info("multi-worker training over %s", cluster)
        return tf.distribute.MultiWorkerMirroredStrategy()
    if devices:
        return tf.distribute.MirroredStrategy(list(devices))
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([g.name for g in gpus])
    return tf.distribute.get_strategy()
