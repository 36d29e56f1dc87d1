"""Mixed precision: float16 computation where a GPU gains from it, float32 everywhere else.

Under ``mixed`` the backbones and the joint model are built with Keras's
``mixed_float16`` policy: layers compute in float16 and keep float32 weights, the
softmax layers (``dtype="float32"``, :mod:`avsc_core.models.heads`) and so the loss stay
float32, and Keras wraps the optimizer in a loss-scaling one. The policy is global in
Keras, so it is set only while a network is built (:func:`precision_policy`) and the
previous one restored after; what a bundle stores is always a float32 copy
(:func:`float32_copy`), so inference and export never see float16 layers.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import keras

from avsc_core.models.layers import walk_layers

log = logging.getLogger(__name__)

_POLICIES = {"mixed": "mixed_float16", "float32": "float32"}


def resolve_precision(requested: str, gpu: bool) -> str:
    """The precision a run trains in: ``"mixed"`` or ``"float32"``.

    Parameters
    ----------
    requested : {"auto", "mixed", "float32"}
        ``TrainConfig.precision``; ``auto`` is mixed on a GPU, float32 otherwise.
    gpu : bool
        Whether training runs on GPUs.
    """
    if requested == "auto":
        return "mixed" if gpu else "float32"
    if requested == "mixed" and not gpu:
        log.warning("--precision mixed on a CPU: float16 is emulated there and training "
                    "is slower than in float32")
    return requested


@contextlib.contextmanager
def precision_policy(precision: str) -> Iterator[None]:
    """Build networks under ``precision`` (``"mixed"`` or ``"float32"``, as
    :func:`resolve_precision` gives it) inside the block."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(_POLICIES[precision])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _float32_config(config: Any) -> Any:
    """``config`` (a serialised model) with every mixed dtype policy made float32."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and isinstance(config.get("config"), dict):
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {k: _float32_config(v) for k, v in config.items()}
    if isinstance(config, list):
        return [_float32_config(v) for v in config]
    return config


def float32_copy(model: keras.Model) -> keras.Model:
    """``model`` itself when it computes in float32 throughout, else a float32 model of the
    same architecture holding the same weights (a mixed model's weights are float32)."""
    if all(layer.dtype_policy.name == "float32" for layer in walk_layers(model)):
        return model
    config = _float32_config(keras.saving.serialize_keras_object(model))
    with precision_policy("float32"):
        copy = keras.saving.deserialize_keras_object(config)
    copy.set_weights(model.get_weights())
    return copy

