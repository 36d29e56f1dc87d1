"""``avsc export --model MODEL --format tflite|onnx [--precision fp32|bf16|int8]
[--calibration FILE_OR_FOLDER...] [--calibration-files N]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from avsc_core.cli.common import cancel_on_interrupt, model_options, progress_printer, say
from avsc_core.errors import AvscError, UsageError
from avsc_core.export.formats import FORMATS, PRECISIONS
from avsc_core.export.quantize import CALIBRATION_FILES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a faster inference copy of a model into its bundle",
        description="Convert every network of a model to TFLite or ONNX and keep the copy "
        "inside the bundle; classify, label and evaluate then use the fastest copy. What "
        "works: tflite fp32 and int8, onnx fp32, bf16 and int8. fp32 gives the same "
        "answers as the Keras model (checked on export); tflite int8 (dynamic-range "
        "quantisation) is about 3x faster on a CPU with slightly different probabilities; "
        "onnx int8 is calibrated on clips like those to be labelled (--calibration) and "
        "runs in OpenVINO, the fastest on a CPU with VNNI (int8 dot products; without them "
        "its int8 layers overflow, and classify, label and evaluate run another export); "
        "onnx bf16 needs no calibration and stays closer to fp32: OpenVINO computes it in "
        "bf16 where the CPU does so natively (AVX512-BF16, AMX), in fp32 elsewhere. tflite "
        "bf16 is refused: TFLite computes it in fp32 on a CPU, so it would be no faster, "
        "only less exact.",
        parents=[model_options()],
    )
    parser.add_argument(
        "--format", choices=FORMATS, required=True,
        help="tflite (LiteRT; fp32 or int8) or onnx (fp32 in ONNX Runtime; int8, "
        "calibrated, and bf16 in OpenVINO) (required)",
    )
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="fp32",
        help="fp32 (default: the same answers as Keras), int8 (about 3x faster and 4x "
        "smaller; onnx int8 needs --calibration) or bf16 (onnx only, in OpenVINO: bf16 "
        "where the CPU computes it natively)",
    )
    parser.add_argument(
        "--calibration", nargs="+", type=Path, metavar="FILE_OR_FOLDER",
        help="media files (folders are searched recursively) like those the model will "
        "label, to calibrate an onnx int8 export (required there; default: none)",
    )
    parser.add_argument(
        "--calibration-files", type=int, default=CALIBRATION_FILES, metavar="N",
        help=f"how many calibration files to decode, spread over them (default "
        f"{CALIBRATION_FILES})",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from avsc_core.bundle import read_manifest
    from avsc_core.export.formats import check_supported, needs_calibration
    from avsc_core.outputs import check_output_folder

    # All refused before TensorFlow loads: the converters need it, the checks do not.
    check_supported(args.format, args.precision)
    read_manifest(args.model)
    check_output_folder(args.model, "model bundle")
    if args.calibration_files < 1:
        raise AvscError(f"--calibration-files must be at least 1, got {args.calibration_files}")
    if args.calibration and not needs_calibration(args.format, args.precision):
        raise UsageError(f"--calibration: a {args.format} {args.precision} export is not "
                         "calibrated (only --format onnx --precision int8 is)")
    calibration = calibration_files(args.calibration) if args.calibration else None

    from avsc_core.export import export_model

    printer = progress_printer()
    with cancel_on_interrupt() as cancelled:
        result = export_model(args.model, args.format, args.precision, printer, cancelled,
                              calibration=calibration,
                              calibration_files=args.calibration_files)
    printer.close()
    networks = {**result.entry["backbones"], **result.entry["heads"]}
    size = sum((args.model / e["file"]).stat().st_size for e in networks.values())
    print(f"exported {len(networks)} networks as {result.key} ({size / 1e6:.1f} MB) in "
          f"{args.model}; largest probability difference from Keras on the check inputs: "
          f"{result.max_abs_diff:.2g}")
    if args.format == "onnx" and args.precision == "int8":
        from avsc_core.inference.runtime import int8_overflows

        if int8_overflows():
            say(sys.stderr, "avsc export: note: this CPU has no VNNI (int8 dot products), "
                "on which this export's int8 layers overflow: classify, label and evaluate "
                "run another export here (an onnx bf16 or tflite int8 one keeps fp32's "
                "labels); it runs where the CPU has AVX-512 VNNI, AVX-VNNI or AMX")
    if args.precision == "bf16":
        from avsc_core.inference.runtime import openvino_available, openvino_precision

        if not openvino_available() or openvino_precision() != "bf16":
            why = ("OpenVINO is not installed" if not openvino_available()
                   else "this CPU has no native bf16")
            say(sys.stderr, f"avsc export: note: {why}, so this machine computes the bf16 "
                "export in fp32 (no faster than fp32); it runs in bf16 where OpenVINO and "
                "a CPU with AVX512-BF16 or AMX are")
    return 0


def calibration_files(paths: list[Path]) -> list[Path]:
    """The media files named by ``paths``: files as given, folders searched recursively."""
    from avsc_core.label import find_media_files

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(find_media_files(path, recursive=True))
        elif path.is_file():
            files.append(path)
        else:
            raise AvscError(f"{path}: --calibration: no such file or folder")
    if not files:
        raise AvscError(f"--calibration {' '.join(map(str, paths))}: no media files there")
    return files
