"""How far confidence can be trusted: expected calibration error, and fitting a temperature.

A model is calibrated when, of the answers it gives with confidence 0.8, 80 % are right.
The expected calibration error (ECE) measures the gap: answers are put in 15 equal-width
bins by confidence, and the gap between each bin's accuracy and mean confidence is
averaged, weighted by the bin's share of answers (Guo et al., 2017, "On calibration of
modern neural networks"). Temperature scaling, the remedy of the same paper, divides the
log-probabilities by one scalar ``T`` fitted on held-out clips by minimising their log
loss (:func:`fit_temperature`); the scaling itself is
:func:`avsc_core.inference.calibration.apply_temperature`.

Guo et al. fit ``T`` on thousands of validation images; a small dataset has a handful of
validation clips (the sample data: 8), and one parameter fitted on 8 clips still
overfits them (on the sample data the plain fit sharpened the visual branch to T = 0.25
and raised its test log loss from 0.351 to 0.533). Two guards, both standard for small calibration sets, make the
fit safe there and leave it unchanged on large ones (:class:`TemperatureSettings`):

- **Shrinkage.** ``T`` is the maximum a posteriori estimate under a normal prior on
  ``log T`` centred on 0 (``T = 1``, the network's own answers): it minimises the summed
  log loss of the clips plus ``(log T)^2 / (2 sd^2)``. The penalty does not grow with the
  clips while their log loss does, so with 8 clips it pulls ``T`` well towards 1 and with
  1000 it is negligible; Platt (1999, "Probabilistic outputs for support vector
  machines") regularises his small-sample calibration fit for the same reason.
- **A cross-validated check.** The whole fit is repeated on stratified folds of the
  clips (leave-one-out with 10 clips or fewer, else 10 folds; Stone, 1974,
  "Cross-validatory choice and assessment of statistical predictions"; Kohavi, 1995, "A
  study of cross-validation and bootstrap for accuracy estimation and model selection"),
  each held-out clip scored with the ``T`` fitted without it. When that log loss is not
  below the log loss of ``T = 1`` (which has nothing fitted, so needs no folds), the
  temperature is refused and ``T = 1`` kept: the evidence does not show it generalises.

:class:`TemperatureFit` records the decision and the figures behind it, for the manifest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

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
class TemperatureSettings:
    """How a temperature is fitted, and when it is refused.

    Attributes
    ----------
    prior_sd : float or None
        Standard deviation of the normal prior on ``log T`` (mean 0). With the default
        0.5, 95 % of the prior lies on ``T`` in ``[0.38, 2.7]``: a model's answers are
        expected to be off by at most a factor of a few in log-odds (temperature scaling
        softens overconfident networks, Guo et al., 2017, rather than reshaping them), and
        8 clips that are all right can no longer drive ``T`` to the search bound (the
        plain fit chose the bound 0.1 for the sample data's fused branch). Of 0.5 and 1,
        0.5 raised the held-out log loss less for 8-clip validation sets drawn from a
        calibrated model (+0.016 against +0.052 on average) and lowered it about as
        much for models 2x over- or underconfident (the simulation of
        ``tests/test_calibration.py``). ``None``: the plain maximum-likelihood fit of
        Guo et al.
    folds : int
        Folds of the cross-validated check (leave-one-out when there are no more clips
        than folds); 10 is the usual choice (Kohavi, 1995). 0 skips the check.
    """

    prior_sd: float | None = 0.5
    folds: int = 10


DEFAULT_SETTINGS = TemperatureSettings()


@dataclass(frozen=True)
class TemperatureFit:
    """One head's temperature, what it did on the clips it was fitted on, and why.

    Attributes
    ----------
    temperature : float
        ``T`` to apply; 1 when none was fitted or the fitted one was refused.
    clips : int
        Clips it was fitted on.
    log_loss_before, log_loss_after : float or None
        Their clip-level log loss with ``T = 1`` and with ``temperature``.
    skipped : str or None
        Why no temperature was fitted at all (too few classes), else ``None``.
    proposed : float or None
        The shrunk (MAP) estimate, applied unless the cross-validated check refused it.
    unshrunk : float or None
        The plain maximum-likelihood estimate (Guo et al.), for comparison.
    prior_sd : float or None
        The prior's standard deviation on ``log T``; ``None`` for no prior.
    folds : int or None
        Folds of the cross-validated check; ``None`` when it was not run.
    cv_log_loss : float or None
        Log loss of the held-out clips of those folds, each scored with the ``T`` fitted
        without it; compared with ``log_loss_before``.
    decision : str or None
        What was decided and why, in a sentence.
    """

    temperature: float
    clips: int
    log_loss_before: float | None = None
    log_loss_after: float | None = None
    skipped: str | None = None
    proposed: float | None = None
    unshrunk: float | None = None
    prior_sd: float | None = None
    folds: int | None = None
    cv_log_loss: float | None = None
    decision: str | None = None

    def to_dict(self) -> dict[str, object]:
        """The manifest's ``calibration.fit.<head>`` entry (the first keys as bundles
        written before the check have them)."""
        if self.skipped:
            return {"clips": self.clips, "skipped": self.skipped}
        entry: dict[str, object] = {
            "clips": self.clips, "log_loss_before": self.log_loss_before,
            "log_loss_after": self.log_loss_after, "decision": self.decision,
            "proposed": self.proposed, "unshrunk": self.unshrunk, "prior_sd": self.prior_sd}
        if self.folds:
            entry.update(cv_folds=self.folds, cv_log_loss=self.cv_log_loss)
        return entry


@dataclass(frozen=True)
class _Clips:
    """Clips' segment answers stacked into one array, so a temperature scores them all in
    a few vector operations (the cross-validated check fits ``T`` once per fold)."""

    rows: np.ndarray  # (segments, classes) uncalibrated probabilities, float64
    log_rows: np.ndarray  # their logarithms, clipped as apply_temperature clips them
    starts: np.ndarray  # (clips,) first row of each clip
    sizes: np.ndarray  # (clips,) rows of each clip
    labels: np.ndarray  # (clips,) true class indices

    @classmethod
    def of(cls, labels: np.ndarray, clips: Sequence[np.ndarray]) -> _Clips:
        sizes = np.array([len(c) for c in clips], int)
        rows = np.concatenate([np.asarray(c, np.float64) for c in clips])
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
        return cls(rows, np.log(np.clip(rows, EPS, 1.0)), starts, sizes,
                   np.asarray(labels, int))

    def subset(self, chosen: np.ndarray) -> _Clips:
        """The clips at the boolean mask ``chosen``."""
        index = np.flatnonzero(chosen)
        parts = [slice(self.starts[i], self.starts[i] + self.sizes[i]) for i in index]
        take = np.concatenate([np.arange(p.start, p.stop) for p in parts])
        sizes = self.sizes[index]
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
        return _Clips(self.rows[take], self.log_rows[take], starts, sizes, self.labels[index])

    def losses(self, temperature: float) -> np.ndarray:
        """Each clip's log loss with ``temperature``.

        The clip answer is the mean of the scaled segment answers, as the Predictor and
        the metrics compute it, so ``T`` is fitted on exactly what is scored; ``T = 1``
        uses the answers untouched, as
        :func:`avsc_core.inference.calibration.apply_temperature` does.
        """
        if temperature == 1.0:
            probs = self.rows
        else:
            logits = self.log_rows / temperature
            probs = np.exp(logits - logits.max(axis=1, keepdims=True))
            probs /= probs.sum(axis=1, keepdims=True)
        means = np.add.reduceat(probs, self.starts, axis=0) / self.sizes[:, None]
        picked = np.clip(means[np.arange(len(self.labels)), self.labels], EPS, 1.0)
        return -np.log(picked)


def _minimise(clips: _Clips, prior_sd: float | None) -> float:
    """The ``T`` minimising the clips' mean log loss plus the prior's penalty (divided by
    the number of clips, as the mean is), by bounded Brent over ``log T``."""
    from scipy.optimize import minimize_scalar

    weight = 0.0 if prior_sd is None else 1.0 / (2.0 * prior_sd**2 * len(clips.labels))
    found = minimize_scalar(
        lambda log_t: float(clips.losses(math.exp(log_t)).mean()) + weight * log_t**2,
        bounds=(math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return math.exp(float(found.x))


def _estimate(clips: _Clips, prior_sd: float | None) -> float:
    # As fit_temperature decides before its check: one class alone fits no temperature.
    if len(np.unique(clips.labels)) < 2:
        return 1.0
    return _minimise(clips, prior_sd)


def fold_of(labels: np.ndarray, folds: int) -> np.ndarray:
    """Each clip's fold, ``0 .. folds - 1``: stratified (the clips of each class dealt out
    in turn) and deterministic, so a bundle's decision can be reproduced."""
    labels = np.asarray(labels, int)
    order = np.argsort(labels, kind="stable")
    assignment = np.empty(len(labels), int)
    assignment[order] = np.arange(len(labels)) % folds
    return assignment


