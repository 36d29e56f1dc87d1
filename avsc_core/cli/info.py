"""``avsc info --model MODEL``: what a model bundle contains."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from avsc_core.cli.common import model_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="describe a model bundle",
        description="Classes, backbones (with parameter counts), fusion, feature settings "
        "and training metrics of a model bundle.",
        parents=[model_options()],
    )
    parser.add_argument("--json", action="store_true",
                        help="print the whole manifest as JSON (default: a text summary)")
    parser.set_defaults(func=run)


def _metric(metrics: dict | None, key: str) -> str:
    if not metrics or metrics.get(key) is None:
        return "-"
    return f"{metrics[key]:.3f}"


def describe(model: Path, brief: bool = False) -> str:
    from avsc_core.bundle import read_manifest

    m = read_manifest(model)
    training = m.get("training", {})
    lines = [
        f"model      {model}",
        (f"strategy   {m['strategy']} (preset {m.get('preset')}, fusion {m.get('fusion')}, "
         f"embedding type {m.get('embedding_type')})"),
        f"classes    {', '.join(m['classes'])}",
    ]
    if not brief:
        lines.append("backbones")
        for b in m["backbones"]:
            lines.append(
                f"  {b['name']:9} {b['modality']:7} {b['feature']:7} "
                f"{b.get('trainable_params', b.get('params', 0)):>12,} trainable parameters"
            )
        lines.append(
            "heads      "
            + ", ".join(f"{name} ({' + '.join(h['inputs'])})" for name, h in m["heads"].items())
        )
        f = m["features"]
        media = m["media"]
        lines.append(
            f"audio      {media['sample_rate']} Hz, {media['segment_seconds']:g}-s segments; "
            f"{f['n_bins']} bins, n_fft {f['n_fft']}, window {f['win_length']}, "
            f"hop {f['hop_length']}, deltas {'on' if f['deltas'] else 'off'}"
        )
        lines.append(
            f"video      {media['frames_per_second']:g} frames/s at "
            f"{media['frame_size']}x{media['frame_size']}"
        )
        if m.get("strategy") == "joint":
            epochs = (
                f"{training.get('joint_epochs')} epochs of joint optimisation "
                f"({training.get('joint_feature')} + "
                f"{'tiny_cnn' if m.get('preset') == 'tiny' else training.get('joint_image_model')}"
                f"{', image layers frozen' if training.get('joint_freeze_visual') else ''})"
            )
        else:
            epochs = f"{training.get('phase1_epochs')} + {training.get('phase2_epochs')} epochs"
        lines.append(
            f"training   {epochs}, batch {training.get('batch_size')}, mixup alpha "
            f"{training.get('mixup_alpha')}, seed {training.get('seed')}"
        )
    for split, entry in m.get("metrics", {}).items():
        branches = entry.get("branches", {})
        parts = []
        for b in ("audio", "visual", "fused"):
            metrics = branches.get(b)
            parts.append(
                f"{b} {_metric(metrics, 'accuracy')} acc / {_metric(metrics, 'log_loss')} loss"
            )
        lines.append(f"{split:10} n={entry.get('n', 0)}: " + ", ".join(parts))
    if not brief:
        from avsc_core.inference.calibration import calibration_notes

        notes = calibration_notes(m)
        if notes:
            lines.append("calibration")
            lines.extend(f"  {head:9} {note}" for head, note in notes.items())
        if m.get("exports"):
            lines.append("exports")
            lines.extend(f"  {key:11} {_export_line(e)}" for key, e in m["exports"].items())
    return "\n".join(lines)


def _export_line(export: dict) -> str:
    """What an export holds: when it was written, which networks are not at its precision,
    and for a calibrated one the clips that fixed its ranges."""
    networks = {**export.get("backbones", {}), **export.get("heads", {})}
    other = sorted(n for n, e in export.get("backbones", {}).items()
                   if e.get("precision", export["precision"]) != export["precision"])
    parts = [f"written {export.get('created', '?')} by avsc {export.get('avsc_version', '?')}",
             f"{len(networks)} networks"]
    if other:
        parts.append(f"fp32: {', '.join(other)} and the heads")
    calibration = export.get("calibration")
    if calibration:
        files = calibration.get("files", [])
        shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        parts.append(f"calibrated on {len(files)} files ({shown})")
    return "; ".join(parts)


def run(args: argparse.Namespace) -> int:
    from avsc_core.bundle import load_bundle, read_manifest

    if args.json:
        print(json.dumps(read_manifest(args.model), indent=2))
    else:
        print(describe(args.model))
    sys.stdout.flush()
    # The description comes from the manifest alone; a network file that is missing or was
    # changed would only show when the model is used, so say it here (exit 1).
    bundle = load_bundle(args.model, verify=True)
    if not args.json:
        print(runtime_line(bundle))
    return 0


def runtime_line(bundle) -> str:
    """What ``--runtime auto`` runs the networks with on this machine, and how (the line
    a Predictor logs; it opens no network)."""
    from avsc_core.inference.predictor import KERAS, Predictor

    predictor = Predictor(bundle)
    hint = " (no export: 'avsc export' writes a faster copy)" if predictor.runtime == KERAS else ""
    return f"runtime    {predictor.describe()}{hint}"
