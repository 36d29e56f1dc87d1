"""SavedModel -> TFLite flatbuffer or ONNX graph."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np


def to_tflite(saved_model: Path, precision: str) -> bytes:
    """Convert the ``serve`` signature of ``saved_model`` to a TFLite model.

    Only TFLite built-in operators are allowed (no TensorFlow fallback ops), so the whole
    graph runs in TFLite's XNNPACK-accelerated kernels and LiteRT alone can run it.
    ``"int8"`` is dynamic-range quantisation (see :mod:`avsc_core.export.formats`).
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=["serve"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def _erfc_handler(ctx, node, name, args) -> None:
    """tf2onnx has no ``Erfc`` (TensorFlow's exact GELU uses it): ``erfc(x) = 1 - erf(x)``."""
    from tf2onnx import utils

    node.type = "Erf"
    dtype = ctx.get_dtype(node.output[0])
    one = ctx.make_const(utils.make_name(f"{node.name}_one"),
                         np.array(1, utils.map_onnx_to_numpy_type(dtype)))
    sub = ctx.insert_new_node_on_output("Sub", node.output[0], name=utils.make_name(node.name))
    ctx.replace_inputs(sub, [one.output[0], node.output[0]])
    ctx.copy_shape(node.output[0], sub.output[0])
    ctx.set_dtype(sub.output[0], dtype)


def to_onnx(saved_model: Path) -> bytes:
    """Convert the ``serve`` signature of ``saved_model`` to ONNX (fp32), inputs and outputs
    named as in the signature."""
    import tensorflow as tf
    from keras.src.export.tf2onnx_lib import patch_tf2onnx
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # numpy on the np.object it restores
        patch_tf2onnx()  # tf2onnx 1.17 still uses aliases numpy 2 removed; Keras ships the fix
    import tf2onnx

    loaded = tf.saved_model.load(str(saved_model))  # keeps the variables alive
    function = loaded.signatures["serve"]
    # Freezing inlines Keras's nested functions, which tf2onnx cannot follow otherwise.
    frozen = convert_variables_to_constants_v2(function)
    input_names = [t.name for t in frozen.inputs if t.dtype != tf.resource]
    # The frozen outputs come in the flattening order of the signature's output dict.
    keys = tf.nest.flatten({key: key for key in function.structured_outputs})
    output_names = [t.name for t in frozen.outputs]
    rename = dict(zip(output_names, keys, strict=True))
    rename.update({name: name.split(":")[0] for name in input_names})
    model, _ = tf2onnx.convert.from_graph_def(
        frozen.graph.as_graph_def(),
        input_names=input_names,
        output_names=output_names,
        opset=17,
        custom_op_handlers={"Erfc": (_erfc_handler, [])},
        tensors_to_rename=rename,
    )
    return model.SerializeToString()
