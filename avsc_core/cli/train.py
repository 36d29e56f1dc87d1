"""``avsc train DATA --out MODEL ...``: train a model bundle.

Each option is named after the :class:`TrainConfig` field or the keyword argument of
:func:`~avsc_core.train.train_model` it sets (``--joint-visual-stages``:
``joint_visual_stages``), and argparse keeps it under that name, so the settings are read
by name; ``--epochs`` alone sets several.
Options the user does not give stay ``None`` here, so that ``--resume`` can tell the
options asked for anew (honoured or refused by :mod:`avsc_core.train.resume`) from the
defaults of a new run. Everything that can be checked without TensorFlow is checked
before it loads (several seconds), so a mistyped path or value is refused at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from avsc_core.cli.common import (
    add_layout_argument,
    cache_options,
    cancel_on_interrupt,
    check_cache_options,
    progress_printer,
)
from avsc_core.errors import AvscError, UsageError
from avsc_core.outputs import check_output_folder
from avsc_core.train.resume import EPOCH_FIELDS, option
from avsc_core.train.settings import (
    ALL_BACKBONES,
    FUSIONS,
    JOINT_BATCH,
    JOINT_IMAGE_MODELS,
    LR_SCHEDULES,
    PRECISIONS,
    SPECTROGRAMS,
    STRATEGIES,
    TrainConfig,
    parse_devices,
)

PAPER = TrainConfig.for_preset("paper")
TINY = TrainConfig.for_preset("tiny")
DEFAULT_SPLIT = 0.15


def _preset_default(field: str) -> str:
    """A setting's default in words: the paper preset's, and the tiny one's if it differs."""
    paper, tiny = getattr(PAPER, field), getattr(TINY, field)
    return f"{paper}" if paper == tiny else f"{paper}; tiny preset: {tiny}"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model bundle on a dataset",
        description="Train Pham et al.'s two-phase system (five backbones, then a fusion "
        "layer) or Chen et al.'s joint optimisation (a 1-D CNN acoustic encoder and the "
        "bottom layers of an image model, trained with the classifier) on DATA and write "
        "a model bundle (a folder) at MODEL.",
        parents=[cache_options()],
    )
    parser.add_argument("data", type=Path, help="dataset root, CSV file or TAU 2021 folder")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="MODEL",
        help="the model bundle folder to write (no default: a new or empty folder, or the "
        "interrupted run to --resume)",
    )
    add_layout_argument(parser)
    parser.add_argument(
        "--preset",
        choices=("tiny", "paper"),
        help="network sizes (default: paper; tiny is for tests and demos)",
    )
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="two-phase: backbones one by one, then a fusion layer (Pham et al.); joint: "
        "encoders and classifier trained together (Chen et al.) (default: two-phase)",
    )
    parser.add_argument(
        "--fusion",
        choices=FUSIONS,
        help=f"Phase II fusion (default: {PAPER.fusion}, the paper's best)",
    )
    parser.add_argument(
        "--backbones",
        type=_backbone_list,
        help=f"comma-separated subset of {','.join(ALL_BACKBONES)} (default: all five)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        help="epochs of every network of both phases and of joint optimisation; totals "
        "per network, also on --resume, which early stopping may cut short (default: the "
        f"preset's: paper {PAPER.phase1_epochs} per audio backbone, {PAPER.visual_epochs} "
        f"per visual backbone, {PAPER.phase2_epochs} per head, joint {PAPER.joint_epochs}; "
        f"tiny {TINY.phase1_epochs} + {TINY.phase2_epochs}, joint {TINY.joint_epochs})",
    )
    parser.add_argument(
        "--phase1-epochs",
        type=int,
        help="epochs of each Phase I backbone, audio and visual (default: the paper "
        f"preset's {PAPER.phase1_epochs} per audio backbone and --visual-epochs per visual "
        f"one; tiny: {TINY.phase1_epochs} each)",
    )
    parser.add_argument(
        "--visual-epochs",
        type=int,
        help="epochs of each visual Phase I backbone: a visual epoch is every frame, 20 "
        "per clip (default: the paper preset's "
        f"{PAPER.visual_epochs}; tiny: --phase1-epochs)",
    )
    parser.add_argument(
        "--phase2-epochs",
        type=int,
        help=f"epochs of each Phase II fusion head (default: {_preset_default('phase2_epochs')})",
    )
    parser.add_argument(
        "--joint-epochs",
        type=int,
        help="epochs of joint optimisation (--strategy joint; default: "
        f"{_preset_default('joint_epochs')})",
    )
    parser.add_argument(
        "--patience",
        type=int,
        help="early stopping: stop a network after this many epochs without a lower "
        "validation log loss, keeping its best epoch; 0 trains every epoch (default: "
        f"{_preset_default('patience')})",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="mixed: float16 computation (float32 weights, softmax and loss) for the "
        "backbones and joint models, for GPUs with tensor cores; a CPU accepts it with a "
        "warning; bundles are float32 either way (default: auto, mixed on a GPU and "
        "float32 on a CPU)",
    )
    parser.add_argument(
        "--devices",
        metavar="N|DEVICE,...",
        help="train on the first N GPUs, or on the TensorFlow devices listed (e.g. "
        "/gpu:0,/gpu:1); checked before any decoding (default: every visible GPU, else "
        "the CPU)",
    )
    parser.add_argument(
        "--phase",
        choices=("1", "2", "all"),
        default="all",
        help="run only Phase I or Phase II (Phase II resumes a Phase I run; "
        "default: %(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        help="segments per audio batch, frames per visual batch, clips per fusion batch, "
        f"segments per joint batch (default: {_preset_default('batch_size')}; "
        f"at most {JOINT_BATCH} for joint optimisation)",
    )
    parser.add_argument(
        "--visual-weights",
        default=None,
        metavar="imagenet|none|PATH",
        help="initial weights of the visual backbones: imagenet (default; "
        "cached in the user cache dir), none, or a folder holding the Keras "
        "ImageNet weights files (a single file when training one visual "
        "backbone); the tiny preset always starts from scratch",
    )
    parser.add_argument(
        "--audio-lr",
        type=float,
        help="Adam learning rate of the audio backbones (joint: of the acoustic encoder "
        f"and the classifier; default: {_preset_default('audio_lr')})",
    )
    parser.add_argument(
        "--visual-lr",
        type=float,
        help="Adam learning rate of the visual backbones (joint: of the image model's "
        f"layers; default: {_preset_default('visual_lr')})",
    )
    parser.add_argument(
        "--fusion-lr",
        type=float,
        help=f"Adam learning rate of the fusion heads (default: {_preset_default('fusion_lr')})",
    )
    parser.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        help="cosine: a linear warm-up over --warmup-fraction of a network's steps, then "
        "cosine decay to 0 by its last epoch; constant: the rate throughout (default: "
        f"{_preset_default('lr_schedule')})",
    )
    parser.add_argument(
        "--warmup-fraction",
        type=float,
        help="share of each network's steps spent warming up, with --lr-schedule cosine "
        f"(default: {_preset_default('warmup_fraction')})",
    )
    parser.add_argument(
        "--mixup-alpha",
        type=float,
        help=f"mixup's Beta(alpha, alpha) parameter; 0 turns mixup off (default: "
        f"{PAPER.mixup_alpha})",
    )
    # Options named after the settings; the shorter names of earlier versions still work.
    joint = parser.add_argument_group("joint optimisation (--strategy joint)")
    joint.add_argument("--joint-feature", choices=SPECTROGRAMS,
                       help=f"spectrogram of the acoustic encoder (default: {PAPER.joint_feature})")
    joint.add_argument("--joint-image-model", "--image-model", choices=JOINT_IMAGE_MODELS,
                       help="image model whose bottom layers encode the frames (default: "
                       f"{PAPER.joint_image_model}; the tiny preset uses a small CNN)")
    joint.add_argument("--joint-visual-stages", "--visual-stages", type=int, metavar="K",
                       help="stages of the image model kept (default: 3 of ConvNeXtTiny's 4, "
                       "3 of InceptionV3's 11)")
    joint.add_argument("--joint-freeze-visual", "--freeze-visual", action="store_true",
                       default=None,
                       help="keep the image model's layers fixed (default: train them)")
    joint.add_argument("--joint-branch-weight", type=float,
                       help="weight of each encoder's own loss beside the fused one (default: "
                       f"{PAPER.joint_branch_weight})")
    parser.add_argument(
        "--val-fraction",
        type=float,
        help="share of each class's clips kept for validation when the data does not "
        f"decide the split (default: {DEFAULT_SPLIT})",
    )
    parser.add_argument(
        "--test-fraction",
        type=float,
        help="share of each class's clips kept for testing when the data does not "
        f"decide the split (default: {DEFAULT_SPLIT})",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run at MODEL from its last checkpoint; options "
        "given again apply where the finished work allows, others are refused "
        "(default: start a new run)",
    )
    parser.add_argument(
        "--seed", type=int,
        help=f"seeds the split, shuffling, mixup and initial weights (default: {PAPER.seed})",
    )
    # The layout too must stay unset when not given (see the module docstring).
    parser.set_defaults(func=run, layout=None)


