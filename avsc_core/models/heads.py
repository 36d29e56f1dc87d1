"""The dense block every backbone ends with, whose layers give its two embeddings.

All five backbones of Pham et al. (2023) end in ``FC(embed_dim) -> FC(n_classes) -> softmax``.
The layers carry fixed names so Phase II can cut a trained backbone at either embedding
(:func:`avsc_core.inference.backbones.backbone_runner`):

========  ==========================================  =====================================
name      layer                                       role
========  ==========================================  =====================================
``emb1``  ``Dense(embed_dim, relu)``                  embedding type 1 (FC(1024) output)
``emb2``  ``Dense(n_classes)``, linear                embedding type 2 (pre-softmax logits)
``probs`` ``Activation("softmax")``, float32          class probabilities
========  ==========================================  =====================================
"""

from __future__ import annotations

import keras

EMBEDDING_LAYERS: dict[int, str] = {1: "emb1", 2: "emb2"}
PROBS_LAYER = "probs"


def l2_regularizer(l2: float) -> keras.regularizers.Regularizer | None:
    """An L2 kernel regularizer, or ``None`` for ``l2 == 0`` (keeps the saved config small)."""
    if l2 < 0:
        raise ValueError(f"l2 must not be negative, got {l2}")
    return keras.regularizers.L2(l2) if l2 > 0 else None


def dense_head(
    x: keras.KerasTensor,
    *,
    embed_dim: int,
    n_classes: int,
    dropout: float,
    l2: float,
) -> keras.KerasTensor:
    """Append ``emb1 -> dropout -> emb2 -> probs`` to a pooled feature vector ``x``."""
    reg = l2_regularizer(l2)
    x = keras.layers.Dense(embed_dim, activation="relu", kernel_regularizer=reg, name="emb1")(x)
    x = keras.layers.Dropout(dropout, name="emb1_dropout")(x)
    x = keras.layers.Dense(n_classes, kernel_regularizer=reg, name="emb2")(x)
    # float32 so the probabilities stay exact under a mixed-precision policy.
    return keras.layers.Activation("softmax", dtype="float32", name=PROBS_LAYER)(x)
