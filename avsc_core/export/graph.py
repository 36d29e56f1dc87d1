"""Turning a bundle's Keras network into a fixed-shape TensorFlow graph for the converters.

Three things matter for speed and correctness here:

- Keras's ConvNeXt writes its 7x7 depthwise convolutions as ``Conv2D(groups=channels)``.
  The converters keep them as grouped convolutions, which TFLite's int8 path runs 2x slower
  than a real depthwise convolution (measured: ConvNeXtTiny, 20 frames, 2.7 against 1.3
  core-seconds). :func:`with_depthwise_convolutions` rebuilds such layers as
  ``DepthwiseConv2D`` with the same weights (same outputs to float rounding).
- ConvNeXt normalises with ``LayerNormalization`` before a pointwise layer, and scales
  each block's output with a ``LayerScale``. The converters write a LayerNorm's affine
  part as three more passes over the activations (``inv * gamma`` broadcast to the whole
  tensor, ``x * that``, ``+ (beta - mean * that)``), and a LayerScale as one. Both fold
  exactly into the neighbouring pointwise layer: ``Dense(W, c)(LN(x) * g + b)`` equals
  ``Dense(diag(g) W, b W + c)(normalise(x))`` (the same for a ``valid`` ``Conv2D``
  reading the LayerNorm, summing ``b`` over its window), and ``Dense(W, c)(x) * s`` equals
  ``Dense(W diag(s), c * s)(x)``. :func:`prepared_for_export` applies all three rewrites
  (the answers change only by float rounding; ``tests/test_fast_runtime.py``), keeping
  ``gamma`` in the LayerNorm by default for the int8 exports' sake (see there).
- ConvNeXt writes its pointwise layers as ``Dense`` on ``(batch, h, w, channels)``, which
  OpenVINO runs as matrix products (FullyConnected). ``pointwise_as_conv=True`` writes
  them as ``Conv2D(kernel_size=1)`` instead, for the calibrated int8 ONNX exports only:
  with AVX-512 VNNI OpenVINO's int8 1x1 convolutions are 10 % faster (ConvNeXtTiny, 20
  frames, one thread: 0.34 against 0.38 CPU-seconds; ``emb2`` 1.5 % off fp32 against
  1.7 %, and all 122 agreement clips' labels equal to fp32's against 121), with oneDNN
  limited to AVX2 VNNI 7 % slower (0.68 against 0.63). In fp32 the 1x1 convolution is
  the slower one with AVX2 (1.60 against 1.04), so fp32 and bf16 exports keep ``Dense``.
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
from avsc_core.models.layers import walk_layers


def sanitize(name: str) -> str:
    """A tensor-safe version of an input name: ``"aud-mel"`` -> ``"aud_mel"``."""
    clean = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return clean if clean[:1].isalpha() else f"x_{clean}"


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
    return prepared_for_export(model, fold=False)


def _consumers(layer) -> set:
    return {id(node.operation): node.operation for node in layer._outbound_nodes}.values()


def _model_outputs(model) -> set[int]:
    """Ids of the layers whose output is an output of ``model`` or of a model inside it."""
    import keras

    ids = set()
    for m in [model, *(layer for layer in walk_layers(model) if isinstance(layer, keras.Model))]:
        for tensor in m.outputs:
            history = getattr(tensor, "_keras_history", None)
            if history is not None:
                ids.add(id(history[0]))
    return ids


def _last_axis(layer) -> bool:
    axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    rank = len(layer.input.shape)
    return [a % rank for a in axis] == [rank - 1]


def _is_pointwise(layer) -> bool:
    """A layer mixing the channels of each position (window) linearly, with no padding."""
    import keras

    if type(layer) is keras.layers.Dense:
        return True
    return (type(layer) is keras.layers.Conv2D and layer.groups == 1
            and layer.padding == "valid")


def _is_layer_scale(layer) -> bool:
    try:
        from keras.src.applications.convnext import LayerScale
    except ImportError:  # a Keras without it has no ConvNeXt to fold
        return False
    return type(layer) is LayerScale


def fold_plan(model) -> tuple[dict[str, str], dict[str, str]]:
    """What :func:`prepared_for_export` folds, by layer name.

    Returns
    -------
    norms : dict
        Pointwise layer -> the ``LayerNormalization`` (over the last axis, read by that
        layer alone) whose ``gamma`` and ``beta`` fold into it.
    scales : dict
        ``LayerScale`` -> the ``Dense`` (read by it alone) it folds into.
    """
    import keras

    outputs = _model_outputs(model)
    norms, scales = {}, {}
    for layer in walk_layers(model):
        if id(layer) in outputs:
            continue
        consumers = list(_consumers(layer))
        if len(consumers) != 1 or not consumers[0]._inbound_nodes:
            continue
        consumer = consumers[0]
        if not all(parent.operation is layer for node in consumer._inbound_nodes
                   for parent in node.parent_nodes):
            continue  # the consumer also reads something else: it cannot take the fold
        if (type(layer) is keras.layers.LayerNormalization and not layer.rms_scaling
                and (layer.center or layer.scale) and _last_axis(layer)
                and _is_pointwise(consumer)):
            norms[consumer.name] = layer.name
        elif type(layer) is keras.layers.Dense and _is_layer_scale(consumer):
            scales[consumer.name] = layer.name
    return norms, scales


def _is_spatial_dense(layer) -> bool:
    """A ``Dense`` applied at every position of an image-like ``(batch, h, w, c)`` tensor."""
    import keras

    return type(layer) is keras.layers.Dense and len(layer.input.shape) == 4


def prepared_for_export(model, fold: bool = True, fold_gamma: bool = False,
                        pointwise_as_conv: bool = False):
    """``model`` rewritten for the converters, with the same answers to float rounding.

    Grouped convolutions of one channel per group become ``DepthwiseConv2D``; with
    ``fold``, LayerNorms lose their affine part to the pointwise layer after them and
    LayerScales disappear into the ``Dense`` before them; with ``pointwise_as_conv``,
    a ``Dense`` on a ``(batch, h, w, c)`` tensor becomes a 1x1 ``Conv2D`` (see the
    module's text).
    By default only the LayerNorms' ``beta`` is folded (and the LayerScales), leaving
    ``gamma`` in the LayerNorm; ``fold_gamma=True`` folds it too.

    Folding ``beta`` changes only a bias, and a LayerScale scales the kernel's output
    channels, which int8 quantises one scale each: an int8 export rounds as before. Folding
    ``gamma`` scales the kernel's rows instead, so the int8 rounding moves: on ConvNeXtTiny
    with trained-like LayerNorm values (``benchmarks/inference.py``'s bundle, 12 real and
    sample clips' frames) the mean int8 error of ``emb2`` grew from 0.0133 to 0.0154
    (0.0140 without ``gamma``), and labels agreeing with fp32 fell from 121 to 120 of 122
    clips (``benchmarks/label.py --agree``), for a network 5.4 % faster (1.5 % without
    ``gamma``; 3 % and 1 % of a file's labelling time).
    Returns ``model`` itself when there is nothing to rewrite.
    """
    import keras
    import numpy as np

    norms, scales = fold_plan(model) if fold else ({}, {})
    folded_norms = set(norms.values())
    folded_dense = set(scales.values())
    if not norms and not scales and not any(
            _is_depthwise(layer) or (pointwise_as_conv and _is_spatial_dense(layer))
            for layer in walk_layers(model)):
        return model

    def clone(layer):
        config = layer.get_config()
        if _is_depthwise(layer):
            return keras.layers.DepthwiseConv2D(
                kernel_size=config["kernel_size"],
                strides=config["strides"],
                padding=config["padding"],
                dilation_rate=config["dilation_rate"],
                use_bias=config["use_bias"],
                name=layer.name,
                dtype=layer.dtype_policy,
            )
        if layer.name in folded_norms:
            config.update(center=False, scale=config["scale"] and not fold_gamma)
        elif layer.name in norms or layer.name in folded_dense:
            config["use_bias"] = True  # it takes the LayerNorm's shift (or stays as it was)
        elif layer.name in scales:
            return keras.layers.Activation("linear", name=layer.name, dtype=layer.dtype_policy)
        if pointwise_as_conv and _is_spatial_dense(layer):
            return keras.layers.Conv2D(
                config["units"], 1, data_format="channels_last", activation=config["activation"],
                use_bias=config["use_bias"], name=layer.name, dtype=layer.dtype_policy)
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    originals = {layer.name: layer for layer in walk_layers(model)}
    scale_of = {dense: originals[ls].get_weights()[0] for ls, dense in scales.items()}
    for layer in walk_layers(copy):
        if isinstance(layer, keras.Model) or not layer.weights:
            continue
        weights = originals[layer.name].get_weights()
        if layer.name in folded_norms:
            weights = weights[:1]  # gamma kept (fold_gamma=False), beta folded
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            # Grouped (kh, kw, 1, channels) -> depthwise (kh, kw, channels, 1).
            kernel = weights[0]
            weights[0] = kernel.reshape(*kernel.shape[:2], kernel.shape[3], 1)
        if layer.name in norms:
            weights = _fold_norm(originals[norms[layer.name]], weights, fold_gamma)
        if layer.name in scale_of:
            kernel, bias = _with_bias(weights)
            s = scale_of[layer.name].astype(np.float64)
            weights = [(kernel * s).astype(kernel.dtype), (bias * s).astype(bias.dtype)]
        if isinstance(layer, keras.layers.Conv2D) and weights[0].ndim == 2:
            weights[0] = weights[0].reshape(1, 1, *weights[0].shape)  # Dense -> 1x1
        layer.set_weights(weights)
    return copy


def _with_bias(weights: list):
    import numpy as np

    kernel = weights[0]
    bias = weights[1] if len(weights) > 1 else np.zeros(kernel.shape[-1], kernel.dtype)
    return kernel.astype(np.float64), bias.astype(np.float64)


def _fold_norm(norm, weights: list, fold_gamma: bool = True) -> list:
    """The weights of the pointwise layer after ``norm`` with its ``gamma``/``beta`` taken in:
    ``diag(gamma) W`` and ``c + beta W`` (summed over a convolution's window), in float64."""
    import numpy as np

    dtype = weights[0].dtype
    kernel, bias = _with_bias(weights)
    channels = kernel.shape[-2]
    gamma = (np.asarray(norm.gamma, np.float64) if norm.scale and fold_gamma
             else np.ones(channels))
    beta = (np.asarray(norm.beta, np.float64) if norm.center else np.zeros(channels))
    # kernel: (channels, out) for Dense, (kh, kw, channels, out) for Conv2D.
    shift = np.einsum("kco,c->o", kernel.reshape(-1, *kernel.shape[-2:]), beta)
    return [(kernel * gamma[:, None]).astype(dtype), (bias + shift).astype(dtype)]


def backbone_graph(model, batch: int, saved_model: Path, pointwise_as_conv: bool = False
                   ) -> dict[str, str]:
    """Write backbone ``model`` with outputs ``emb1``, ``emb2``, ``probs`` as a SavedModel
    (rewritten by :func:`prepared_for_export`).

    Returns
    -------
    dict
        Keras input name -> graph input name.
    """
    import keras

    model = prepared_for_export(model, pointwise_as_conv=pointwise_as_conv)
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

