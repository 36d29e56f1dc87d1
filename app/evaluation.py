"""Per-clip answers of a trained model on its held-out clips, for the wizard's results page.

:func:`avsc_core.evaluation.evaluate.evaluate_model` keeps each clip's answer per branch,
so a click on a confusion cell can list its clips. Runs in the training process (it
imports TensorFlow).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from avsc_core.progress import ProgressCallback


def clip_predictions(
    model: str | Path,
    data: str | Path,
    layout: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """``evaluate_model`` on the test split, or the validation split when it is empty,
    through the feature cache at ``cache_dir`` (the default folder when None)."""
    from avsc_core.bundle import read_manifest
    from avsc_core.evaluation.evaluate import dataset_for_evaluation, evaluate_model

    manifest = read_manifest(model)
    seed = int(manifest.get("training", {}).get("seed", 0))
    dataset = dataset_for_evaluation(manifest.get("dataset", {}), data, layout, seed)
    split = "test" if dataset.split("test") else "val"
    return evaluate_model(model, data, layout, split, progress, cancel, cache_dir=cache_dir)


def clips_in_cell(
    evaluation: dict[str, Any], branch: str, true_class: str, predicted: str
) -> list[dict[str, Any]]:
    """The clips of class ``true_class`` that ``branch`` called ``predicted``."""
    return [
        clip for clip in evaluation["clips"]
        if clip["label"] == true_class and clip["predicted"].get(branch) == predicted
    ]
