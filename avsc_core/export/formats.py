"""Which runtime formats and precisions ``avsc export`` writes, and why not the others.

Measured on the 2-core target CPU (Xeon with AVX-512, VNNI and AVX512-BF16; other work
running beside it), ``paper`` preset, one real 10-s clip, ``benchmarks/inference.py``:

================  =====  ===========  ===========  =========
seconds per clip  Keras  tflite-fp32  tflite-int8  onnx-fp32
================  =====  ===========  ===========  =========
InceptionV3       0.98   1.31         0.24         0.58
ConvNeXtTiny      9.95   3.00         0.92         1.72
three audio nets  0.36   0.30         0.14         0.29
end to end        11.4   5.3          1.8          3.2
CPU seconds       18.9   5.8          3.2          6.1
peak memory (MB)  3344   1387         864          2356
================  =====  ===========  ===========  =========

What makes the difference on this CPU:

- XNNPACK (TFLite's CPU delegate, two threads) runs the whole fp32 graph; Keras's
  ConvNeXt spends most of its time in grouped 7x7 convolutions, which TensorFlow runs slowly.
- ``int8`` is TFLite's *dynamic-range* quantisation: int8 weights, activations quantised
  per batch row at run time by XNNPACK's QD8 kernels (VNNI dot products). Per 20 frames
  it took InceptionV3 from 1.35 to 0.40 CPU seconds and ConvNeXtTiny from 4.2 to 1.3
  (with its grouped convolutions rebuilt as depthwise ones, see :mod:`.graph`; 2.7
  without). Full-integer quantisation with calibration data was slower (0.54 and 3.2: the
  quantised LayerNorm and GELU leave XNNPACK) and needs representative clips; dynamic
  range needs none, so its answers do not depend on which clips were at hand.
- ``bf16`` is ONNX only: neither TFLite (XNNPACK) nor ONNX Runtime's CPU provider
  computes in bf16 or fp16 on x86 (bf16 and fp16 TFLite models, with and without
  XNNPACK's fp16 flag, ran at fp32 speed), so a TFLite bf16 model would only lose
  precision. OpenVINO does on CPUs with AVX512-BF16 or AMX: an ONNX bf16 export is the
  fp32 graph, which OpenVINO computes in bf16 there (in fp32 elsewhere:
  :func:`avsc_core.inference.runtime.openvino_precision`). It needs no calibration and
  stays far closer to fp32 than int8 (``emb2`` 0.3-0.4 % off on the audio networks),
  while the calibrated int8 export is faster still (ConvNeXtTiny 0.37 CPU seconds per 20
  frames against 0.49 in bf16, 0.30 since :mod:`.quantize` rounds less) and computes the
  layers it leaves in float in bf16 too.
- ONNX int8 is static (calibrated) QDQ quantisation, run by OpenVINO
  (:mod:`avsc_core.export.quantize`): in ONNX Runtime it was no faster than TFLite's int8
  (InceptionV3 0.52 CPU seconds), and ONNX Runtime's dynamic quantisation far slower
  (8.5; with only the MatMuls quantised, ConvNeXtTiny took 0.75 against TFLite's 0.55).

Later measurements (AMD EPYC with AVX-512 VNNI and BF16, 2 cores, other work beside it;
paper preset with trained-like LayerNorm and LayerScale values): the int8 ConvNeXtTiny
takes 0.55 CPU seconds per 20 frames, of which about 0.22 are its pointwise layers
(XNNPACK's QD8 VNNI GEMMs, near the CPU's peak), 0.21 its 7x7 depthwise convolutions
(TFLite's own hybrid kernel: XNNPACK has no dynamic-range depthwise kernel, and its fp32
one took 2.7x longer; ONNX Runtime's NCHWc one is 3x faster but cannot run inside the
TFLite graph), the rest LayerNorm, GELU and the additions. Folding the LayerNorms' and
LayerScales' affine parts into the pointwise layers (:mod:`.graph`) took it from 0.58 to
0.55; InceptionV3 takes 0.15 and the three audio networks 0.06.

``onnx-int8`` (same machine, ``benchmarks/label.py``, six real street videos, median of 7
interleaved runs): calibrated QDQ visual networks in OpenVINO (ConvNeXtTiny 0.37 and
InceptionV3 0.14 CPU seconds per 20 frames, one thread), the float layers (audio networks
too) in bf16, the heads in fp32: 2.52 files/s against TFLite int8's 1.86 (CPU seconds per
file 0.75 against 1.02), labels equal to fp32 on 121 of 122 clips for both; ``onnx-bf16``
1.90 files/s and 122 of 122. They come first in ``runtime="auto"`` where OpenVINO is
installed (bf16 only where the CPU computes it natively); without OpenVINO the int8 graph
runs in ONNX Runtime, 2.3x slower (slower than fp32 since ConvNeXt's int8 graph rounds
only what int8 layers read), after every other export.
"""

from __future__ import annotations

from avsc_core.errors import AvscError, UsageError
from avsc_core.inference.runtime import AUTO_ORDER, FORMATS, SUFFIX

# The runtimes inference can run are named there; what export writes of them, here.
__all__ = ["AUTO_ORDER", "FORMATS", "PRECISIONS", "SUFFIX", "check_supported",
           "needs_calibration"]

PRECISIONS = ("fp32", "bf16", "int8")

_UNSUPPORTED = {
    ("tflite", "bf16"): "not written for tflite: TFLite computes a bf16 model in fp32 on a "
    "CPU, so it would be no faster than fp32, only less exact; use --format onnx "
    "--precision bf16 (OpenVINO computes it in bf16 where the CPU can), --precision int8 "
    "(tflite: about 3x faster, 4x smaller; onnx with --calibration: faster still, in "
    "OpenVINO) or fp32 (the same answers as Keras)",
}


def check_supported(format: str, precision: str) -> None:
    """Raise :class:`AvscError` with the reason when ``format``/``precision`` cannot be written."""
    if format not in FORMATS:
        raise AvscError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if precision not in PRECISIONS:
        raise AvscError(
            f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}"
        )
    if (format, precision) in _UNSUPPORTED:
        raise UsageError(f"--precision {precision}: {_UNSUPPORTED[format, precision]}")


def needs_calibration(format: str, precision: str) -> bool:
    """Whether the export is calibrated on media files (static int8: ONNX int8)."""
    return format == "onnx" and precision == "int8"
