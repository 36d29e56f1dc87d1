"""The training loss of both phases.

Mixup (on spectrograms, frames or embeddings) turns one-hot labels into mixtures of two
classes, so the model is trained to match a target distribution: the loss is the KL
divergence ``sum(y * log(y / p))``. With one-hot targets it equals categorical
cross-entropy. The L2 half of the paper's "KL + L2" objective sits on the layers' kernel
regularizers (``l2`` of each model config) and Keras adds it to this loss.
"""

from __future__ import annotations

import keras


def scene_loss() -> keras.losses.Loss:
    """KL divergence between soft targets and predicted probabilities, averaged over a batch."""
    return keras.losses.KLDivergence(name="kl_divergence")
