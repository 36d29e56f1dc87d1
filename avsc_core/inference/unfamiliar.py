"""How unlike the training data an input is: its embeddings' distance to the class means.

The score of a segment is the distance of each backbone's ``emb1`` embedding to the
nearest class mean of the training segments, in units of the training embeddings' spread
per dimension (the root mean square of the z-scores), averaged over the backbones that
ran on it. A file's score is the mean over its segments. Softmax confidence cannot tell a
scene the model never learned from one it knows: the heads still spread all their
probability over the known classes, often sharply, whereas an unknown scene lands far
from every class in embedding space (``benchmarks/trust.py`` measures both).

Training stores, per backbone, a float32 array ``(classes + 1, d)`` as
``familiarity/<backbone>.npy``: one row per class mean, then the per-dimension spread.
The manifest records the threshold, set where 95 % of the validation clips fall
(:func:`avsc_core.train.calibrate.lognormal_quantile`), and the share it covers:

.. code-block:: json

    "unfamiliar": {"score": "class-mean distance", "embedding": "emb1",
                   "quantile": 0.95, "threshold": 0.53, "split": "val", "clips": 8,
                   "covered": 1.0,
                   "backbones": {"aud-mel": {"file": "familiarity/aud-mel.npy",
                                              "sha256": "..."}, ...}}

A bundle without it (written before, or with no validation clips) gives no score.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from avsc_core.blas import one_blas_thread
from avsc_core.bundle.manifest import BundleError, verify_file

if TYPE_CHECKING:
    from avsc_core.bundle import Bundle

SCORE = "class-mean distance"
EMBEDDING = "emb1"
FOLDER = "familiarity"
QUANTILE = 0.95
# A dimension that barely varies over the training data (a unit that never fires) would
# make any small change in it look enormous: its spread is floored at this share of the
# mean spread.
SPREAD_FLOOR = 1e-2


def pack_statistics(embeddings: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """The stored array of one backbone: class means of ``embeddings``, then their spread.

    Parameters
    ----------
    embeddings : ndarray
        ``(segments, d)`` training embeddings.
    labels : ndarray
        ``(segments,)`` class index of each segment.
    n_classes : int

    Returns
    -------
    ndarray
        float32 ``(n_classes + 1, d)``; the row of a class without segments is NaN.
    """
    embeddings = np.asarray(embeddings, np.float64)
    means = np.full((n_classes, embeddings.shape[1]), np.nan)
    for c in range(n_classes):
        rows = embeddings[labels == c]
        if len(rows):
            means[c] = rows.mean(axis=0)
    spread = embeddings.std(axis=0)
    spread = np.maximum(spread, SPREAD_FLOOR * max(float(spread.mean()), np.finfo(float).tiny))
    return np.vstack([means, spread]).astype(np.float32)


def class_distance(embeddings: np.ndarray, statistics: np.ndarray) -> np.ndarray:
    """Each row's distance to the nearest class mean, in spreads (RMS z-score).

    Parameters
    ----------
    embeddings : ndarray
        ``(n, d)``.
    statistics : ndarray
        ``(classes + 1, d)`` from :func:`pack_statistics`.

    Returns
    -------
    ndarray
        ``(n,)`` float64.
    """
    means, spread = statistics[:-1].astype(np.float64), statistics[-1].astype(np.float64)
    known = means[~np.isnan(means).any(axis=1)] / spread
    z = np.asarray(embeddings, np.float64) / spread
    # |z - m|^2 expanded, so memory stays (n, classes) however wide the embeddings are;
    # on one BLAS thread, so that classify, label and the threshold round it alike.
    with one_blas_thread():
        cross = z @ known.T
    squared = (z**2).sum(axis=1)[:, None] - 2 * cross + (known**2).sum(axis=1)[None]
    return np.sqrt(np.maximum(squared, 0.0).min(axis=1) / z.shape[1])


@dataclass(frozen=True)
class Familiarity:
    """A bundle's unfamiliarity score: per-backbone statistics and the threshold.

    Attributes
    ----------
    statistics : dict
        Backbone name -> ``(classes + 1, d)`` array (:func:`pack_statistics`).
    threshold : float
        File scores above it are unfamiliar.
    """

    statistics: dict[str, np.ndarray]
    threshold: float

    def segment_scores(self, embeddings: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """Per-segment scores from ``{backbone: (segments, d) emb1}``; ``None`` when no
        backbone with statistics ran."""
        distances = [
            class_distance(value, self.statistics[name])
            for name, value in embeddings.items()
            if name in self.statistics
        ]
        return np.mean(distances, axis=0) if distances else None


def file_score(segment_scores: np.ndarray) -> float:
    """A file's score: the mean of its segments' scores."""
    return float(np.mean(segment_scores))


def load_familiarity(bundle: Bundle) -> Familiarity | None:
    """The unfamiliarity score of ``bundle``, or ``None`` when it has none.

    Raises
    ------
    BundleError
        A listed statistics file is missing, changed or not a 2-D array.
    """
    entry = bundle.manifest.get("unfamiliar")
    if not entry or entry.get("threshold") is None:
        return None
    statistics = {}
    for name, file_entry in entry.get("backbones", {}).items():
        path = verify_file(bundle.root, file_entry)
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise BundleError(bundle.root, f"{file_entry['file']} cannot be read ({exc})") from exc
        if array.ndim != 2 or len(array) < 2:
            raise BundleError(bundle.root, f"{file_entry['file']} is not a statistics array")
        statistics[name] = array
    return Familiarity(statistics, float(entry["threshold"])) if statistics else None
