"""Which answers a person should check: the one rule ``classify``, ``label`` and the app share.

A file needs review when its fused confidence is under the chosen minimum, when its
audio and visual branches name different classes, or when it is unlike anything the model
was trained on (:mod:`avsc_core.inference.unfamiliar`). The reasons are the contract's
strings; the label CSV joins them with ``;`` (:func:`review_text`).

Once a person has reviewed some answers, :func:`accuracy_at_or_above` and
:func:`suggest_threshold` tell from that evidence which confidence the answers can be
trusted above.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from avsc_core.errors import AvscError

if TYPE_CHECKING:
    from avsc_core.inference.classify import ClassifyResult

LOW_CONFIDENCE = "low confidence"
BRANCHES_DISAGREE = "branches disagree"
UNFAMILIAR = "unfamiliar"
REASONS = (LOW_CONFIDENCE, BRANCHES_DISAGREE, UNFAMILIAR)
SEPARATOR = ";"


def check_min_confidence(min_confidence: float | None) -> float | None:
    """``min_confidence`` itself when it is a probability (or ``None``: no minimum).

    Raises
    ------
    AvscError
        A value outside 0..1 (or not a number).
    """
    if min_confidence is not None and not (
        math.isfinite(min_confidence) and 0.0 <= min_confidence <= 1.0
    ):
        raise AvscError(f"--min-confidence must be between 0 and 1, got {min_confidence:g}")
    return min_confidence


def review_reasons(result: ClassifyResult, min_confidence: float | None = None) -> list[str]:
    """Why ``result`` needs a person's review, in :data:`REASONS` order; empty when it does not.

    Parameters
    ----------
    result : ClassifyResult
        One file's answer.
    min_confidence : float, optional
        The fused confidence a file needs not to be flagged ``low confidence``; ``None``
        checks no confidence.

    Returns
    -------
    list of str
        Some of ``"low confidence"``, ``"branches disagree"`` (both branches ran and name
        different classes) and ``"unfamiliar"`` (the file's unfamiliarity score is above
        the model's threshold).

    Raises
    ------
    AvscError
        ``min_confidence`` is not between 0 and 1.
    """
    check_min_confidence(min_confidence)
    reasons = []
    if min_confidence is not None and result.confidence < min_confidence:
        reasons.append(LOW_CONFIDENCE)
    audio, visual = result.branch_label("audio"), result.branch_label("visual")
    if audio is not None and visual is not None and audio != visual:
        reasons.append(BRANCHES_DISAGREE)
    if result.unfamiliar:
        reasons.append(UNFAMILIAR)
    return reasons


def review_text(reasons: list[str]) -> str:
    """The reasons as one CSV cell: joined by ``;``, empty when there are none."""
    return SEPARATOR.join(reasons)


def accuracy_at_or_above(
    confidences: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How often the answers at or above each confidence were right.

    Parameters
    ----------
    confidences : sequence of float
        The fused confidence of each reviewed answer.
    correct : sequence of bool
        Whether the person confirmed it (their label is the model's).

    Returns
    -------
    thresholds : ndarray of float
        The distinct confidences, ascending.
    accuracy : ndarray of float
        For each threshold, the share of correct answers among those whose confidence is
        at or above it.
    counts : ndarray of int
        For each threshold, how many answers are at or above it.

    Raises
    ------
    ValueError
        The two sequences differ in length, or a confidence is not a finite number.
    """
    conf = np.asarray(confidences, dtype=float).reshape(-1)
    right = np.asarray(correct, dtype=bool).reshape(-1)
    if conf.shape != right.shape:
        raise ValueError(f"{conf.size} confidences but {right.size} correct flags")
    if not np.isfinite(conf).all():
        raise ValueError("confidences must be finite numbers")
    order = np.argsort(conf, kind="stable")
    conf, right = conf[order], right[order]
    thresholds = np.unique(conf)
    first = np.searchsorted(conf, thresholds, side="left")
    # right_from[i]: correct answers from the i-th lowest confidence up.
    right_from = np.concatenate([np.cumsum(right[::-1])[::-1], [0]])
    counts = conf.size - first
    accuracy = right_from[first] / np.maximum(counts, 1)
    return thresholds, accuracy.astype(float), counts.astype(int)


def suggest_threshold(
    confidences: Sequence[float] | np.ndarray,
    correct: Sequence[bool] | np.ndarray,
    precision: float,
) -> float | None:
    """The lowest confidence at or above which the reviewed answers reach ``precision``.

    Answers at or above the threshold returned were right at least ``precision`` of the
    time; it is the lowest such confidence, so that as many answers as the evidence allows
    can be trusted without a look. The accuracy need not rise with the confidence: a
    higher threshold can do worse, yet the answers above the one returned, taken
    together, reach ``precision``.

    Parameters
    ----------
    confidences, correct : sequence
        As for :func:`accuracy_at_or_above`.
    precision : float
        The share of right answers wanted, in (0, 1].

    Returns
    -------
    float or None
        One of ``confidences``; ``None`` when there is no evidence, or when even the most
        confident answers fall short.

    Raises
    ------
    ValueError
        ``precision`` outside (0, 1], or bad inputs (see :func:`accuracy_at_or_above`).

    Examples
    --------
    >>> suggest_threshold([0.5, 0.7, 0.8, 0.9], [False, True, True, True], 0.95)
    0.7
    """
    if not (math.isfinite(precision) and 0.0 < precision <= 1.0):
        raise ValueError(f"precision must be in (0, 1], got {precision}")
    thresholds, accuracy, _ = accuracy_at_or_above(confidences, correct)
    # A small tolerance: 19 right of 20 is 0.95 even when the division says 0.9499999.
    reached = thresholds[accuracy >= precision - 1e-12]
    return float(reached[0]) if reached.size else None
