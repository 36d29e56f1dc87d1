"""Which answers a person should check: the one rule ``classify``, ``label`` and the app share.

A file needs review when its fused confidence is under the chosen minimum, when its
audio and visual branches name different classes, or when it is unlike anything the model
was trained on (:mod:`avsc_core.inference.unfamiliar`). The reasons are the contract's
strings; the label CSV joins them with ``;`` (:func:`review_text`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

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