def _at_least(minimum: float, **values: float | None) -> None:
    for name, value in values.items():
        if value is not None and value < minimum:
            raise AvscError(f"{option(name)} must be at least {minimum}, got {value}")


def _check_values(args: argparse.Namespace) -> None:
    """Refuse option values no run can have, naming the option."""
    values = vars(args)
    _at_least(1, **{name: values[name] for name in (
        "epochs", "phase1_epochs", "visual_epochs", "phase2_epochs", "joint_epochs",
        "batch_size", "jobs")})
    _at_least(0, **{name: values[name] for name in (
        "joint_visual_stages", "seed", "patience", "mixup_alpha", "joint_branch_weight")})
    for name in ("audio_lr", "visual_lr", "fusion_lr"):
        if values[name] is not None and not values[name] > 0:
            raise AvscError(f"{option(name)} must be above 0, got {values[name]}")
    fractions = {"--val-fraction": args.val_fraction, "--test-fraction": args.test_fraction,
                 "--warmup-fraction": args.warmup_fraction}
    for flag, fraction in fractions.items():
        if fraction is not None and not 0 <= fraction < 1:
            raise AvscError(f"{flag} must be at least 0 and below 1, got {fraction}")
    val, test = (DEFAULT_SPLIT if f is None else f
                 for f in (args.val_fraction, args.test_fraction))
    if val + test >= 1:
        raise AvscError(f"--val-fraction {val} and --test-fraction {test} leave no clip "
                        "to train on")
    per_phase = (args.phase1_epochs, args.visual_epochs, args.phase2_epochs)
    if args.epochs is not None and any(n is not None for n in (*per_phase, args.joint_epochs)):
        raise UsageError("give either --epochs or --phase1-epochs/--visual-epochs/"
                         "--phase2-epochs/--joint-epochs")
    if args.strategy == "joint" and (any(n is not None for n in per_phase)
                                     or args.phase != "all"):
        raise UsageError("joint optimisation has one phase: use --epochs or --joint-epochs, "
                         "not --phase1-epochs/--visual-epochs/--phase2-epochs/--phase")
    devices(args.devices)
    if args.phase == "2" and not args.resume:
        raise UsageError("--phase 2 continues a Phase I run: add --resume")


