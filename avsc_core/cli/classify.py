"""``avsc classify --model MODEL FILE... [--json] [--segment-seconds S] [--hop-seconds S]
[--min-confidence P] [--segments SEGMENTS.csv] [--vtt DIR] [--audacity DIR]``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from avsc_core.cli.common import (
    add_min_confidence_argument,
    add_segment_arguments,
    cancel_on_interrupt,
    check_timeline_outputs,
    model_options,
    progress_printer,
    runtime_options,
    say,
    timeline_options,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="tell the scene of audio or video files",
        description="Classify each FILE segment by segment with every branch of the model "
        "(audio, visual, fused), and the whole clip from the mean of its segments. A file "
        "without sound or pictures is classified by the branch it can feed, with a warning. "
        "The model runs in the fastest copy 'avsc export' kept in it, else in Keras; the "
        "output names which (runtime).",
        parents=[model_options(), runtime_options(), timeline_options()],
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE",
                        help="audio or video files")
    parser.add_argument(
        "--json", action="store_true",
        help="print JSON: one object per file, a JSON array when several files are given "
        "(a file that fails is {\"file\": ..., \"error\": reason}; default: a table)",
    )
    add_segment_arguments(parser)
    add_min_confidence_argument(parser)
    parser.set_defaults(func=run)


def _label(result, branch: str) -> str:
    return result.branch_label(branch) or "-"


class Table:
    """The human-readable output: one line per file, its warnings below it."""

    def __init__(self, files: list[Path], classes: list[str], min_confidence: float | None):
        self.file = min(48, max(4, *(len(str(f)) for f in files)))
        self.label = max(6, *(len(c) for c in classes))
        self.min_confidence = min_confidence
        self.started = False

    def header(self) -> str:
        w = self.label
        return (f"{'file':{self.file}}  {'label':{w}}  {'conf':>5}  {'audio':{w}}  "
                f"{'visual':{w}}  review")

    def row(self, result) -> str:
        from avsc_core.inference.review import review_reasons

        w = self.label
        review = ", ".join(review_reasons(result, self.min_confidence)) or "-"
        line = (f"{result.file:{self.file}}  {result.label:{w}}  {result.confidence:5.2f}  "
                f"{_label(result, 'audio'):{w}}  {_label(result, 'visual'):{w}}  {review}")
        lines = [line] + [f"{'':{self.file}}  warning: {w}" for w in result.warnings]
        if not self.started:
            self.started = True
            lines.insert(0, self.header())
        return "\n".join(lines)


def runtime_note(runtime: str, model: Path) -> str:
    """The line naming the runtime that answered; for Keras, how to answer faster."""
    from avsc_core.inference.predictor import KERAS

    if runtime != KERAS:
        return f"runtime {runtime}"
    # Keras needs TensorFlow, whose start-up alone outlasts classifying a clip with an export.
    return (f"runtime keras (the model has no export; 'avsc export --model {model} --format "
            "tflite --precision int8' answers without loading TensorFlow, several times faster)")


def run(args: argparse.Namespace) -> int:
    check_timeline_outputs(args)
    from avsc_core.inference.classify import load_predictor
    from avsc_core.inference.pipeline import classify_files
    from avsc_core.inference.review import check_min_confidence
    from avsc_core.timeline import TimelineOutputs, sidecar_names

    check_min_confidence(args.min_confidence)
    predictor = load_predictor(args.model, args.runtime)
    runtime = predictor.runtime
    table = Table(args.files, predictor.bundle.classes, args.min_confidence)
    printer = progress_printer()
    results, failures = [], 0
    timeline = TimelineOutputs(args.segments, args.vtt, args.audacity,
                               names=sidecar_names(args.files, flat=True))
    with cancel_on_interrupt() as cancelled:
        outcomes = classify_files(
            args.files, predictor, args.segment_seconds, args.hop_seconds, printer, cancelled,
            frames_per_second=args.frames_per_second,
        )
        try:
            for outcome in outcomes:
                if outcome.result is None:
                    failures += 1
                    say(sys.stderr, f"avsc classify: error: {outcome.error}")
                    if args.json:  # one object per file, in the order given
                        results.append({"file": str(outcome.path), "error": outcome.reason})
                    continue
                timeline.add(outcome.result.file, outcome.result)
                if args.json:
                    results.append({**outcome.result.to_dict(args.min_confidence),
                                    "runtime": runtime})
                else:
                    say(sys.stdout, table.row(outcome.result))
        finally:
            timeline.close()
    printer.close()
    if args.json and len(args.files) > 1:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    elif args.json and results:
        print(json.dumps(results[0], indent=2, ensure_ascii=False))
    elif failures < len(args.files):
        say(sys.stdout, runtime_note(runtime, args.model))
    return 1 if failures else 0
