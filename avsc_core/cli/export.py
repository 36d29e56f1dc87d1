"""``avsc export --model MODEL --format tflite|onnx [--precision fp32|bf16|int8]``."""

from __future__ import annotations

import argparse

from avsc_core.cli.common import cancel_on_interrupt, model_options, progress_printer
from avsc_core.export.formats import FORMATS, PRECISIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a faster inference copy of a model into its bundle",
        description="Convert every network of a model to TFLite or ONNX and keep the copy "
        "inside the bundle; classify, label and evaluate then use the fastest copy. What "
        "works: tflite fp32, tflite int8 and onnx fp32. fp32 gives the same answers as the "
        "Keras model (checked on export); int8 (TFLite dynamic-range quantisation) is about "
        "3x faster on a CPU with slightly different probabilities. bf16 is accepted but "
        "refused: neither runtime computes in bf16 on a CPU, so it would be no faster than "
        "fp32, only less exact.",
        parents=[model_options()],
    )
    parser.add_argument(
        "--format", choices=FORMATS, required=True,
        help="tflite (LiteRT; fp32 or int8) or onnx (ONNX Runtime; fp32 only) (required)",
    )
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="fp32",
        help="fp32 (default: the same answers as Keras), int8 (tflite only: about 3x faster "
        "and 4x smaller) or bf16 (refused: no faster than fp32 on a CPU; use int8)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from avsc_core.bundle import read_manifest
    from avsc_core.export.formats import check_supported
    from avsc_core.outputs import check_output_folder

    # All refused before TensorFlow loads: the converters need it, the checks do not.
    check_supported(args.format, args.precision)
    read_manifest(args.model)
    check_output_folder(args.model, "model bundle")

    from avsc_core.export import export_model

    printer = progress_printer()
    with cancel_on_interrupt() as cancelled:
        result = export_model(args.model, args.format, args.precision, printer, cancelled)
    printer.close()
    networks = {**result.entry["backbones"], **result.entry["heads"]}
    size = sum((args.model / e["file"]).stat().st_size for e in networks.values())
    print(f"exported {len(networks)} networks as {result.key} ({size / 1e6:.1f} MB) in "
          f"{args.model}; largest probability difference from Keras on the check inputs: "
          f"{result.max_abs_diff:.2g}")
    return 0
