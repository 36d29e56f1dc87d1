"""Evaluating a bundle on a dataset, per branch, at the clip level."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from avsc_core.bundle import load_bundle
from avsc_core.datasets import Dataset, load_dataset
from avsc_core.errors import AvscError
from avsc_core.evaluation.metrics import score_clips
from avsc_core.progress import Cancelled, Progress, ProgressCallback


def _relative_paths(dataset: Dataset) -> set[str]:
    return {dataset.relative(c.path) for c in dataset.clips}


def dataset_for_evaluation(
    recorded: dict[str, Any], data: str | Path, layout: str, seed: int
) -> Dataset:
    """The clips to evaluate, with their splits.

    On the model's own training data (the same files), the split recorded in the bundle
    decides, so ``test`` is exactly what the model never saw. Other data keeps its own
    split (its ``split`` column, TAU fold files, or a seeded split).
    """
    fresh = load_dataset(data, layout, seed=seed)
    try:
        trained_on = Dataset.from_dict(recorded, root=data)
    except (AvscError, KeyError, TypeError, ValueError):
        return fresh
    if _relative_paths(trained_on) <= _relative_paths(fresh):
        return trained_on
    return fresh


def evaluate_model(
    model: str | Path,
    data: str | Path,
    layout: str = "auto",
    split: str = "test",
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Clip-level metrics of the audio, visual and fused branches on ``split`` of ``data``.

    Returns
    -------
    dict
        ``{"n", "classes", "split", "branches": {"audio": M, "visual": M, "fused": M},
        "clips": [...], "skipped": [...]}`` with ``M`` from :func:`branch_metrics`
        (``None`` for a branch that could not run on any clip); each of ``clips`` is
        ``{"file", "label", "predicted": {branch: class | None}, "confidence": {branch:
        p | None}}``, so a confusion cell can list its clips.
    """
    from avsc_core.inference.predictor import Predictor, clip_probabilities
    from avsc_core.train.prepare import prepare_clips

    bundle = load_bundle(model)
    seed = int(bundle.manifest.get("training", {}).get("seed", 0))
    dataset = dataset_for_evaluation(bundle.manifest.get("dataset", {}), data, layout, seed)
    clips = dataset.clips if split == "all" else dataset.split(split)
    classes = bundle.classes
    unknown = sorted({c.label for c in clips} - set(classes))
    if unknown:
        raise AvscError(
            f"{data}: classes the model does not know: {', '.join(unknown)} "
            f"(it knows {', '.join(classes)})"
        )
    if not clips:
        raise AvscError(f"{data}: no clips in the '{split}' split")
    predictor = Predictor(bundle)
    kinds, frames = predictor.needs()
    preparation = prepare_clips(
        clips,
        bundle.media,
        bundle.features,
        kinds=kinds,
        frames=frames,
        progress=progress,
        cancel=cancel,
    )
    lookup = {c: i for i, c in enumerate(classes)}
    labels: list[int] = []
    answers: list[dict[str, np.ndarray | None]] = []
    rows: list[dict[str, Any]] = []
    for done, prepared in enumerate(preparation.clips, 1):
        if cancel and cancel():
            raise Cancelled()
        n = prepared.segments
        features = (
            {k: np.load(p, mmap_mode="r")[:n] for k, p in prepared.features.items()}
            if prepared.features
            else None
        )
        frame_array = np.load(prepared.frames, mmap_mode="r")[:n] if prepared.frames else None
        result = predictor.predict(features, frame_array)
        row: dict[str, Any] = {
            "file": dataset.relative(prepared.clip.path),
            "label": prepared.clip.label,
            "predicted": {},
            "confidence": {},
        }
        answer = {b: clip_probabilities(p) for b, p in result.branches.items()}
        for branch, clip_probs in answer.items():
            if clip_probs is None:
                row["predicted"][branch] = row["confidence"][branch] = None
                continue
            best = int(np.argmax(clip_probs))
            row["predicted"][branch] = classes[best]
            row["confidence"][branch] = float(clip_probs[best])
        labels.append(lookup[prepared.clip.label])
        answers.append(answer)
        rows.append(row)
        if progress:
            progress(
                Progress(
                    "evaluate", done, len(preparation.clips), {"file": str(prepared.clip.path)}
                )
            )
    return {
        "n": len(preparation.clips),
        "classes": classes,
        "split": split,
        "branches": score_clips(labels, answers, classes),
        "clips": rows,
        "skipped": [{"file": str(c.path), "reason": r} for c, r in preparation.failures],
    }
