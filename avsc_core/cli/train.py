"""``avsc train DATA --out MODEL ...``: train a model bundle."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from avsc_core.cli.common import add_layout_argument, cancel_on_interrupt, progress_printer
from avsc_core.train.settings import FUSIONS, JOINT_IMAGE_MODELS, SPECTROGRAMS, STRATEGIES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model bundle on a dataset",
        description="Train Pham et al.'s two-phase system (five backbones, then a fusion "
        "layer) or Chen et al.'s joint optimisation (a 1-D CNN acoustic encoder and the "
        "bottom layers of an image model, trained with the classifier) on DATA and write "
        "a model bundle (a folder) at MODEL.",
    )
    parser.add_argument("data", type=Path, help="dataset root, CSV file or TAU 2021 folder")
    parser.add_argument("--out", type=Path, required=True, metavar="MODEL")
    add_layout_argument(parser)
    parser.add_argument(
        "--preset",
        choices=("tiny", "paper"),
        default="paper",
        help="network sizes (default: %(default)s; tiny is for tests and demos)",
    )
    parser.add_argument("--strategy", choices=STRATEGIES, default="two-phase")
    parser.add_argument(
        "--fusion",
        choices=FUSIONS,
        default="f4",
        help="Phase II fusion (default: %(default)s, the paper's best)",
    )
    parser.add_argument(
        "--backbones",
        help="comma-separated subset of aud-mel,aud-gam,"
        "aud-cqt,vis-inc,vis-conv (default: all five)",
    )
    parser.add_argument("--epochs", type=int, help="epochs of both phases, or of joint training")
    parser.add_argument("--phase1-epochs", type=int)
    parser.add_argument("--phase2-epochs", type=int)
    parser.add_argument(
        "--phase",
        choices=("1", "2", "all"),
        default="all",
        help="run only Phase I or Phase II (Phase II resumes a Phase I run)",
    )
    parser.add_argument("--batch-size", type=int)
    parser.add_argument(
        "--visual-weights",
        default=None,
        metavar="imagenet|none|PATH",
        help="initial weights of the visual backbones: imagenet (default; "
        "cached in the user cache dir), none, or a folder holding the Keras "
        "ImageNet weights files (a single file when training one visual "
        "backbone); the tiny preset always starts from scratch",
    )
    parser.add_argument("--audio-lr", type=float,
                        help="Adam learning rate of the audio backbones (joint: of the acoustic "
                        "encoder and the classifier)")
    parser.add_argument("--visual-lr", type=float,
                        help="Adam learning rate of the visual backbones (joint: of the image "
                        "model's layers)")
    joint = parser.add_argument_group("joint optimisation (--strategy joint)")
    joint.add_argument("--joint-feature", choices=SPECTROGRAMS,
                       help="spectrogram of the acoustic encoder (default: mel)")
    joint.add_argument("--image-model", choices=JOINT_IMAGE_MODELS,
                       help="image model whose bottom layers encode the frames "
                       "(default: convnext_tiny; the tiny preset uses a small CNN)")
    joint.add_argument("--visual-stages", type=int, metavar="K",
                       help="stages of the image model kept (default: 2 of ConvNeXtTiny's 4, "
                       "3 of InceptionV3's 11)")
    joint.add_argument("--freeze-visual", action="store_true",
                       help="keep the image model's layers fixed")
    parser.add_argument("--val-fraction", type=float, default=0.15)
    parser.add_argument("--test-fraction", type=float, default=0.15)
    parser.add_argument(
        "--jobs", type=int, default=1, help="processes decoding and computing features (default: 1)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run at MODEL from its last checkpoint",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from avsc_core.errors import AvscError
    from avsc_core.train import TrainConfig, train_model

    if args.epochs is not None and (args.phase1_epochs or args.phase2_epochs):
        raise AvscError("give either --epochs or --phase1-epochs/--phase2-epochs")
    if args.strategy == "joint" and (args.phase1_epochs or args.phase2_epochs
                                     or args.phase != "all"):
        raise AvscError("joint optimisation has one phase: use --epochs, not "
                        "--phase1-epochs/--phase2-epochs/--phase")
    overrides = {
        "strategy": args.strategy,
        "fusion": args.fusion,
        "phase1_epochs": args.phase1_epochs if args.epochs is None else args.epochs,
        "phase2_epochs": args.phase2_epochs if args.epochs is None else args.epochs,
        "batch_size": args.batch_size,
        "visual_weights": args.visual_weights,
        "seed": args.seed,
        "joint_epochs": args.epochs,
        "joint_feature": args.joint_feature,
        "joint_image_model": args.image_model,
        "joint_visual_stages": args.visual_stages,
        "joint_freeze_visual": args.freeze_visual or None,
        "audio_lr": args.audio_lr,
        "visual_lr": args.visual_lr,
    }
    if args.backbones:
        overrides["backbones"] = tuple(b.strip() for b in args.backbones.split(",") if b.strip())
    if args.visual_weights not in (None, "imagenet", "none"):
        weights = Path(args.visual_weights)
        if not weights.exists():
            raise AvscError(f"{weights}: visual weights file or folder not found")
        overrides["visual_weights"] = str(weights.resolve())
    try:
        config = TrainConfig.for_preset(args.preset, **overrides)
    except ValueError as exc:
        raise AvscError(str(exc)) from exc
    phases = ("1", "2") if args.phase == "all" else (args.phase,)
    if args.phase == "2" and not args.resume:
        raise AvscError("--phase 2 continues a Phase I run: add --resume")
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
            phases=phases,
            jobs=args.jobs,
            progress=printer,
            cancel=cancelled,
        )
    printer.close()
    from avsc_core.cli.info import describe

    if (out / "manifest.json").exists():
        print(describe(out, brief=True))
    else:
        print(f"Phase I finished: {out} (run again with --phase 2 --resume)")
    sys.stdout.flush()
    return 0
