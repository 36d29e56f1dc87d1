"""Entry point of the ``avsc`` console script.

Exit codes follow the contract: 0 on success, 1 on a user error (one line on stderr naming
the file and the reason; a traceback only with ``--debug``), 2 on usage errors (argparse).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
import traceback
import warnings
from collections.abc import Sequence

from avsc_core import __version__
from avsc_core.cli.common import add_debug_argument
from avsc_core.errors import AvscError, UsageError
from avsc_core.progress import Cancelled
from avsc_core.quiet import quiet_tensorflow_import

# One module per command, in the order ``avsc --help`` lists them.
COMMAND_MODULES = (
    "avsc_core.cli.sample_data",
    "avsc_core.cli.features",
    "avsc_core.cli.train",
    "avsc_core.cli.evaluate",
    "avsc_core.cli.export",
    "avsc_core.cli.classify",
    "avsc_core.cli.label",
    "avsc_core.cli.adapt",
    "avsc_core.cli.info",
)


def build_parser() -> argparse.ArgumentParser:
    """The ``avsc`` parser, with one sub-parser per module of :data:`COMMAND_MODULES`.

    ``--debug`` is accepted before and after the command name.
    """
    parser = argparse.ArgumentParser(
        prog="avsc",
        description="Audio-visual scene classification: tell what kind of place a video "
        "was shot in from its sound and its pictures.",
    )
    parser.add_argument("--version", action="version", version=f"avsc {__version__}")
    add_debug_argument(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    for command in subparsers.choices.values():
        add_debug_argument(command, default=argparse.SUPPRESS)
    return parser


# The temporary name of an atomic write (``.<name>.<random>.tmp``): the user knows the name.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[^./]+\.tmp$")


def describe_os_error(exc: OSError, fallback: object = None) -> str:
    """``"<path>: <reason>"`` for an ``OSError`` (the destination of a failed rename).

    ``fallback`` names the path when the error does not (a library writing without
    saying where): the command's output.
    """
    path = exc.filename2 if exc.filename2 is not None else exc.filename
    if path is None:
        path = fallback
    elif isinstance(path, str | os.PathLike):
        temporary = _TEMPORARY.match(os.path.basename(path))
        if temporary:
            path = os.path.join(os.path.dirname(path), temporary["name"])
    reason = exc.strerror or str(exc) or type(exc).__name__
    reason = reason[:1].lower() + reason[1:]
    return reason if path is None else f"{path}: {reason}"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--debug" not in argv:
        # TensorFlow's C++ start-up chatter is noise to a user; --debug keeps it.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        quiet_tensorflow_import()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.debug:
        # TensorFlow's and Keras's Python-side warnings (function retracing, data
        # adapters) are about our code, not the user's input.
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", module=r"keras\..*")
        warnings.filterwarnings("ignore", module=r"tensorflow\..*")
    try:
        return int(args.func(args) or 0)
    except AvscError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"avsc {args.command}: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except OSError as exc:
        # Commands check their outputs before starting; this catches what no check can
        # foresee (a disk filling up, a folder removed mid-run) as one line all the same.
        if args.debug:
            traceback.print_exc()
        output = getattr(args, "out", None)
        print(f"avsc {args.command}: error: {describe_os_error(exc, output)}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Cancelled):
        hint = (
            " (finished work is saved: run again with --resume)"
            if args.command in ("train", "label")
            else ""
        )
        print(f"avsc {args.command}: stopped{hint}", file=sys.stderr)
        return 130
