"""Calibrated int8 ONNX exports: clips like those to be labelled fix each layer's ranges.

TFLite's int8 (dynamic range) needs no data: activations are quantised per batch row at
run time. A *static* int8 graph needs ranges for its activations, measured on
representative inputs, and in exchange runs every quantised convolution and matrix product
in int8 end to end. ONNX Runtime's quantiser writes it as a QDQ graph (``QuantizeLinear``/
``DequantizeLinear`` pairs around the layers), which OpenVINO's CPU plugin runs in its int8
kernels (see :mod:`avsc_core.inference.runtime`).

Choices, measured on the ``paper`` preset's visual networks (real street and sample clips'
frames, AMD EPYC with AVX-512 VNNI, one thread, CPU seconds per 20 frames, mean relative
error of ``emb2`` against fp32):

=============  ==============  =======================  =======================
network        TFLite int8     QDQ in OpenVINO          QDQ in ONNX Runtime
=============  ==============  =======================  =======================
ConvNeXtTiny   0.62 (0.014)    0.37 (0.025)             0.81 (0.024)
InceptionV3    0.18 (0.017)    0.14 (0.022)             0.32 (0.023)
=============  ==============  =======================  =======================

(Those are the figures that chose QDQ in OpenVINO, before the two ConvNeXt changes below.)

- Only the visual backbones are quantised; the audio ones and the heads stay fp32. The
  audio networks' static int8 embeddings were 3.5-4 % off (TFLite's dynamic int8: far
  less), which flipped near-tied fused labels on 4 of 122 clips, for 0.07 CPU seconds a
  clip saved (0.12 in fp32 against 0.05, all three).
- The dense layers after the last pooling (``emb1``, ``emb2``, ``probs``: a few thousand
  multiply-adds a frame) stay fp32: it halved ConvNeXtTiny's error in the segment
  probabilities (mean largest difference 0.0042 -> 0.0021; TFLite int8: 0.0026).
- ConvNeXt's 7x7 depthwise (grouped) convolutions stay in float: in bf16 they took 12
  against 16 ms per 10 frames in int8, and without the rounding before them OpenVINO
  joins more of the layers around them (50 fused subgraphs instead of 65). ConvNeXtTiny's
  ``emb2`` went from 1.90 % to 1.30 % off fp32 (120 frames of the six street videos), for
  0.314 against 0.322 CPU seconds per 20 frames; without native bf16 (oneDNN limited to
  AVX512_CORE_VNNI or AVX2_VNNI, where they run in fp32) the network took as long as with
  int8 ones, or 2 % less.
- Only ``Conv``, ``MatMul`` and ``Gemm`` are quantised: LayerNorm, GELU, pooling and the
  additions stay in fp32 (OpenVINO's own quantiser, NNCF, in its default mode, which
  quantises more than these, gave ConvNeXt four times the error).
- A layer's output is rounded to int8 only where an int8 layer reads it
  (:func:`drop_float_only_qdq`). ONNX Runtime's quantiser rounds every convolution's
  output, also where only float layers (LayerNorm, GELU, the residual addition) read it:
  that rounding gains nothing and keeps OpenVINO from computing ConvNeXt's GELU inside
  the pointwise convolution before it. With both this and the GELU written as one
  operation (:func:`avsc_core.export.convert.canonical_gelu`; neither alone gains much)
  ConvNeXtTiny took 0.30 against 0.365 CPU seconds per 20 frames (``emb2`` 1.64 % off
  fp32 against 1.63 %). InceptionV3's convolutions feed ReLUs, pooling and
  concatenations, which OpenVINO runs in int8, so it keeps them (without them it was 5 %
  slower). ONNX Runtime, which runs this export only where OpenVINO is missing, fuses a
  convolution into int8 only with the rounding after it, so there ConvNeXtTiny now runs
  slower than the fp32 graph (1.68 CPU seconds, against 0.79 before and 1.41 for the
  same graph in fp32); ``auto`` then takes every other export first, and
  :class:`~avsc_core.inference.predictor.Predictor` warns when it is run.
- Weights per output channel, symmetric int8; activations per tensor, asymmetric uint8
  (what x86 int8 dot products take). All 8 bits of the weights: without VNNI those dot
  products overflow on them, but 7-bit weights (ONNX Runtime's ``reduce_range``), which
  do not, cost VNNI CPUs 3 of 122 fp32 labels and left 4 wrong without VNNI; such a CPU
  runs another export (:func:`avsc_core.inference.runtime.int8_overflows`).
- Ranges are min/max over the calibration inputs: percentile ranges (99.999 %) took six
  times longer to fit and gave about the same error (ConvNeXtTiny 0.024, InceptionV3 0.025).
- What stays in float runs in bf16 where the CPU computes it natively
  (:func:`avsc_core.inference.runtime.openvino_precision`). On 60 frames of the real
  street videos: ConvNeXtTiny 0.40 -> 0.36 CPU seconds per 20 frames (``emb2`` error
  0.018 -> 0.019), InceptionV3 0.15 -> 0.14 (0.032 -> 0.033); on the 22 real clips' audio,
  the three audio networks 0.11 -> 0.06 CPU seconds a clip, ``emb2`` 0.3-0.4 % off fp32
  (a tenth of what their static int8 was). The heads stay in fp32: in bf16 they tied a
  clip's two best classes, 0.018 apart in fp32 (120 of 122 labels equal to fp32's; 121
  with fp32 heads, as without bf16).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avsc_core.bundle import Bundle
from avsc_core.errors import AvscError, first_line
from avsc_core.progress import Cancelled, Progress, ProgressCallback

log = logging.getLogger(__name__)

# Calibration files used by default: with 16 (9 of them videos) two near-tied labels of 122
# clips changed, with 20 videos one (as with TFLite's int8); an export then decodes for
# about a minute on 2 cores (paper preset).
CALIBRATION_FILES = 32
# Segments taken from each file: a long file must not outweigh the others or fill memory.
SEGMENTS_PER_FILE = 3
QUANTISED_OPS = ("Conv", "MatMul", "Gemm")
# Of those, the ones left in float (see the module's text).
KEPT_FLOAT = ("grouped Conv", "MatMul and Gemm after the last pooling")
QUANTISED_MODALITIES = ("visual",)
POOLING_OPS = ("ReduceMean", "GlobalAveragePool", "GlobalMaxPool")
# Layers that compute in float whatever their input: an int8 rounding before them gains
# nothing (see drop_float_only_qdq).
FLOAT_ONLY_OPS = ("Add", "Sub", "Mul", "Div", "Neg", "Erf", "ReduceMean", "Sqrt",
                  "Reciprocal", "Pow")


def quantised_backbones(bundle: Bundle) -> list[str]:
    """The backbones a calibrated export quantises (the others are written in fp32)."""
    return [name for name in bundle.backbone_names
            if bundle.backbone_entry(name).get("modality") in QUANTISED_MODALITIES]


@dataclass(frozen=True)
class Calibration:
    """Network inputs decoded from calibration files, per backbone.

    ``inputs[name]`` holds one array per segment, shaped as one call of the exported graph
    takes it: ``(frames_per_segment, size, size, 3)`` uint8 frames (every quantised
    backbone is visual). ``files`` are the files used.
    """

    inputs: dict[str, list[np.ndarray]]
    files: tuple[str, ...]
    skipped: tuple[str, ...]

    def record(self) -> dict:
        """What the manifest keeps of it: the answers of a static int8 graph depend on it."""
        return {"files": [Path(f).name for f in self.files], "skipped": len(self.skipped),
                "segments": {name: len(v) for name, v in self.inputs.items()},
                "ranges": "min/max", "quantised": list(QUANTISED_OPS),
                "kept_float": list(KEPT_FLOAT)}


def pick_files(files: Sequence[str | Path], count: int = CALIBRATION_FILES) -> list[Path]:
    """``count`` of ``files`` spread evenly over their sorted order (the same on every run)."""
    ordered = sorted(Path(f) for f in files)
    if len(ordered) <= count:
        return ordered
    step = len(ordered) / count
    return [ordered[int(k * step)] for k in range(count)]


def calibration_inputs(
    bundle: Bundle,
    files: Sequence[str | Path],
    count: int = CALIBRATION_FILES,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Calibration:
    """Decode up to ``count`` of ``files`` into the frames of every backbone
    :func:`quantised_backbones` names (up to :data:`SEGMENTS_PER_FILE` segments a file).

    The files :func:`pick_files` chooses come first; one that cannot be decoded or has no
    video is skipped (its name is kept in ``skipped``, the reason logged) and the next
    unused file of the sorted list takes its place.

    Raises
    ------
    AvscError
        When ``count`` is below 1, the model has no backbone to quantise, or no file gives
        frames.
    """
    from avsc_core.inference.inputs import iter_input_batches, make_plan, stream_warnings
    from avsc_core.media import probe

    if count < 1:
        raise AvscError(f"calibration needs at least 1 file, got {count}")
    names = quantised_backbones(bundle)
    if not names:
        raise AvscError("this model has no visual backbone, the only ones an onnx int8 export "
                        "quantises; use --format tflite --precision int8")
    plan = make_plan(bundle.media, bundle.features, (), True)
    files = list(dict.fromkeys(Path(f) for f in files))  # a file named twice counts once
    chosen = pick_files(files, count)
    picked = set(chosen)
    candidates = [*chosen, *(f for f in sorted(files) if f not in picked)]
    frames: list[np.ndarray] = []
    used: list[str] = []
    skipped: list[str] = []
    for path in candidates:
        if len(used) == count:
            break
        if cancel and cancel():
            raise Cancelled()
        if progress:
            progress(Progress("calibrate", len(used), count, {"file": str(path)}))
        try:
            info = probe(path)
            stream_warnings(path, info, plan)
            segments = iter_input_batches(path, plan, info, batch_size=1)
            with contextlib.closing(segments):  # stops decoding the rest of a long file
                batches = list(itertools.islice(segments, SEGMENTS_PER_FILE))
        except Exception as exc:  # noqa: BLE001 - a bad file is skipped, as label does
            log.warning("calibration: skipped %s: %s", path, first_line(exc))
            skipped.append(str(path))
            continue
        used.append(str(path))
        frames.extend(segment for batch in batches for segment in batch.frames)
    if not frames:
        raise AvscError(
            f"no calibration frames: none of the {len(candidates)} calibration files could "
            "be decoded into them (give clips with a video stream)")
    return Calibration({name: frames for name in names}, tuple(used), tuple(skipped))


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Keep ONNX Runtime's quantiser from advising its own pre-processing on every network
    (``logging.warning`` on the root logger): the user can do nothing about it."""
    def advice(record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


class _Reader:
    """``onnxruntime.quantization.CalibrationDataReader``: one exported-batch call at a time."""

    def __init__(self, name: str, samples: Sequence[np.ndarray]):
        # Converted one call at a time: the samples stay uint8 frames until then.
        self._feeds: Iterator[dict[str, np.ndarray]] = (
            {name: np.ascontiguousarray(sample, np.float32)} for sample in samples)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def quantize_onnx(model: bytes, inputs: Mapping[str, str], samples: Sequence[np.ndarray]
                  ) -> bytes:
    """The static int8 (QDQ) version of an fp32 ONNX ``model`` calibrated on ``samples``.

    ``inputs`` is the network's input map (one input: backbones); each sample is one call's
    input at the exported batch.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    (graph_input,) = inputs.values()
    kept_float = dense_head_nodes(model) + grouped_conv_nodes(model)
    with tempfile.TemporaryDirectory(prefix="avsc-quantize-") as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(model)
        try:
            with _quiet_quantizer():
                quantize_static(
                    str(source), str(target), _Reader(graph_input, samples),
                    quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=list(QUANTISED_OPS),
                    calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=kept_float,
                    extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
                )
            return drop_float_only_qdq(target.read_bytes(), kept_float)
        except Exception as exc:  # the quantiser raises many types; the message is what matters
            raise AvscError(f"int8 calibration failed: {first_line(exc)}") from exc


def drop_float_only_qdq(model: bytes, float_nodes: Collection[str] = ()) -> bytes:
    """``model`` (a QDQ graph) without the ``QuantizeLinear``/``DequantizeLinear`` pairs
    whose dequantised tensor only :data:`FLOAT_ONLY_OPS` and the ``float_nodes`` (names of
    nodes left unquantised) read: those read the tensor before the rounding instead (see
    the module's text)."""
    import onnx

    from avsc_core.export.convert import drop_unused_initializers, node_links

    proto = onnx.load_from_string(model)
    graph = proto.graph
    producer, consumers = node_links(graph)
    outputs = {o.name for o in graph.output}
    dropped: set[str] = set()  # the dropped nodes' outputs
    for dq in graph.node:
        q = producer.get(dq.input[0]) if dq.op_type == "DequantizeLinear" else None
        readers = consumers.get(dq.output[0], [])
        if (q is None or q.op_type != "QuantizeLinear" or not readers
                or {dq.output[0], q.output[0]} & outputs
                or any(r.op_type not in FLOAT_ONLY_OPS
                       and not (r.name and r.name in float_nodes)
                       for r in readers)):
            continue
        for reader in readers:
            names = [q.input[0] if name == dq.output[0] else name for name in reader.input]
            del reader.input[:]
            reader.input.extend(names)
        dropped.add(dq.output[0])
        if all(c.output[0] in dropped for c in consumers[q.output[0]]):
            dropped.add(q.output[0])
    if not dropped:
        return model
    kept = [node for node in graph.node if node.output[0] not in dropped]
    del graph.node[:]
    graph.node.extend(kept)
    drop_unused_initializers(graph)  # their scales and zero points
    return proto.SerializeToString()


def grouped_conv_nodes(model: bytes) -> list[str]:
    """Names of the grouped (depthwise: ConvNeXt's 7x7) ``Conv`` nodes, in graph order."""
    import onnx

    return [node.name for node in onnx.load_from_string(model).graph.node
            if node.name and node.op_type == "Conv" and any(
                a.name == "group" and onnx.helper.get_attribute_value(a) > 1
                for a in node.attribute)]


def dense_head_nodes(model: bytes) -> list[str]:
    """Names of the ``MatMul``/``Gemm`` nodes after the graph's last pooling node (the
    backbone's dense head), in graph order; none when it pools nowhere."""
    import onnx

    nodes = list(onnx.load_from_string(model).graph.node)
    pools = [i for i, node in enumerate(nodes) if node.op_type in POOLING_OPS]
    if not pools:
        return []
    return [node.name for node in nodes[pools[-1]:] if node.op_type in ("MatMul", "Gemm")]
