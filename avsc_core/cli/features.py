"""``avsc features FILE --kind mel|gam|cqt [--out FILE.npy] [--png FILE.png]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from avsc_core.config import FEATURE_KINDS, FeatureConfig, MediaConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "features",
        help="compute a file's MEL, gammatone or CQT features",
        description="Compute the audio network inputs of FILE: float32 "
        "(segments, bins, frames, channels), (n, 128, 305, 6) with the default settings "
        "(10-s segments; bins from low to high frequency; channels left, right, their "
        "deltas, then their delta-deltas).",
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="audio or video file")
    parser.add_argument("--kind", required=True, choices=FEATURE_KINDS,
                        help="which spectrogram: MEL, gammatone or CQT (required)")
    parser.add_argument("--out", type=Path, metavar="FILE.npy",
                        help="save the features as .npy (default: not saved)")
    parser.add_argument("--png", type=Path, metavar="FILE.png",
                        help="save a labelled spectrogram image (default: none)")
    parser.add_argument(
        "--segment-seconds",
        type=float,
        default=MediaConfig.segment_seconds,
        metavar="S",
        help="segment length in seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--hop-seconds",
        type=float,
        default=None,
        metavar="S",
        help="distance between segment starts (default: the segment length)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from avsc_core.errors import AvscError
    from avsc_core.outputs import check_output_file

    if args.segment_seconds <= 0 or (args.hop_seconds is not None and args.hop_seconds <= 0):
        raise AvscError("--segment-seconds and --hop-seconds must be positive")
    if args.out:
        check_output_file(args.out, "features file")
    if args.png:
        check_output_file(args.png, "spectrogram image")

    from avsc_core.atomic import save_npy
    from avsc_core.features import FeatureExtractor, file_features
    from avsc_core.media import probe

    media = MediaConfig(
        segment_seconds=args.segment_seconds,
        hop_seconds=args.hop_seconds or args.segment_seconds,
    )
    extractor = FeatureExtractor(FeatureConfig(), media.sample_rate)
    info = probe(args.file)
    features = file_features(args.file, (args.kind,), media=media, info=info, extractor=extractor)[
        args.kind
    ]
    if args.out:
        save_npy(args.out, features)
    if args.png:
        from avsc_core.features.render import render_spectrogram_png

        n_static = 2 if features.shape[-1] >= 2 else 1
        # Segments side by side on one time axis (overlapping hops shown as cut).
        static = np.concatenate(list(features[..., :n_static]), axis=1)
        render_spectrogram_png(
            args.png,
            np.moveaxis(static, -1, 0),
            extractor.frequencies(args.kind),
            extractor.config.frame_seconds(media.sample_rate),
            args.kind,
            title=f"{args.file.name}  ({info.duration:.1f} s)",
            start_time=float(extractor.frame_times(1)[0]),
        )
    print(
        f"{args.file}: {args.kind} features {tuple(features.shape)} float32"
        + (f" -> {args.out}" if args.out else "")
        + (f", image -> {args.png}" if args.png else ""),
        file=sys.stdout,
    )
    return 0
