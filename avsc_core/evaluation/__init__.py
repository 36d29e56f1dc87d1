"""Scoring predictions: accuracy, log loss, per-class accuracy, confusion matrices."""

from avsc_core.evaluation.metrics import branch_metrics

__all__ = ["branch_metrics"]
