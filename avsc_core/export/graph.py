"""Turning a bundle's Keras network into a fixed-shape TensorFlow graph for the converters.

Two things matter for speed and correctness here:

- Keras's ConvNeXt writes its 7x7 depthwise convolutions as ``Conv2D(groups=channels)``.
  The converters keep them as grouped convolutions, which TFLite's int8 path runs 2x slower
  than a real depthwise convolution (measured: ConvNeXtTiny, 20 frames, 2.7 against 1.3
  core-seconds). :func:`with_depthwise_convolutions` rebuilds such layers as
  ``DepthwiseConv2D`` with the same weights (same outputs to float rounding).
- Fusion heads take a dict of embeddings keyed by backbone names such as ``"aud-mel"``;
  graph and tensor names cannot carry every character, so inputs get :func:`sanitize`\\ d
  names and the export records the mapping.

The batch size is fixed in the graph (the frames of one segment for a visual backbone,
one segment otherwise): fixed shapes let the converters fold every shape computation and
let XNNPACK plan memory once.
"""

from __future__ import annotations

import re
from pathlib import Path

from avsc_core.inference.backbones import OUTPUTS


def sanitize(name: str) -> str:
    """A tensor-safe version of an input name: ``"aud-mel"`` -> ``"aud_mel"``."""
    clean = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return clean if clean[:1].isalpha() else f"x_{clean}"


def _walk(model):
    import keras

    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _walk(layer)


def _is_depthwise(layer) -> bool:
    import keras

    return (
        type(layer) is keras.layers.Conv2D
        and layer.groups > 1
        and layer.groups == layer.filters
        and layer.kernel.shape[2] == 1
    )


def with_depthwise_convolutions(model):
    """``model``, with grouped convolutions of one channel per group as ``DepthwiseConv2D``.

    Returns ``model`` itself when it has none.
    """
    import keras

    if not any(_is_depthwise(layer) for layer in _walk(model)):
        return model

    def clone(layer):
        if _is_depthwise(layer):
            config = layer.get_config()
            return keras.layers.DepthwiseConv2D(
                kernel_size=config["kernel_size"],
                strides=config["strides"],
                padding=config["padding"],
                dilation_rate=config["dilation_rate"],
                use_bias=config["use_bias"],
                name=layer.name,
                dtype=layer.dtype_policy,
            )
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    originals = {layer.name: layer for layer in _walk(model)}
    for layer in _walk(copy):
        if isinstance(layer, keras.Model) or not layer.weights:
            continue
        weights = originals[layer.name].get_weights()
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            # Grouped (kh, kw, 1, channels) -> depthwise (kh, kw, channels, 1).
            kernel = weights[0]
            weights[0] = kernel.reshape(*kernel.shape[:2], kernel.shape[3], 1)
        layer.set_weights(weights)
    return copy


def backbone_graph(model, batch: int, saved_model: Path) -> dict[str, str]:
    """Write backbone ``model`` with outputs ``emb1``, ``emb2``, ``probs`` as a SavedModel.

    Returns
    -------
    dict
        Keras input name -> graph input name.
    """
    import keras

    model = with_depthwise_convolutions(model)
    outputs = keras.Model(model.input, [model.get_layer(n).output for n in OUTPUTS])
    name = model.inputs[0].name
    inputs = {name: sanitize(name)}

    def serve(x):
        return dict(zip(OUTPUTS, outputs(x, training=False)))

    _write(outputs, serve, [(inputs[name], (batch, *model.inputs[0].shape[1:]))], saved_model)
    return inputs


def head_graph(model, batch: int, saved_model: Path) -> dict[str, str]:
    """Write fusion head ``model`` (dict of embeddings in, ``probs`` out) as a SavedModel.

    Returns
    -------
    dict
        Embedding (backbone) name -> graph input name.
    """
    names = [tensor.name for tensor in model.inputs]
    inputs = {name: sanitize(name) for name in names}
    if len(set(inputs.values())) != len(inputs):
        raise ValueError(f"input names {names} collide once sanitised")
    specs = [(inputs[n], (batch, *t.shape[1:])) for n, t in zip(names, model.inputs)]

    def serve(*tensors):
        return {"probs": model(dict(zip(names, tensors)), training=False)}

    _write(model, serve, specs, saved_model)
    return inputs


def _write(model, serve, specs: list[tuple[str, tuple]], saved_model: Path) -> None:
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    signature = [tf.TensorSpec(shape, tf.float32, name=name) for name, shape in specs]
    archive.add_endpoint("serve", serve, input_signature=signature)
    archive.write_out(str(saved_model), verbose=False)

