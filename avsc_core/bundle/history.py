"""Reading the per-epoch metrics a bundle and a training journal record (no TensorFlow here).

A backbone or fusion head logs ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy``; a
joint model has three outputs and logs its fused output's accuracy as
``fused_accuracy`` / ``val_fused_accuracy`` beside the total ``loss``. Model selection,
the app's curves and the report read them through :func:`epoch_metric`.
"""

from __future__ import annotations

from collections.abc import Mapping


def epoch_metric(logs: Mapping[str, float], metric: str, validation: bool) -> float | None:
    """``metric`` (``"loss"`` or ``"accuracy"``) of one epoch, or ``None`` when not logged."""
    prefix = "val_" if validation else ""
    for key in (f"{prefix}{metric}", f"{prefix}fused_{metric}"):
        if key in logs:
            return float(logs[key])
    return None
