"""Walking a Keras model's layers, nested models included."""

from __future__ import annotations

from collections.abc import Iterator

import keras


def walk_layers(model: keras.Model) -> Iterator[keras.layers.Layer]:
    """Every layer of ``model``, depth first: a nested model, then its own layers."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from walk_layers(layer)
