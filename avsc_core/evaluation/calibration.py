"""How far confidence can be trusted: expected calibration error, and fitting a temperature.

A model is calibrated when, of the answers it gives with confidence 0.8, 80 % are right.
The expected calibration error (ECE) measures the gap: answers are put in 15 equal-width
bins by confidence, and the gap between each bin's accuracy and mean confidence is
averaged, weighted by the bin's share of answers (Guo et al., 2017, "On calibration of
modern neural networks"). Temperature scaling, the remedy of the same paper, divides the
log-probabilities by one scalar ``T`` fitted on held-out clips by minimising their log
loss (:func:`fit_temperature`); the scaling itself is
:func:`avsc_core.inference.calibration.apply_temperature`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from avsc_core.inference.calibration import apply_temperature

BINS = 15
# The search range of T. A validation split that the model already gets all right pushes
# T towards 0 (ever sharper answers); the bound keeps such a fit from turning every
# answer into a certainty.
MIN_TEMPERATURE = 0.1
MAX_TEMPERATURE = 10.0
EPS = 1e-15


@dataclass(frozen=True)
class Reliability:
    """Answers binned by confidence: what a reliability diagram draws.

    Attributes
    ----------
    edges : ndarray
        ``(bins + 1,)`` bin edges from 0 to 1.
    counts : ndarray
        ``(bins,)`` answers per bin.
    accuracy, confidence : ndarray
        ``(bins,)`` share of right answers and mean confidence per bin (NaN when empty).
    """

    edges: np.ndarray
    counts: np.ndarray
    accuracy: np.ndarray
    confidence: np.ndarray

    @property
    def ece(self) -> float:
        """The count-weighted mean gap between accuracy and confidence."""
        total = self.counts.sum()
        if not total:
            return math.nan
        filled = self.counts > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float(np.sum(self.counts[filled] * gaps) / total)


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> Reliability:
    """Bin answers by ``confidence`` into ``bins`` equal-width bins.

    Bin ``i`` holds confidences in ``(i / bins, (i + 1) / bins]`` (the first bin also
    takes 0), so an answer of confidence exactly 0.8 with 15 bins falls in bin 11.

    Parameters
    ----------
    confidence : ndarray
        ``(n,)`` confidence of each answer (its top probability).
    correct : ndarray
        ``(n,)`` whether each answer was right.
    """
    confidence = np.asarray(confidence, np.float64)
    correct = np.asarray(correct, bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.bincount(index, weights=correct, minlength=bins) / counts
        mean_confidence = np.bincount(index, weights=confidence, minlength=bins) / counts
    return Reliability(edges, counts, accuracy, mean_confidence)


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int = BINS) -> float:
    """ECE of probabilities ``(n, classes)`` against true class indices ``(n,)``."""
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels, int)
    return reliability(probs.max(axis=1), probs.argmax(axis=1) == labels, bins).ece


@dataclass(frozen=True)
class TemperatureFit:
    """One head's fitted temperature and what it did on the clips it was fitted on.

    Attributes
    ----------
    temperature : float
        ``T``; 1 when it was not fitted.
    clips : int
        Clips it was fitted on.
    log_loss_before, log_loss_after : float or None
        Their clip-level log loss with ``T = 1`` and with ``T``.
    skipped : str or None
        Why no temperature was fitted (too few clips or classes), else ``None``.
    """

    temperature: float
    clips: int
    log_loss_before: float | None = None
    log_loss_after: float | None = None
    skipped: str | None = None

    def to_dict(self) -> dict[str, object]:
        if self.skipped:
            return {"clips": self.clips, "skipped": self.skipped}
        return {"clips": self.clips, "log_loss_before": self.log_loss_before,
                "log_loss_after": self.log_loss_after}


def _clip_log_loss(labels: np.ndarray, clips: Sequence[np.ndarray], temperature: float) -> float:
    # The clip answer is the mean of the scaled segment answers, as the Predictor and
    # the metrics compute it, so T is fitted on exactly what is scored.
    probs = np.stack([apply_temperature(c, temperature).mean(axis=0) for c in clips])
    picked = np.clip(probs[np.arange(len(labels)), labels], EPS, 1.0)
    return float(-np.mean(np.log(picked)))


def fit_temperature(labels: Sequence[int], clips: Sequence[np.ndarray]) -> TemperatureFit:
    """The temperature minimising the clip-level log loss of ``clips``.

    The search is over ``log T`` in ``[log 0.1, log 10]`` (bounded Brent); when it finds
    nothing better than ``T = 1``, ``T = 1`` is kept, so the fitted clips' log loss never
    rises.

    Parameters
    ----------
    labels : sequence of int
        Each clip's true class index.
    clips : sequence of ndarray
        Each clip's segment probabilities ``(segments, classes)``, uncalibrated.

    Returns
    -------
    TemperatureFit
        ``T = 1`` with ``skipped`` set when fewer than two classes are among the clips:
        one class alone tells only that the answers should be surer, and drives ``T`` to
        its bound.
    """
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels, int)
    present = len(set(labels.tolist()))
    if present < 2:
        return TemperatureFit(1.0, len(labels), skipped=(
            f"{len(labels)} validation clips of {present} classes; at least 2 classes needed"))
    before = _clip_log_loss(labels, clips, 1.0)
    found = minimize_scalar(
        lambda log_t: _clip_log_loss(labels, clips, math.exp(log_t)),
        bounds=(math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    temperature, after = math.exp(float(found.x)), float(found.fun)
    if not after < before:
        temperature, after = 1.0, before
    return TemperatureFit(temperature, len(labels), before, after)
