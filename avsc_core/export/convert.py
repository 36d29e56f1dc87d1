"""SavedModel -> TFLite flatbuffer or ONNX graph.

TensorFlow writes ConvNeXt's exact GELU as ``0.5 * x * erfc(-x / sqrt(2))``, which tf2onnx
(with :func:`_erfc_handler`) turns into ``0.5 * x * (1 - erf(-x * 0.7071))``. Neither
OpenVINO nor ONNX Runtime recognises that as a GELU, so it ran as several passes over the
block's widest tensor. :func:`canonical_gelu` rewrites it as ``0.5 * x * (1 + erf(x /
sqrt(2)))`` (erf is odd: the same value), which both compute as one GELU, and OpenVINO
inside the pointwise layer before it. Measured on ConvNeXtTiny, 20 frames, one thread,
AMD EPYC with AVX-512, CPU seconds: the fp32 export in ONNX Runtime 1.58 -> 1.33; the
int8 export in OpenVINO, with :func:`~avsc_core.export.quantize.drop_float_only_qdq`,
0.365 -> 0.30 (with oneDNN limited to AVX2 VNNI 0.82 -> 0.72). The bf16 export keeps
TensorFlow's form: OpenVINO computes it in fp32 on CPUs without native bf16, where its
matrix products with a GELU inside run in oneDNN's kernels instead of MLAS's, slower
(oneDNN limited to AVX2: 1.13 -> 1.52; in native bf16 0.544 -> 0.521).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


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


def canonical_gelu(model) -> int:
    """Rewrite ``model``'s (an ``onnx.ModelProto``) erfc-form GELUs in place (see the
    module's text); returns how many.

    The pattern is ``Sub(1, Erf(Mul(Neg(x), 1/sqrt(2))))``, constants as initialisers;
    it becomes ``Add(1, Erf(Div(x, sqrt(2))))``. Only where nothing else reads the
    rewritten tensors (other nodes, the graph's outputs): their values change sign.
    """
    from onnx import numpy_helper

    graph = model.graph
    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer
              if int(np.prod(i.dims)) == 1}
    producer, consumers = node_links(graph)
    for output in graph.output:  # an output counts as a reader
        consumers.setdefault(output.name, []).append(output)

    def scalar(name: str, value: float) -> bool:
        return name in values and bool(np.allclose(values[name], value, rtol=1e-6))

    def only_reader(name: str, node) -> bool:
        # By output name: protobuf need not hand out the same node object twice.
        readers = consumers.get(name, [])
        return len(readers) == 1 and list(getattr(readers[0], "output", [])) == list(node.output)

    taken = {i.name for i in graph.initializer} | set(producer) | set(consumers)

    def fresh(base: str) -> str:
        name, k = base, 0
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        return name

    sqrt2, one = fresh("avsc_gelu_sqrt2"), fresh("avsc_gelu_one")
    dropped, count, dtype = set(), 0, np.float32
    for erf in graph.node:
        scale = producer.get(erf.input[0]) if erf.op_type == "Erf" else None
        readers = consumers.get(erf.output[0], [])
        if scale is None or scale.op_type != "Mul" or len(readers) != 1:
            continue
        (sub,) = readers
        neg = next((producer[name] for name in scale.input
                    if name in producer and producer[name].op_type == "Neg"), None)
        if (neg is None or not only_reader(scale.output[0], erf)
                or not any(scalar(name, 2 ** -0.5) for name in scale.input)
                or getattr(sub, "op_type", None) != "Sub"
                or list(sub.input)[1:] != [erf.output[0]] or not scalar(sub.input[0], 1.0)):
            continue
        dtype = values[sub.input[0]].dtype
        x = neg.input[0]
        scale.op_type = "Div"
        del scale.input[:]
        scale.input.extend([x, sqrt2])
        sub.op_type = "Add"
        del sub.input[:]
        sub.input.extend([one, erf.output[0]])
        if only_reader(neg.output[0], scale):
            dropped.add(neg.output[0])
        count += 1
    if count:
        kept = [node for node in graph.node if not set(node.output) & dropped]
        del graph.node[:]
        graph.node.extend(kept)
        graph.initializer.extend([
            numpy_helper.from_array(np.array(np.sqrt(2.0), dtype), sqrt2),
            numpy_helper.from_array(np.array(1.0, dtype), one)])
        drop_unused_initializers(graph)
    return count


def node_links(graph) -> tuple[dict[str, Any], dict[str, list]]:
    """``graph``'s tensor name -> the node writing it, and -> the nodes reading it (each
    once, in graph order)."""
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in dict.fromkeys(node.input):
            consumers.setdefault(name, []).append(node)
    return producer, consumers


def _names_read(graph) -> set[str]:
    """Every tensor name ``graph``'s nodes read, also inside subgraphs (If, Loop)."""
    from onnx import AttributeProto

    names = set()
    for node in graph.node:
        names.update(node.input)
        for attribute in node.attribute:
            if attribute.type == AttributeProto.GRAPH:
                names |= _names_read(attribute.g)
            elif attribute.type == AttributeProto.GRAPHS:
                for sub in attribute.graphs:
                    names |= _names_read(sub)
    return names


def drop_unused_initializers(graph) -> None:
    """Remove the initialisers of ``graph`` (an ``onnx.GraphProto``) that nothing reads:
    ONNX Runtime warns about each one when it loads the graph. Those that are also graph
    inputs or outputs stay."""
    used = _names_read(graph) | {o.name for o in graph.output} | {i.name for i in graph.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def to_onnx(saved_model: Path, gelu_op: bool = True) -> bytes:
    """Convert the ``serve`` signature of ``saved_model`` to ONNX (fp32), inputs and outputs
    named as in the signature; with ``gelu_op``, GELUs in the form engines compute as one
    operation (:func:`canonical_gelu`; the module's text says where that is slower)."""
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
    if gelu_op:
        log.debug("%s: %d GELUs rewritten", saved_model, canonical_gelu(model))
    return model.SerializeToString()
