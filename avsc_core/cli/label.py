"""``avsc label --model MODEL FOLDER --out LABELS.csv [--recursive] [--resume] [--jobs N]
[--shard I/N] [--engine local|ray] [--format csv|parquet] [--segments SEGMENTS.csv]
[--vtt DIR] [--audacity DIR]`` and ``avsc label merge OUT.csv SHARD.csv...``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from avsc_core.cli.common import (
    add_debug_argument,
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
from avsc_core.progress import Progress

# ``avsc label merge ...``: the word that hands the rest of the line to the merge parser.
MERGE = "merge"
# The choices of --engine and --format (avsc_core.label's ENGINES and FORMATS, which
# this module does not import: `avsc --help` stays light).
ENGINES = ("local", "ray")
FORMATS = ("csv", "parquet")


def engine_options() -> argparse.ArgumentParser:
    """Parent parser: where the files are decoded and the networks run."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("where it runs")
    group.add_argument(
        "--jobs", type=int, default=1, metavar="N",
        help="local engine: with N >= 2, N-1 processes decode files while the model runs "
        "(default: 1)",
    )
    group.add_argument(
        "--engine", choices=ENGINES, default="local",
        help="local: this machine; ray: decoding as Ray tasks and the networks in Ray "
        "actors, on a cluster or on this machine (needs pip install 'avsc[cluster]'; the "
        "model and FOLDER at the same paths on every node) (default: local)",
    )
    group.add_argument(
        "--address", metavar="ADDR",
        help="ray: the cluster to join, e.g. 10.0.0.1:6379 (default: RAY_ADDRESS, else a "
        "Ray started for this run)",
    )
    group.add_argument("--workers", type=int, metavar="N",
                       help="ray: network workers, each loading the model once (default: 1)")
    group.add_argument("--gpus-per-worker", type=float, metavar="G",
                       help="ray: GPUs each network worker takes (default: 0)")
    return parent


def output_options() -> argparse.ArgumentParser:
    """Parent parser: the format of the labels file (``label`` and ``label merge``)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--format", choices=FORMATS,
        help="csv, or parquet: a Parquet table with the same columns (needs pyarrow: pip "
        "install 'avsc[cluster]') (default: from the file's suffix, .parquet, else csv)",
    )
    return parent


def _merge_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"avsc label {MERGE}",
        description="Join the shards of one labelling run (avsc label ... --shard I/N) into "
        "OUT, rows in file order, with its own parameters file. Refused unless every shard "
        "has finished, all were made with the same model and settings, each shard 1..N is "
        "given once, and no file is in two shards or in none (FOLDER is listed again when "
        "it is still there; otherwise the counts the shards recorded are checked).",
        parents=[output_options()],
    )
    parser.add_argument("out", type=Path, metavar="OUT.csv", help="the merged labels file")
    parser.add_argument("shards", type=Path, nargs="+", metavar="SHARD.csv",
                        help="the shards' labels files, in any order")
    add_debug_argument(parser, default=argparse.SUPPRESS)
    parser.set_defaults(func=run_merge)
    return parser


def _hand_merge_to(label: argparse.ArgumentParser, merge: argparse.ArgumentParser) -> None:
    """Make ``label merge ARGS`` parse ARGS with ``merge``.

    ``label`` takes FOLDER as its first positional, so a nested sub-command would claim
    every FOLDER as a command name; ``merge`` is recognised only as the very first word
    after ``label`` (a folder called merge is then given as ``./merge``).
    """
    parse_label = label.parse_known_args

    def parse_known_args(
        args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if args and args[0] == MERGE:
            return merge.parse_known_args(list(args[1:]), namespace)
        return parse_label(args, namespace)

    label.parse_known_args = parse_known_args  # type: ignore[method-assign]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "label",
        help="label every media file of a folder into a CSV",
        description="Classify every audio and video file of FOLDER and write one CSV row per "
        "file (file,label,confidence,audio_label,visual_label,error,needs_review,"
        "reviewed_label; paths relative to FOLDER), with the model and settings that made them in a parameters file beside "
        "it (labels.csv gets labels.params.json). A file that fails gets an empty label and "
        "the reason. Rows are saved as they finish: after Ctrl-C or a crash, --resume goes "
        "on where the run stopped, with the same model only; a file the process died on "
        "(a decoder crash, a kill) is written as failed instead of read again. One run at "
        "a time writes a CSV: a second one (or the app) is refused.",
        epilog=f"Several machines: each labels one shard (--shard 1/4 ... --shard 4/4, its "
        f"own --out), then 'avsc label {MERGE} OUT.csv SHARD.csv...' joins them (see "
        f"'avsc label {MERGE} --help').",
        parents=[model_options(), runtime_options(), timeline_options(), engine_options(),
                 output_options()],
    )
    parser.add_argument("folder", type=Path, metavar="FOLDER",
                        help=f"the folder to label (one called {MERGE}: ./{MERGE})")
    parser.add_argument("--out", type=Path, required=True, metavar="LABELS.csv",
                        help="the labels file to write (required; .parquet for a Parquet "
                        "table)")
    parser.add_argument("--recursive", action="store_true", help="also label subfolders")
    parser.add_argument("--resume", action="store_true",
                        help="continue LABELS.csv, skipping the files already in it; "
                        "refused if its parameters file is missing or names another model")
    parser.add_argument(
        "--shard", metavar="I/N",
        help="label only shard I of N (numbered from 1: 1/4 ... 4/4); a file's shard comes "
        "from a hash of its path relative to FOLDER, so every machine agrees and new files "
        "do not move the others (default: every file)",
    )
    add_segment_arguments(parser)
    add_min_confidence_argument(parser)
    parser.set_defaults(func=run)
    _hand_merge_to(parser, _merge_parser())


def run(args: argparse.Namespace) -> int:
    check_timeline_outputs(args)
    from avsc_core.bundle import read_manifest

    # A wrong --model is refused before FOLDER is searched, which can take long on a big
    # tree; label_folder checks the folder and the outputs, all before TensorFlow loads.
    read_manifest(args.model)

    from avsc_core.label import label_folder
    bar = progress_printer()

    def progress(event: Progress) -> None:
        if "found" in event.info:
            already = event.info["already_done"]
            of = (f" of {event.info['folder_files']}" if "folder_files" in event.info else "")
            say(sys.stderr, f"found {event.info['found']}{of} media files in {args.folder}"
                + (f" (shard {args.shard})" if args.shard else "")
                + (f", {already} already labelled" if already else ""))
        elif event.info.get("error"):
            say(sys.stderr, f"{event.info['file']}: {event.info['error']}")
        bar(event)

    with cancel_on_interrupt() as cancelled:
        summary = label_folder(
            args.folder, args.model, args.out, recursive=args.recursive, resume=args.resume,
            jobs=args.jobs, segment_seconds=args.segment_seconds,
            hop_seconds=args.hop_seconds, frames_per_second=args.frames_per_second,
            progress=progress, cancel=cancelled,
            shard=args.shard, engine=args.engine, address=args.address,
            workers=args.workers, gpus_per_worker=args.gpus_per_worker, format=args.format,
            segments_csv=args.segments, vtt_dir=args.vtt, audacity_dir=args.audacity,
            min_confidence=args.min_confidence, runtime=args.runtime,
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


def run_merge(args: argparse.Namespace) -> int:
    from avsc_core.label import merge_shards

    summary = merge_shards(args.out, args.shards, format=args.format)
    print(f"merged {summary.shards} shards: {summary.rows} files"
          + (f", {summary.failed} failed" if summary.failed else "")
          + f" -> {summary.out}")
    return 0
