"""Evaluation report images: a confusion matrix and a reliability diagram per branch, and
the training curves."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from avsc_core.atomic import atomic_write
from avsc_core.bundle.history import epoch_metric
from avsc_core.evaluation.calibration import reliability


def _save(fig, path: Path) -> None:
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=100)


def _reliability_figure(plt, branch: str, rows: list[dict[str, Any]], metrics: dict[str, Any]):
    """Accuracy against confidence in 15 bins, after calibration and (when the model is
    calibrated) before it; a calibrated model's bars follow the diagonal."""
    answered = [r for r in rows if r["predicted"].get(branch) is not None]
    curves = [("calibrated", "", metrics["ece"])]
    if "uncalibrated" in metrics:
        curves.append(("uncalibrated", "_uncalibrated", metrics["uncalibrated"]["ece"]))
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfect calibration")
    for (name, suffix, ece), style in zip(curves, ({"alpha": 0.6}, {"fill": False})):
        correct = [r[f"predicted{suffix}"][branch] == r["label"] for r in answered]
        confidence = [r[f"confidence{suffix}"][branch] for r in answered]
        bins = reliability(np.array(confidence, np.float64), np.array(correct))
        filled = bins.counts > 0
        width = np.diff(bins.edges)
        ax.bar(bins.edges[:-1][filled], bins.accuracy[filled], width=width[filled],
               align="edge", edgecolor="black", label=f"{name} (ECE {ece:.3f})", **style)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{branch}: reliability over {len(answered)} clips")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig


def write_report(directory: str | Path, result: dict[str, Any], model: str | Path) -> list[Path]:
    """Write ``confusion-<branch>.png``, ``reliability-<branch>.png`` and
    ``training-curves.png`` into ``directory``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from avsc_core.bundle import read_manifest

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    classes = result["classes"]
    for branch, metrics in result["branches"].items():
        if metrics is None:
            continue
        matrix = np.array(metrics["confusion"])
        fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(classes), 0.8 + 0.6 * len(classes)))
        ax.imshow(matrix, cmap="Blues")
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                color="white" if count > matrix.max() / 2 else "black",
            )
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(
            f"{branch}: accuracy {metrics['accuracy']:.3f}, log loss {metrics['log_loss']:.3f}"
        )
        fig.tight_layout()
        path = directory / f"confusion-{branch}.png"
        _save(fig, path)
        plt.close(fig)
        written.append(path)

        fig = _reliability_figure(plt, branch, result["clips"], metrics)
        path = directory / f"reliability-{branch}.png"
        _save(fig, path)
        plt.close(fig)
        written.append(path)

    history = read_manifest(model).get("history", {})
    curves = {k: v for k, v in history.items() if v}
    if curves:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
        for name, epochs in curves.items():
            x = [e["epoch"] for e in epochs]
            for ax, metric in zip(axes, ("loss", "accuracy")):
                validation = epoch_metric(epochs[0], metric, True) is not None
                values = [epoch_metric(e, metric, validation) for e in epochs]
                ax.plot(x, [math.nan if v is None else v for v in values], marker="o", ms=3,
                        label=name)
        for ax, metric in zip(axes, ("validation loss", "validation accuracy")):
            ax.set_xlabel("epoch")
            ax.set_title(metric)
            ax.grid(alpha=0.3)
        axes[1].legend(fontsize=8)
        fig.tight_layout()
        path = directory / "training-curves.png"
        _save(fig, path)
        plt.close(fig)
        written.append(path)
    return written
