"""Phase II of Pham et al. (2023): fusing the frozen backbones' embeddings.

With the embeddings ``ae_g, ae_m, ae_c`` (audio) and ``ve_i, ve_c`` (visual), all of size
``d``, trainable vectors ``w1..w5, wa, wv, b`` of size ``d`` and ``*`` the element-wise
product, the paper's fusion layers are::

    f1 = ae_g*w1 + ae_m*w2 + ae_c*w3 + ve_i*w4 + ve_c*w5 + b                 (mode "sum")
    f2 = (ae_g*w1 + ae_m*w2 + ae_c*w3)*wa + (ve_i*w4 + ve_c*w5)*wv + b       (mode "branch")
    f3 = concat[ae_g*w1 + ae_m*w2 + ae_c*w3, ve_i*w4 + ve_c*w5]             (mode "concat")

on the type-1 (FC(1024)) embeddings, and f4, f5, f6 the same on the type-2 (FC(10))
embeddings. A head is ``fusion -> FC(n_classes) -> softmax``.

:class:`EmbeddingFusion` takes any number of embeddings, each tagged ``"audio"`` or
``"visual"``, so the same layer serves the audio-only and visual-only heads: with one
modality, "branch" keeps only that modality's ``wa`` or ``wv`` and "concat" reduces to the
modality's weighted sum. The ``w`` vectors start at ones and ``b`` at zeros, so an untrained
layer is the plain sum (or concatenation) of the embeddings; they carry no L2 penalty,
which would pull them towards zero instead of towards that neutral start. The L2 penalty
goes on the final FC kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from avsc_core.backbones import MODALITIES, modality_of
from avsc_core.models.heads import PROBS_LAYER, l2_regularizer

FUSION_MODES = ("sum", "branch", "concat")


@dataclass(frozen=True)
class FusionSpec:
    """What one of f1..f6 means: a layer mode and the embedding type it fuses."""

    mode: str
    embedding_type: int


FUSIONS: dict[str, FusionSpec] = {
    "f1": FusionSpec("sum", 1),
    "f2": FusionSpec("branch", 1),
    "f3": FusionSpec("concat", 1),
    "f4": FusionSpec("sum", 2),
    "f5": FusionSpec("branch", 2),
    "f6": FusionSpec("concat", 2),
}


def fusion_spec(fusion: str) -> FusionSpec:
    """The :class:`FusionSpec` of ``"f1"`` .. ``"f6"``."""
    try:
        return FUSIONS[fusion]
    except KeyError:
        raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}") from None


@keras.saving.register_keras_serializable(package="avsc")
class EmbeddingFusion(keras.layers.Layer):
    """Weighted fusion of same-size embeddings (the paper's f1/f2/f3 layers).

    Call it on a list of tensors ``(batch, d)``, in the order of ``modalities``.

    Parameters
    ----------
    mode : {"sum", "branch", "concat"}
        The formula, see the module docstring.
    modalities : sequence of {"audio", "visual"}
        The modality of each input, in call order.

    Weights, in ``get_weights()`` order: ``w1..wN`` (one per input, ones), then for mode
    "branch" ``wa`` (when an audio input exists) and ``wv`` (when a visual one exists),
    both ones, then for modes "sum" and "branch" ``b`` (zeros).
    """

    def __init__(self, mode: str, modalities: Sequence[str], **kwargs):
        super().__init__(**kwargs)
        if mode not in FUSION_MODES:
            raise ValueError(f"mode must be one of {FUSION_MODES}, got {mode!r}")
        modalities = list(modalities)
        if not modalities or any(m not in MODALITIES for m in modalities):
            raise ValueError(f"modalities must be a non-empty list of {MODALITIES}: {modalities}")
        self.mode = mode
        self.modalities = modalities

    def _present(self) -> list[str]:
        return [m for m in MODALITIES if m in self.modalities]

    def build(self, input_shape: Sequence[tuple]) -> None:
        if len(input_shape) != len(self.modalities):
            raise ValueError(f"expected {len(self.modalities)} inputs, got {len(input_shape)}")
        dims = {shape[-1] for shape in input_shape}
        if len(dims) != 1 or None in dims:
            raise ValueError(f"all embeddings must have the same known size, got {dims}")
        d = dims.pop()
        self.ws = [
            self.add_weight(shape=(d,), initializer="ones", name=f"w{i + 1}")
            for i in range(len(self.modalities))
        ]
        self.branch_ws = {}
        if self.mode == "branch":
            for modality in self._present():
                self.branch_ws[modality] = self.add_weight(
                    shape=(d,), initializer="ones", name=f"w{modality[0]}"
                )
        self.b = (
            self.add_weight(shape=(d,), initializer="zeros", name="b")
            if self.mode != "concat"
            else None
        )

    def call(self, inputs: Sequence) -> keras.KerasTensor:
        weighted = [x * w for x, w in zip(inputs, self.ws, strict=True)]
        if self.mode == "sum":
            return _add(weighted) + self.b
        sums = {
            m: _add([y for y, mod in zip(weighted, self.modalities, strict=True) if mod == m])
            for m in self._present()
        }
        if self.mode == "branch":
            return _add([sums[m] * self.branch_ws[m] for m in sums]) + self.b
        return ops.concatenate(list(sums.values()), axis=-1)

    def compute_output_shape(self, input_shape: Sequence[tuple]) -> tuple:
        d = input_shape[0][-1]
        width = d * len(self._present()) if self.mode == "concat" else d
        return (*input_shape[0][:-1], width)

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode, "modalities": self.modalities}


def _logit_average_initializer(width: int, n_classes: int, n_inputs: int):
    """Start type-2 heads as the average of the backbones' logits.

    Type-2 embeddings are the backbones' pre-softmax logits, so an identity kernel divided
    by the number of inputs makes the untrained head the plain ensemble of the backbones;
    training then only has to learn how to weigh them. Wider (type-1) inputs keep Keras's
    default initialisation.
    """
    if width % n_classes:
        return "glorot_uniform"
    blocks = width // n_classes
    kernel = np.tile(np.eye(n_classes, dtype="float32"), (blocks, 1)) / n_inputs
    return keras.initializers.Constant(kernel.tolist())


def _add(tensors: list) -> keras.KerasTensor:
    total = tensors[0]
    for t in tensors[1:]:
        total = total + t
    return total


def build_fusion_head(
    fusion: str,
    embedding_dims: dict[str, int],
    inputs: Sequence[str],
    n_classes: int = 10,
    l2: float = 1e-4,
) -> keras.Model:
    """A Phase II head: embeddings in, class probabilities out.

    Parameters
    ----------
    fusion : str
        ``"f1"`` .. ``"f6"``; the embedding type (1 or 2) only decides which embeddings the
        caller feeds (see :data:`FUSIONS`), the head is built from their sizes.
    embedding_dims : dict
        Size of each available embedding, keyed by backbone name (``"aud-mel"``, ...).
    inputs : sequence of str
        The backbones fused by this head: all five, or only the audio or visual ones.
    n_classes : int
        Output classes.
    l2 : float
        L2 penalty on the final FC kernel.

    Returns
    -------
    keras.Model
        Takes a dict ``{backbone name: (batch, d) embeddings}`` and returns softmax
        probabilities ``(batch, n_classes)``. The fusion layer is named ``fusion``.
    """
    spec = fusion_spec(fusion)
    inputs = list(inputs)
    if not inputs:
        raise ValueError("a fusion head needs at least one embedding")
    missing = [n for n in inputs if n not in embedding_dims]
    if missing:
        raise ValueError(f"no embedding size given for {missing}")
    # Keras matches dict inputs to Input layers by name, so the names are the dict keys.
    tensors = {n: keras.Input(shape=(embedding_dims[n],), name=n) for n in inputs}
    fused = EmbeddingFusion(spec.mode, [modality_of(n) for n in inputs], name="fusion")(
        list(tensors.values())
    )
    logits = keras.layers.Dense(
        n_classes,
        kernel_initializer=_logit_average_initializer(fused.shape[-1], n_classes, len(inputs)),
        kernel_regularizer=l2_regularizer(l2),
        name="logits",
    )(fused)
    probs = keras.layers.Activation("softmax", dtype="float32", name=PROBS_LAYER)(logits)
    return keras.Model(tensors, probs, name=f"fusion_{fusion}")