def devices(text: str | None) -> int | list[str] | None:
    """``--devices`` (:func:`~avsc_core.train.settings.parse_devices`), or a one-line error."""
    try:
        return parse_devices(text)
    except ValueError as exc:
        raise AvscError(f"--devices {text}: {exc}") from None


def _check_paths(args: argparse.Namespace) -> None:
    if not args.data.exists():
        raise AvscError(f"{args.data}: no such file or folder")
    check_output_folder(args.out, "model bundle")
    check_cache_options(args)
    weights = args.visual_weights
    if weights not in (None, "imagenet", "none") and not Path(weights).exists():
        raise AvscError(f"{weights}: visual weights file or folder not found")


def _backbone_list(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _given_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`TrainConfig` fields the user set, except ``preset``: each option's
    destination is the field's name."""
    values = vars(args)
    given = {f.name: values[f.name] for f in dataclasses.fields(TrainConfig)
             if f.name != "preset"}
    if args.epochs is not None:
        given.update(dict.fromkeys(EPOCH_FIELDS, args.epochs))
    if given["visual_epochs"] is None:
        # --phase1-epochs sets every Phase I backbone, visual ones included.
        given["visual_epochs"] = given["phase1_epochs"]
    weights = given["visual_weights"]
    if weights not in (None, "imagenet", "none"):
        given["visual_weights"] = str(Path(weights).resolve())
    return {name: value for name, value in given.items() if value is not None}


def run(args: argparse.Namespace) -> int:
    _check_values(args)
    _check_paths(args)
    given = _given_settings(args)
    config, changes = None, None
    if args.resume:
        changes = {**given, **({"preset": args.preset} if args.preset else {})}
    else:
        try:
            config = TrainConfig.for_preset(args.preset or "paper", **given)
        except ValueError as exc:
            raise AvscError(str(exc)) from exc
    phases = ("1", "2") if args.phase == "all" else (args.phase,)

    from avsc_core.train import train_model  # loads TensorFlow

    printer = progress_printer()
    with cancel_on_interrupt() as cancelled:
        out = train_model(
            args.data,
            args.out,
            config,
            layout=args.layout,
            val_fraction=args.val_fraction,
            test_fraction=args.test_fraction,
            resume=args.resume,
            changes=changes,
            phases=phases,
            jobs=args.jobs,
            devices=devices(args.devices),
            cache_dir=args.cache_dir,
            progress=printer,
            cancel=cancelled,
        )
    printer.close()
    from avsc_core.cli.info import describe
    from avsc_core.train.run import is_chief

    if not is_chief():
        # The chief may still be calibrating and writing; its bundle is its own to report.
        print(f"This worker's part of training is done; the chief writes the bundle at {out}")
    elif (out / "manifest.json").exists():
        print(describe(out, brief=True))
    else:
        print(f"Phase I finished: {out} (run again with --phase 2 --resume)")
    sys.stdout.flush()
    return 0
