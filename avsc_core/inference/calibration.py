"""Temperature scaling: the bundle's per-branch temperatures applied to its answers.

Training fits one temperature per head (``audio``, ``visual``, ``fused``) on the
validation split (:mod:`avsc_core.train.calibrate`) and records them in the manifest:

.. code-block:: json

    "calibration": {"method": "temperature", "split": "val",
                    "temperatures": {"audio": 1.4, "visual": 0.8, "fused": 1.1},
                    "fit": {"audio": {"clips": 8, "log_loss_before": ..., ...}, ...}}

Each segment's probabilities ``p`` become ``softmax(log p / T)``: the ranking of the
classes never changes, only how sure the answer claims to be. A bundle written before
calibration existed has no temperatures and gives its answers unchanged (``T = 1``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

# Probabilities are clipped before the logarithm, as the log loss clips them, so a
# softmax output that underflowed to 0 still scales to a finite value.
EPS = 1e-15


def temperatures(manifest: Mapping[str, Any]) -> dict[str, float]:
    """The temperature of each head recorded in ``manifest`` (empty when none was fitted)."""
    recorded = (manifest.get("calibration") or {}).get("temperatures") or {}
    return {str(head): float(t) for head, t in recorded.items()}


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities ``(..., classes)`` scaled by ``temperature``: ``softmax(log p / T)``.

    Parameters
    ----------
    probs : ndarray
        Probabilities along the last axis.
    temperature : float
        ``T > 0``; above 1 softens the answers, below 1 sharpens them. ``T = 1`` returns
        ``probs`` itself, so uncalibrated bundles keep their exact answers.

    Returns
    -------
    ndarray
        float64 probabilities of the same shape, summing to 1 along the last axis.
    """
    if temperature == 1.0:
        return probs
    logits = np.log(np.clip(np.asarray(probs, np.float64), EPS, 1.0)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=-1, keepdims=True)
