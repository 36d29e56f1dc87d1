"""Classification metrics, as the DCASE challenge computes them, and calibration error."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from avsc_core.backbones import BRANCHES
from avsc_core.evaluation.calibration import expected_calibration_error

EPS = 1e-15


def log_loss(labels: np.ndarray, probs: np.ndarray) -> float:
    """Multi-class log loss: mean of ``-log p[true class]``, probabilities clipped to 1e-15."""
    p = np.clip(probs[np.arange(len(labels)), labels], EPS, 1.0)
    return float(-np.mean(np.log(p)))


def confusion(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts; rows are true classes, columns predicted classes."""
    matrix = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def branch_metrics(
    labels: np.ndarray, probs: np.ndarray, classes: Sequence[str]
) -> dict[str, object]:
    """The contract's metrics object for one branch.

    Returns
    -------
    dict
        ``accuracy``, ``log_loss``, ``per_class_accuracy`` (class -> accuracy, ``None``
        for a class with no clips), ``confusion`` (list of lists, rows true classes),
        ``ece`` (expected calibration error, 15 bins).
    """
    labels = np.asarray(labels, int)
    probs = np.asarray(probs, np.float64)
    predicted = probs.argmax(axis=1)
    matrix = confusion(labels, predicted, len(classes))
    totals = matrix.sum(axis=1)
    per_class = {
        c: (float(matrix[i, i] / totals[i]) if totals[i] else None) for i, c in enumerate(classes)
    }
    return {
        "accuracy": float(np.mean(predicted == labels)) if len(labels) else None,
        "log_loss": log_loss(labels, probs) if len(labels) else None,
        "per_class_accuracy": per_class,
        "confusion": matrix.tolist(),
        "ece": expected_calibration_error(labels, probs) if len(labels) else None,
    }


def score_clips(
    labels: Sequence[int],
    answers: Sequence[Mapping[str, np.ndarray | None]],
    classes: Sequence[str],
    uncalibrated: Sequence[Mapping[str, np.ndarray | None]] | None = None,
) -> dict[str, dict[str, object] | None]:
    """Per-branch metrics of clips: each branch scored on the clips it answered.

    Parameters
    ----------
    labels : sequence of int
        Each clip's true class, an index into ``classes``.
    answers : sequence of mapping
        Each clip's ``{branch: probabilities or None}``, after the Predictor's fallback
        (:func:`avsc_core.inference.predictor.with_fallback`).
    uncalibrated : sequence of mapping, optional
        The same answers before temperature scaling, for a calibrated model.

    Returns
    -------
    dict
        ``{branch: branch_metrics(...)}``, ``None`` for a branch that answered no clip;
        with ``uncalibrated``, each also has ``"uncalibrated": {"log_loss", "ece"}``.
    """
    result: dict[str, dict[str, object] | None] = {}
    for branch in BRANCHES:
        answered = [i for i, a in enumerate(answers) if a.get(branch) is not None]
        if not answered:
            result[branch] = None
            continue
        y = np.array([labels[i] for i in answered])
        metrics = branch_metrics(y, np.array([answers[i][branch] for i in answered]), classes)
        if uncalibrated is not None:
            before = np.asarray([uncalibrated[i][branch] for i in answered], np.float64)
            metrics["uncalibrated"] = {"log_loss": log_loss(y, before),
                                       "ece": expected_calibration_error(y, before)}
        result[branch] = metrics
    return result
