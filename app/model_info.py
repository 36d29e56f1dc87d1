"""The model panel's text: what a bundle is, from its manifest. No Qt, no TensorFlow."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from app.results import BRANCH_TITLES

NO_MODEL_HTML = (
    "<p><b>No model yet.</b></p>"
    "<p>To classify files you need a trained model:</p><ul>"
    "<li><b>Model &gt; Make a sample model</b> makes synthetic scenes and trains a small "
    "model on them (a few minutes), then opens it;</li>"
    "<li>or train one on your own clips in the <b>Train</b> tab;</li>"
    "<li>or open an existing model folder with <b>Model &gt; Open model...</b></li></ul>"
)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def model_html(path: str | Path, manifest: dict[str, Any]) -> str:
    """Rich text for the model panel: classes, backbones, fusion and the test metrics."""
    esc = html.escape
    training = manifest.get("training", {})
    backbones = ", ".join(
        f"{esc(b['name'])} ({b.get('trainable_params', b.get('params', 0)):,} params)"
        for b in manifest.get("backbones", [])
    )
    heads = ", ".join(esc(h) for h in manifest.get("heads", {}))
    rows = [
        ("Model", f"{esc(Path(path).name)}"),
        ("Classes", esc(", ".join(manifest.get("classes", [])))),
        ("Strategy", (f"{esc(str(manifest.get('strategy')))}, preset "
                      f"{esc(str(manifest.get('preset')))}")),
        ("Fusion", (f"{esc(str(manifest.get('fusion')))} (embedding type "
                    f"{manifest.get('embedding_type')}); heads: {heads}")),
        ("Backbones", backbones),
        ("Training", (f"{training.get('joint_epochs')} epochs of joint optimisation"
                      if manifest.get("strategy") == "joint" else
                      f"{training.get('phase1_epochs')} + {training.get('phase2_epochs')} epochs")
                     + f", batch {training.get('batch_size')}"),
    ]
    for split, entry in manifest.get("metrics", {}).items():
        branches = entry.get("branches", {}) or {}
        parts = []
        for branch in BRANCH_TITLES:
            metrics = branches.get(branch)
            if metrics:
                parts.append(f"{branch} {_pct(metrics.get('accuracy'))}")
        if parts:
            rows.append((f"{split} accuracy", f"{', '.join(parts)} (n={entry.get('n', 0)})"))
    body = "".join(
        f"<tr><td style='padding-right:8px'><b>{name}</b></td><td>{value}</td></tr>"
        for name, value in rows
    )
    return f"<table>{body}</table><p style='color:gray'>{esc(str(path))}</p>"
