"""``avsc sample-data``: write a small synthetic audio-visual dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from avsc_core.outputs import check_output_folder
from avsc_core.progress import TerminalProgress
from avsc_core.sampledata import (
    CLASS_ORDER,
    DEFAULT_CLASSES,
    DEFAULT_PER_CLASS,
    DEFAULT_SECONDS,
    generate_sample_dataset,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sample-data",
        help="write a small synthetic audio-visual dataset",
        description="Write a synthetic audio-visual scene dataset in the 'folders' layout "
        "(OUT/<class>/<clip>.mp4, H.264 video + stereo AAC audio). Some classes share "
        "their sound and others their look, so a model needs both modalities to tell "
        "every class apart. Classes are taken in this order: " + ", ".join(CLASS_ORDER) + ".",
    )
    parser.add_argument("out", metavar="OUT", type=Path,
                        help="dataset folder to write (created if missing)")
    parser.add_argument(
        "--classes",
        type=int,
        default=DEFAULT_CLASSES,
        metavar="N",
        help=f"number of classes, 2..{len(CLASS_ORDER)} (default {DEFAULT_CLASSES})",
    )
    parser.add_argument(
        "--per-class",
        type=int,
        default=DEFAULT_PER_CLASS,
        metavar="K",
        help=f"clips per class (default {DEFAULT_PER_CLASS})",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=DEFAULT_SECONDS,
        metavar="S",
        help=f"length of each clip in seconds (default {DEFAULT_SECONDS:g})",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    parser.add_argument(
        "--jobs", type=int, default=1, metavar="N", help="clips encoded in parallel (default 1)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.out.is_file():  # an existing file gets the generator's own message
        check_output_folder(args.out, "dataset folder")
    bar = TerminalProgress()
    try:
        paths = generate_sample_dataset(
            args.out,
            classes=args.classes,
            per_class=args.per_class,
            seconds=args.seconds,
            seed=args.seed,
            progress=bar,
            jobs=args.jobs,
        )
    finally:
        bar.close()
    print(f"wrote {len(paths)} clips ({args.classes} classes x {args.per_class}) to {args.out}")
    return 0