def cross_validated_log_loss(
    labels: Sequence[int], clips: Sequence[np.ndarray], folds: int,
    prior_sd: float | None = DEFAULT_SETTINGS.prior_sd,
) -> float:
    """Mean log loss of each clip scored with the temperature fitted on the other folds.

    Parameters
    ----------
    labels, clips
        As :func:`fit_temperature` takes them.
    folds : int
        At most the number of clips (equal to it: leave-one-out).
    prior_sd : float or None
        The prior of each fold's fit (:class:`TemperatureSettings`).
    """
    data = _Clips.of(np.asarray(labels, int), clips)
    return _cross_validate(data, folds, prior_sd)


def _cross_validate(data: _Clips, folds: int, prior_sd: float | None) -> float:
    assignment = fold_of(data.labels, folds)
    losses = np.empty(len(data.labels))
    for fold in range(folds):
        held = assignment == fold
        temperature = _estimate(data.subset(~held), prior_sd)
        losses[held] = data.subset(held).losses(temperature)
    return float(losses.mean())


def _check_name(folds: int, clips: int) -> str:
    return "leave-one-out" if folds == clips else f"{folds}-fold cross-validated"


def fit_temperature(
    labels: Sequence[int], clips: Sequence[np.ndarray],
    settings: TemperatureSettings = DEFAULT_SETTINGS,
) -> TemperatureFit:
    """The temperature for ``clips``: shrunk towards 1, and kept only if it generalises.

    The search is over ``log T`` in ``[log 0.1, log 10]`` (bounded Brent) for the MAP
    estimate under ``settings.prior_sd``; then the cross-validated check (module
    docstring). ``T = 1`` is kept when the estimate does not lower the clips' own log
    loss or fails the check, so neither the fitted clips' log loss nor, as far as the
    folds can tell, unseen clips' rises.

    Parameters
    ----------
    labels : sequence of int
        Each clip's true class index.
    clips : sequence of ndarray
        Each clip's segment probabilities ``(segments, classes)``, uncalibrated.
    settings : TemperatureSettings
        The prior and the folds.

    Returns
    -------
    TemperatureFit
        ``T = 1`` with ``skipped`` set when fewer than two classes are among the clips:
        one class alone tells only that the answers should be surer, and drives ``T`` to
        its bound. Otherwise ``decision`` says which ``T`` was kept and why.
    """
    labels = np.asarray(labels, int)
    n, present = len(labels), len(set(labels.tolist()))
    if present < 2:
        return TemperatureFit(1.0, n, skipped=(
            f"{n} validation clips of {present} classes; at least 2 classes needed"))
    data = _Clips.of(labels, clips)
    before = float(data.losses(1.0).mean())
    unshrunk = _minimise(data, None)
    proposed = unshrunk if settings.prior_sd is None else _minimise(data, settings.prior_sd)
    after = float(data.losses(proposed).mean())
    found = {"proposed": proposed, "unshrunk": unshrunk, "prior_sd": settings.prior_sd}
    if not after < before:
        return TemperatureFit(1.0, n, before, before, **found, decision=(
            f"kept T=1: no temperature lowers the log loss of the {n} validation clips"))
    folds, check = None, None
    if settings.folds:
        folds = min(settings.folds, n)
        check = _cross_validate(data, folds, settings.prior_sd)
        if not check < before:
            return TemperatureFit(1.0, n, before, before, **found, folds=folds,
                                  cv_log_loss=check, decision=(
                f"kept T=1: {n} validation clips, {_check_name(folds, n)} log loss "
                f"{check:.3f} not below {before:.3f} with T=1 (proposed T={proposed:.3g})"))
    shrunk = "" if settings.prior_sd is None else f" (unshrunk {unshrunk:.3g})"
    why = ("" if check is None else f", {_check_name(folds, n)} log loss {check:.3f} below "
           f"{before:.3f} with T=1")
    return TemperatureFit(proposed, n, before, after, **found, folds=folds, cv_log_loss=check,
                          decision=f"T={proposed:.3g}{shrunk}: {n} validation clips{why}")
