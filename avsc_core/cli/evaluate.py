"""``avsc evaluate --model MODEL DATA [--split test] [--json OUT.json] [--report DIR]
[--segment-seconds S] [--frames-per-second F] [--submission FILE]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from avsc_core.cli.common import (
    add_layout_argument,
    cache_options,
    cancel_on_interrupt,
    check_cache_options,
    model_options,
    progress_printer,
    runtime_options,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="measure a model on a dataset",
        description="Accuracy, log loss, per-class accuracy and confusion matrix of the "
        "audio, visual and fused branches, per clip. On the model's own training data the "
        "split recorded in the model is used, so 'test' holds only unseen clips.",
        parents=[model_options(), runtime_options(), cache_options()],
    )
    parser.add_argument("data", type=Path, metavar="DATA",
                        help="dataset root, CSV file or TAU 2021 folder")
    add_layout_argument(parser)
    parser.add_argument(
        "--split", choices=("train", "val", "test", "all"), default="test",
        help="which clips to measure (default: %(default)s, the clips the model never saw "
        "when DATA is its training data)",
    )
    parser.add_argument("--json", type=Path, metavar="OUT.json",
                        help="also write the metrics as JSON (default: none)")
    parser.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="also write confusion-matrix, reliability-diagram and training-curve images "
        "into DIR (default: none)",
    )
    parser.add_argument(
        "--segment-seconds", type=float, metavar="S",
        help="also score segments of S seconds, each as one answer, as DCASE 2021 Task 1B "
        "ranks systems (S = 1 there; default: clips only)",
    )
    parser.add_argument(
        "--frames-per-second", type=float, metavar="F",
        help="measure the model as classify and label run it with F video frames a second "
        "(default: the model's; the model's rate divided by a whole number, such as 1 for "
        "a 2-frames-a-second model: the cached frames are reused)",
    )
    parser.add_argument(
        "--submission", type=Path, metavar="FILE",
        help="also write the challenge's output file (tab-separated: filename, scene_label, "
        "one probability per class): a row per segment with --segment-seconds, else per "
        "clip (default: none)",
    )
    parser.set_defaults(func=run)


def _table(branches: dict) -> list[str]:
    calibrated = any(m and "uncalibrated" in m for m in branches.values())
    header = f"{'branch':8} {'accuracy':>9} {'log loss':>9} {'ECE':>7}"
    if calibrated:
        header += f"  {'uncalibrated log loss':>21} {'ECE':>7}"
    lines = [header]
    for branch, metrics in branches.items():
        if metrics is None:
            lines.append(f"{branch:8} {'-':>9} {'-':>9} {'-':>7}")
            continue
        line = (f"{branch:8} {metrics['accuracy']:9.3f} {metrics['log_loss']:9.3f} "
                f"{metrics['ece']:7.3f}")
        if "uncalibrated" in metrics:
            before = metrics["uncalibrated"]
            line += f"  {before['log_loss']:21.3f} {before['ece']:7.3f}"
        lines.append(line)
    return lines


def format_metrics(result: dict) -> str:
    runtime = f", networks run by {result['runtime']}" if result.get("runtime") else ""
    if result.get("frames_per_second"):
        runtime += f", {result['frames_per_second']:g} video frames a second"
    lines = [f"{result['n']} clips ({result['split']} split{runtime})",
             *_table(result["branches"])]
    segments = result.get("segments")
    if segments:
        lines += ["", (f"{segments['n']} segments of {segments['seconds']:g} s "
                       "(as DCASE 2021 Task 1B scores them)"), *_table(segments["branches"])]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from avsc_core.outputs import check_output_file, check_output_folder

    # Evaluating takes minutes on real data: a bad output path is refused first.
    if args.json:
        check_output_file(args.json, "JSON metrics")
    if args.report:
        check_output_folder(args.report, "report folder")
    if args.submission:
        check_output_file(args.submission, "submission file")
    check_cache_options(args)

    from avsc_core.atomic import write_json
    from avsc_core.evaluation.evaluate import evaluate_model

    printer = progress_printer()
    with cancel_on_interrupt() as cancelled:
        result = evaluate_model(args.model, args.data, args.layout, args.split, printer, cancelled,
                                segment_seconds=args.segment_seconds,
                                submission=args.submission, jobs=args.jobs,
                                cache_dir=args.cache_dir, runtime=args.runtime,
                                frames_per_second=args.frames_per_second)
    printer.close()
    if args.json:
        write_json(args.json, result)
    if args.report:
        from avsc_core.evaluation.report import write_report

        write_report(args.report, result, args.model)
    print(format_metrics(result))
    for skipped in result["skipped"]:
        print(f"skipped {skipped['file']}: {skipped['reason']}")
    return 0
