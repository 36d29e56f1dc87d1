"""Helpers shared by the command modules."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from avsc_core.progress import Progress, TerminalProgress

LAYOUTS = ("auto", "folders", "csv", "tau2021")


def add_layout_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--layout", choices=LAYOUTS, default="auto",
        help="dataset layout: folders (DATA/<class>/<files>), csv (path,label[,split]) or "
        "tau2021 (default: auto, detect it)",
    )


def add_debug_argument(parser: argparse.ArgumentParser, default: object = False) -> None:
    """Add ``--debug``; a command's parser gets ``default=argparse.SUPPRESS``, so that
    ``avsc --debug COMMAND`` is not undone by the command's own default."""
    parser.add_argument(
        "--debug", action="store_true", default=default,
        help="show full tracebacks, debug logging and TensorFlow's messages (default: off)",
    )


def add_min_confidence_argument(parser: argparse.ArgumentParser) -> None:
    """``--min-confidence P``: the fused confidence under which a file needs review."""
    parser.add_argument(
        "--min-confidence", type=float, metavar="P",
        help="flag files whose fused confidence is under P (0..1) as needing review, beside "
        "those whose audio and visual branches disagree or that are unlike the training "
        "data (default: no confidence minimum)",
    )


def add_segment_arguments(parser: argparse.ArgumentParser) -> None:
    """``--segment-seconds S``, ``--hop-seconds S`` and ``--frames-per-second F``: how the
    commands that answer over time (classify, label) cut a file into the segments the
    model classifies, and how many frames of each the visual networks see."""
    parser.add_argument(
        "--segment-seconds", type=float, metavar="S",
        help="analysis segment length (default: the model's, 10 s for TAU models); "
        "shorter segments are repeated up to the model's length",
    )
    parser.add_argument(
        "--hop-seconds", type=float, metavar="S",
        help="distance between segment starts (default: the model's hop, or the segment "
        "length when --segment-seconds is given)",
    )
    parser.add_argument(
        "--frames-per-second", type=float, metavar="F",
        help="video frames a second the visual networks see (default: the model's, 2 for "
        "TAU models); 1 halves their work, which is most of a video's, for a visual "
        "answer (the mean over the frames) that moves a little",
    )


def cache_options() -> argparse.ArgumentParser:
    """Parent parser of the commands that cache decoded media and features:
    ``--cache-dir DIR`` (the help names the actual default folder) and ``--jobs N``."""
    from avsc_core.config import CACHE_DIR_ENV, default_cache_dir

    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("decoding and the feature cache")
    # argparse formats help with %: a path holding one must not break --help.
    default = str(default_cache_dir()).replace("%", "%%")
    group.add_argument(
        "--cache-dir", type=Path, metavar="DIR",
        help="where decoded frames and spectrograms are kept between runs, about 0.8 MB "
        f"per 10-s clip (default: {default}, from ${CACHE_DIR_ENV} or the user cache dir)",
    )
    group.add_argument(
        "--jobs", type=int, metavar="N",
        help="processes decoding clips and computing features (default: all "
        f"{os.cpu_count() or 1} cores)",
    )
    return parent


def check_cache_options(args: argparse.Namespace) -> None:
    """Refuse a bad ``--jobs`` or an unwritable ``--cache-dir`` before any work."""
    from avsc_core.errors import AvscError
    from avsc_core.outputs import check_output_folder

    if args.jobs is not None and args.jobs < 1:
        raise AvscError(f"--jobs must be at least 1, got {args.jobs}")
    if args.cache_dir is not None:
        check_output_folder(args.cache_dir, "feature cache folder")


def model_options() -> argparse.ArgumentParser:
    """Parent parser of the commands that read a model bundle: ``--model MODEL``."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--model", type=Path, required=True, metavar="MODEL",
        help="model bundle folder written by 'avsc train' (required)",
    )
    return parent


def runtime_options() -> argparse.ArgumentParser:
    """Parent parser of the commands that run a model's networks: ``--runtime``."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--runtime", default="auto", metavar="RUNTIME",
        help="which copy of the networks runs them: auto (default: the fastest export for "
        "this machine, else Keras), keras (the trained model's exact answers), a format "
        "(tflite, onnx: its fastest export) or an export as 'avsc info' lists it "
        "(onnx-int8, tflite-fp32...)",
    )
    return parent


def timeline_options() -> argparse.ArgumentParser:
    """Parent parser of the commands that can write answers over time (classify, label)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("answers over time")
    group.add_argument(
        "--segments", type=Path, metavar="SEGMENTS.csv",
        help="also write one CSV row per segment: file,start,end,label,confidence,"
        "audio_label,visual_label (default: not written)",
    )
    group.add_argument(
        "--vtt", type=Path, metavar="DIR",
        help="also write DIR/<file>.vtt, WebVTT captions of the scene over time that any "
        "video player shows (default: not written)",
    )
    group.add_argument(
        "--audacity", type=Path, metavar="DIR",
        help="also write DIR/<file>.txt, an Audacity label track (File > Import > Labels) "
        "(default: not written)",
    )
    return parent


def check_timeline_outputs(args: argparse.Namespace) -> None:
    """Refuse unwritable ``--segments``/``--vtt``/``--audacity`` before any work."""
    from avsc_core.timeline import check_timeline_outputs as check

    check(args.segments, args.vtt, args.audacity)


class _Printer(TerminalProgress):
    """Bars for batches and epochs on a terminal; the dataset check is always printed."""

    def __call__(self, event: Progress) -> None:
        report = event.info.get("report")
        if report:
            self.close()
            print(report, file=sys.stderr)
            return
        super().__call__(event)


def progress_printer() -> _Printer:
    return _Printer()


def say(stream: TextIO, text: str) -> None:
    """A line on ``stream`` that does not collide with a progress bar drawn there."""
    if stream.isatty():
        stream.write("\r\033[K")
    print(text, file=stream, flush=True)


@contextlib.contextmanager
def cancel_on_interrupt() -> Iterator[Callable[[], bool]]:
    """The first Ctrl-C asks the running job to stop cleanly; a second one aborts."""
    flag = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if flag.is_set():
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        flag.set()
        print("\nstopping after the current step (Ctrl-C again to abort)", file=sys.stderr)

    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGINT, handler)
    try:
        yield flag.is_set
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
