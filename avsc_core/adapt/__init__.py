"""Corrections adapt the model: new heads learnt from the files a person reviewed.

``avsc label`` flags the files a person should check; the person writes the true class
in the CSV's ``reviewed_label`` column; :func:`adapt_model` trains new heads on those
files, with the backbones frozen, and writes a new bundle that records what it was
adapted on and how it scores on held-out reviewed files before and after.

Importing this package is cheap; TensorFlow loads only once :func:`adapt_model`'s
inputs have passed their checks.
"""

from avsc_core.adapt.run import HOLDOUT, AdaptSummary, adapt_model

__all__ = ["HOLDOUT", "AdaptSummary", "adapt_model"]
