"""Temperature scaling: the bundle's per-branch temperatures applied to its answers.

Training fits one temperature per head (``audio``, ``visual``, ``fused``) on the
validation split (:mod:`avsc_core.train.calibrate`) and records them in the manifest:

.. code-block:: json

    "calibration": {"method": "temperature", "split": "val",
                    "temperatures": {"audio": 0.81, "visual": 1.0, "fused": 0.87},
                    "fit": {"audio": {"clips": 8, "log_loss_before": 0.394,
                                      "log_loss_after": 0.386,
                                      "decision": "T=0.81 (unshrunk 0.72): ...", ...},
                            "visual": {"clips": 8, ...,
                                       "decision": "kept T=1: 8 validation clips, ..."},
                            ...}}

``fit`` says per head what was decided and why (:func:`calibration_notes`); a
temperature fitted on a few clips is shrunk towards 1 and refused when a cross-validated
check does not show it helps (:func:`avsc_core.evaluation.calibration.fit_temperature`).
Bundles written before that check have no ``decision``; they still load and read.

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


def calibration_notes(manifest: Mapping[str, Any]) -> dict[str, str]:
    """Per head, a line saying which temperature it uses and why.

    Reads every bundle: those whose ``fit`` entries record the ``decision``, older ones
    with only the fitted clips' log loss or the reason nothing was fitted, and those
    without calibration (no lines).
    """
    calibration = manifest.get("calibration") or {}
    fits = calibration.get("fit") or {}
    notes = {}
    for head, t in temperatures(manifest).items():
        fit = fits.get(head) or {}
        if fit.get("decision"):
            notes[head] = str(fit["decision"])
        elif fit.get("skipped"):
            notes[head] = f"kept T=1: {fit['skipped']}"
        elif fit.get("log_loss_before") is not None:
            notes[head] = (f"T={t:.3g}: {fit.get('clips')} validation clips, log loss "
                           f"{fit['log_loss_before']:.3f} -> {fit['log_loss_after']:.3f}")
        else:
            notes[head] = f"T={t:.3g}"
    return notes
