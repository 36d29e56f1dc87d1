"""Corrections adapt the model: new heads learnt from the files a person reviewed.

``avsc label`` flags the files a person should check; the person writes the true class
in the CSV's ``reviewed_label`` column; :func:`adapt_model` trains new heads on those
files, with the backbones frozen, and writes a new bundle that records what it was
adapted on and how it scores on held-out reviewed files before and after.

Importing this package is cheap: :func:`adapt_model` and :class:`AdaptSummary` load
the feature extractors and the training code on first use (every ``avsc`` command builds
the ``adapt`` parser, which needs only :data:`HOLDOUT`), and TensorFlow loads only once
:func:`adapt_model`'s inputs have passed their checks.
"""

from typing import Any

HOLDOUT = 0.25
"""The share of the reviewed files held out to score the model before and after."""

__all__ = ["HOLDOUT", "AdaptSummary", "adapt_model"]


def __getattr__(name: str) -> Any:
    if name in ("AdaptSummary", "adapt_model"):
        from avsc_core.adapt import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
