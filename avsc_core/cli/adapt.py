"""``avsc adapt --model MODEL --labels REVIEWED.csv --out MODEL2 [--folder FOLDER]
[--holdout F] [--epochs N] [--seed N]``: new heads learnt from reviewed labels."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avsc_core.cli.common import (
    cache_options,
    cancel_on_interrupt,
    check_cache_options,
    model_options,
    progress_printer,
)

if TYPE_CHECKING:
    from avsc_core.adapt import AdaptSummary


def register(subparsers: argparse._SubParsersAction) -> None:
    from avsc_core.adapt import HOLDOUT

    parser = subparsers.add_parser(
        "adapt",
        help="learn from reviewed labels: a copy of a model with new fusion heads",
        description="Train new fusion heads (the classifier of a joint model) on the files "
        "of a labels CSV whose reviewed_label a person filled in, with the backbones "
        "frozen, and write them with a copy of the model at MODEL2. Part of the reviewed "
        "files is held out and scored with the old model and the new one. MODEL is not "
        "changed.",
        parents=[model_options(), cache_options()],
    )
    parser.add_argument(
        "--labels", type=Path, required=True, metavar="REVIEWED.csv",
        help="a labels CSV written by 'avsc label'; its rows with a reviewed_label (and no "
        "error) are learnt from (required)",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="MODEL2",
        help="the new model bundle folder: a new or empty folder (required)",
    )
    parser.add_argument(
        "--folder", type=Path, metavar="FOLDER",
        help="where the CSV's files are (default: the folder its parameters file records, "
        "else the CSV's own folder)",
    )
    parser.add_argument(
        "--holdout", type=float, default=HOLDOUT, metavar="F",
        help="share of each class's reviewed files held out to score the model before and "
        "after, and to calibrate the new one (default: %(default)s)",
    )
    parser.add_argument(
        "--epochs", type=int, metavar="N",
        help="epochs of each new head (default: the model's Phase II epochs)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="N",
        help="seeds the held-out choice, the heads' initial weights, shuffling and mixup "
        "(default: %(default)s)",
    )
    parser.set_defaults(func=run)


def _figures(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    return (metrics or {}).get("fused")


def format_summary(summary: AdaptSummary) -> str:
    """The lines ``avsc adapt`` prints about an :class:`~avsc_core.adapt.AdaptSummary`."""
    learnt = summary.files - summary.holdout
    lines = [(f"{summary.out}: adapted on {summary.files} reviewed files ({learnt} learnt "
              f"from, {summary.holdout} held out); new heads: {', '.join(summary.heads)}")]
    before, after = _figures(summary.before), _figures(summary.after)
    if before and after:
        line = (f"held-out fused accuracy {before['accuracy']:.3f} -> {after['accuracy']:.3f}, "
                f"log loss {before['log_loss']:.3f} -> {after['log_loss']:.3f}")
        if "uncalibrated" in after:
            # The new temperatures were fitted on these files: the figure they leave alone.
            line += f" ({after['uncalibrated']['log_loss']:.3f} before calibration)"
        lines.append(line)
    else:
        lines.append("no file held out, so nothing to compare (see --holdout)")
    if summary.unlearnt:
        lines.append(f"warning: no reviewed file of {', '.join(summary.unlearnt)} to learn "
                     "from: the new model will hardly ever answer them")
    lines += [f"skipped {file}: {reason}" for file, reason in summary.skipped]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    check_cache_options(args)

    from avsc_core.adapt import adapt_model

    printer = progress_printer()
    with cancel_on_interrupt() as cancelled:
        summary = adapt_model(
            args.model, args.labels, args.out, args.folder, args.holdout, args.epochs,
            args.seed, jobs=args.jobs, cache_dir=args.cache_dir, progress=printer,
            cancel=cancelled,
        )
    printer.close()
    print(format_summary(summary))
    return 0
