"""After the heads are trained: temperatures and the unfamiliarity threshold, on the val split.

Both are fitted on the answers the training metrics score (every head on the cached
segment embeddings, :func:`avsc_core.train.run.segment_probabilities`), so what
``avsc evaluate`` later measures on the validation split is what was fitted:

- one temperature per head, minimising its clip-level validation log loss under a prior
  that shrinks it towards 1, and kept only when a cross-validated check on the
  validation clips shows it lowers their log loss; its ``fit`` entry says which and why
  (:func:`avsc_core.evaluation.calibration.fit_temperature`);
- per backbone, the class means and spread of the training segments' ``emb1`` embeddings
  (``familiarity/<backbone>.npy``), and the unfamiliarity threshold where 95 % of the
  validation clips' scores fall (:mod:`avsc_core.inference.unfamiliar`). The quantile is
  that of a log-normal fitted to the scores (they are positive distances): with the few
  validation clips of a small dataset the empirical 95 % quantile is about their largest
  score and swings with every clip (on the sample data it flagged a third of the model's
  own test clips), while the fit uses all of them. ``covered`` records the share of
  validation clips the threshold does cover.

:func:`calibrate` returns the two manifest entries, ``calibration`` and ``unfamiliar``;
each says what it was fitted on, or why it could not be.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from avsc_core.atomic import save_npy
from avsc_core.bundle.manifest import file_entry
from avsc_core.evaluation.calibration import fit_temperature
from avsc_core.inference.calibration import apply_temperature
from avsc_core.inference.unfamiliar import (
    EMBEDDING,
    FOLDER,
    QUANTILE,
    SCORE,
    class_distance,
    file_score,
    pack_statistics,
)

if TYPE_CHECKING:
    from avsc_core.features.prepare import PreparedClip
    from avsc_core.train.phase2 import Embeddings

SPLIT = "val"
# The Embeddings key of EMBEDDING (the FC(1024) output, "type 1").
EMBEDDING_KIND = 1


def scale_segments(
    segment_probs: Mapping[str, np.ndarray], temperatures: Mapping[str, float]
) -> dict[str, np.ndarray]:
    """Each head's segment rows scaled by its temperature; NaN rows (the head could not
    run on that clip) stay NaN."""
    scaled = {}
    for head, probs in segment_probs.items():
        out = np.array(probs, np.float64)
        rows = ~np.isnan(out).any(axis=1)
        out[rows] = apply_temperature(out[rows], temperatures.get(head, 1.0))
        scaled[head] = out
    return scaled


def calibrate(
    out: Path,
    segment_probs: Mapping[str, np.ndarray],
    embeddings: Embeddings,
    clips: Sequence[PreparedClip],
    classes: Sequence[str],
) -> dict[str, dict[str, Any]]:
    """Fit the temperatures and the unfamiliarity score; write its files into ``out``.

    Parameters
    ----------
    out : Path
        The bundle folder.
    segment_probs : mapping
        Head -> ``(rows, classes)`` uncalibrated answers for every segment row of
        ``embeddings``, NaN where the head cannot run.
    embeddings : Embeddings
        The cached segment embeddings of ``clips``.
    clips : sequence of PreparedClip
    classes : sequence of str

    Returns
    -------
    dict
        ``{"calibration": {...}, "unfamiliar": {...}}``, ready for the manifest.
    """
    lookup = {c: i for i, c in enumerate(classes)}
    val = [i for i, c in enumerate(clips) if c.clip.split == SPLIT]
    clip_rows = embeddings.clip_rows(val)
    fits = {}
    for head, probs in segment_probs.items():
        labels, answers = [], []
        for i in val:
            rows = probs[clip_rows[i]]
            if len(rows) and not np.isnan(rows).any():
                labels.append(lookup[clips[i].clip.label])
                answers.append(rows)
        fits[head] = fit_temperature(labels, answers)
    calibration = {
        "method": "temperature",
        "split": SPLIT,
        "temperatures": {head: fit.temperature for head, fit in fits.items()},
        "fit": {head: fit.to_dict() for head, fit in fits.items()},
    }
    return {"calibration": calibration,
            "unfamiliar": _fit_unfamiliar(out, embeddings, clips, lookup, clip_rows)}


def _fit_unfamiliar(
    out: Path,
    embeddings: Embeddings,
    clips: Sequence[PreparedClip],
    lookup: Mapping[str, int],
    val_rows: Mapping[int, np.ndarray],
) -> dict[str, Any]:
    entry: dict[str, Any] = {"score": SCORE, "embedding": EMBEDDING, "quantile": QUANTILE,
                             "split": SPLIT}
    if not val_rows:
        return {**entry, "threshold": None, "skipped": "no validation clips"}
    labels = np.array([lookup[clips[i].clip.label] for i in embeddings.clip_index])
    train = np.array([clips[i].clip.split == "train" for i in embeddings.clip_index])
    statistics: dict[str, np.ndarray] = {}
    for name in embeddings.backbones():
        values = embeddings.values[name][EMBEDDING_KIND]
        usable = train & ~np.isnan(values).any(axis=1)
        if usable.any():
            statistics[name] = pack_statistics(values[usable], labels[usable], len(lookup))
    scores = []
    for rows in val_rows.values():
        # As the Predictor scores a file: per segment the mean over the backbones that
        # ran on it, then the mean over its segments.
        ran = [embeddings.values[n][EMBEDDING_KIND][rows] for n in statistics]
        distances = [class_distance(v, statistics[n])
                     for n, v in zip(statistics, ran) if not np.isnan(v).any()]
        if distances:
            scores.append(file_score(np.mean(distances, axis=0)))
    if len(scores) < 2:
        return {**entry, "threshold": None,
                "skipped": f"{len(scores)} validation clips with embeddings; at least 2 needed"}
    backbones = {}
    for name, array in statistics.items():
        path = out / FOLDER / f"{name}.npy"
        save_npy(path, array)
        backbones[name] = file_entry(out, path)
    threshold = lognormal_quantile(scores, QUANTILE)
    return {**entry, "threshold": threshold, "clips": len(scores),
            "covered": float(np.mean(np.array(scores) <= threshold)), "backbones": backbones}


def lognormal_quantile(values: Sequence[float], quantile: float) -> float:
    """The ``quantile`` of a log-normal distribution fitted to positive ``values`` (at
    least two; the spread is the sample standard deviation of their logarithms)."""
    logs = np.log(np.maximum(np.asarray(values, np.float64), np.finfo(float).tiny))
    z = NormalDist().inv_cdf(quantile)
    return float(np.exp(logs.mean() + z * logs.std(ddof=1)))
