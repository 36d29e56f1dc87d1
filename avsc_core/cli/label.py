"""``avsc label --model MODEL FOLDER --out LABELS.csv [--recursive] [--resume] [--jobs N]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from avsc_core.cli.classify import add_segment_arguments, say
from avsc_core.cli.common import cancel_on_interrupt, progress_printer
from avsc_core.progress import Progress


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "label",
        help="label every media file of a folder into a CSV",
        description="Classify every audio and video file of FOLDER and write one CSV row per "
        "file (file,label,confidence,audio_label,visual_label,error; paths relative to "
        "FOLDER), with the model and settings that made them in a parameters file beside "
        "it (labels.csv gets labels.params.json). A file that fails gets an empty label and "
        "the reason. Rows are saved as they finish: after Ctrl-C or a crash, --resume goes "
        "on where the run stopped, with the same model only; a file the process died on "
        "(a decoder crash, a kill) is written as failed instead of read again. One run at "
        "a time writes a CSV: a second one (or the app) is refused.",
    )
    parser.add_argument("--model", type=Path, required=True, help="model bundle folder")
    parser.add_argument("folder", type=Path, metavar="FOLDER")
    parser.add_argument("--out", type=Path, required=True, metavar="LABELS.csv")
    parser.add_argument("--recursive", action="store_true", help="also label subfolders")
    parser.add_argument("--resume", action="store_true",
                        help="continue LABELS.csv, skipping the files already in it; "
                        "refused if its parameters file is missing or names another model")
    parser.add_argument(
        "--jobs", type=int, default=1, metavar="N",
        help="with N >= 2, N-1 processes decode files while the model runs (default: 1)",
    )
    add_segment_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from avsc_core.bundle import read_manifest

    # A wrong --model is refused before FOLDER is searched, which can take long on a big
    # tree; label_folder checks the folder and the outputs, all before TensorFlow loads.
    read_manifest(args.model)

    from avsc_core.label import label_folder
    bar = progress_printer()

    def progress(event: Progress) -> None:
        if "found" in event.info:
            already = event.info["already_done"]
            say(sys.stderr, f"found {event.info['found']} media files in {args.folder}"
                + (f", {already} already labelled" if already else ""))
        elif event.info.get("error"):
            say(sys.stderr, f"{event.info['file']}: {event.info['error']}")
        bar(event)

    with cancel_on_interrupt() as cancelled:
        summary = label_folder(
            args.folder, args.model, args.out, recursive=args.recursive, resume=args.resume,
            jobs=args.jobs, segment_seconds=args.segment_seconds,
            hop_seconds=args.hop_seconds, progress=progress, cancel=cancelled,
        )
    bar.close()
    done = summary.labelled + summary.failed
    print(
        f"labelled {summary.labelled} files"
        + (f", {summary.failed} failed" if summary.failed else "")
        + (f" ({summary.already_done} from before)" if summary.already_done else "")
        + (f" in {summary.seconds:.1f} s, {summary.files_per_second:.2f} files/s" if done else "")
        + f" -> {summary.out_csv}"
    )
    return 0
