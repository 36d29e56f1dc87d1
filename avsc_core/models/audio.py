"""The audio backbone: a residual-inception CNN over one spectrogram (Aud-MEL/GAM/CQT).

Pham et al. (2023) describe it only as "inception-style parallel branches of different
kernel sizes, concatenated, with residual shortcuts, batch norm, pooling, dropout", followed
by ``FC(1024) -> FC(10) -> softmax``, about 12 M trainable parameters. This is our design.

Structure
---------
1. ``input_bn``: per-channel batch normalisation of the log spectrogram, so the network does
   not depend on the absolute level of the features (the six channels, static and deltas,
   have very different ranges).
2. Stem: ``3x3`` convolution + BN + ReLU, then ``2x2`` max pooling.
3. Stages: each is ``blocks`` residual inception blocks of the stage's width, followed by
   ``2x2`` max pooling and spatial dropout (no pooling after the last stage).
   One block with ``w`` output channels, ``q = w/4`` and ``r = w/8``::

       x ─┬─ 1x1(q) ────────────────────────────┐
          ├─ 1x1(r) ─ 3x3(q) ───────────────────┤
          ├─ 1x1(r) ─ 3x3(q) ─ 3x3(q) ──────────┤ concat(w) ─ 1x1(w)+BN ─(+)─ ReLU
          ├─ maxpool 3x3/1 ─ 1x1(q) ────────────┘                         │
          └─ identity, or 1x1(w)+BN when the channel count changes ───────┘

   Every convolution except the last ``1x1`` of a block is conv + BN + ReLU, without bias;
   the two stacked ``3x3`` stand in for a ``5x5`` kernel.
4. Global average pooling, then the dense block of :mod:`avsc_core.models.heads`:
   ``emb1`` = FC(embed_dim) (embedding type 1), ``emb2`` = FC(n_classes) (embedding type 2,
   logits), ``probs`` = softmax.

Every kernel carries the same L2 penalty (``l2``); the training loss is KL divergence on
mixup's soft labels (:mod:`avsc_core.models.losses`).

Layer table of the ``paper`` preset
-----------------------------------
Input ``(128, 305, 6)``, 10 classes; shapes after each stage's pooling.

=====================  =================  ===================
stage                  output shape       trainable params
=====================  =================  ===================
input_bn               128 x 305 x 6      12
stem (3x3, 64)         64 x 152 x 64      3,584
stage 1 (2 x 128)      32 x 76 x 128      97,792
stage 2 (2 x 256)      16 x 38 x 256      388,096
stage 3 (2 x 512)      8 x 19 x 512       1,546,240
stage 4 (3 x 1024)     8 x 19 x 1024      9,192,448
global avg pool        1024               0
emb1 FC(1024)          1024               1,049,600
emb2 FC(10)            10                 10,250
probs softmax          10                 0
total                                     12,288,022
=====================  =================  ===================

The ``tiny`` preset has the same structure with a 16-filter stem, widths (32, 64), one block
each and a 64-dimensional ``emb1``: 21,750 parameters, for tests and CPU demos.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras

from avsc_core.models.heads import dense_head, l2_regularizer

PAPER_INPUT_SHAPE = (128, 305, 6)


@dataclass(frozen=True)
class AudioNetConfig:
    """Size and regularisation of the audio backbone.

    Parameters
    ----------
    stem_filters : int
        Filters of the ``3x3`` stem convolution.
    widths : tuple of int
        Output channels of the blocks of each stage; multiples of 8 (four branches of
        ``w/4`` with ``w/8`` bottlenecks).
    blocks : tuple of int
        Residual inception blocks per stage, same length as ``widths``.
    conv_dropout : float
        Spatial dropout rate after each pooled stage.
    head_dropout : float
        Dropout between ``emb1`` and ``emb2``.
    l2 : float
        L2 penalty on every kernel.
    embed_dim : int
        Size of ``emb1`` (embedding type 1); 1024 in the paper.
    input_pool : int
        Average-pool the input by this factor in both axes first (1: off). The tiny preset
        uses 2 to cut its cost on a CPU by four.
    bn_momentum : float
        Momentum of the batch-norm moving statistics. Keras's 0.99 needs hundreds of steps
        before inference-mode outputs are meaningful; the tiny preset trains for far fewer.
    """

    stem_filters: int = 64
    widths: tuple[int, ...] = (128, 256, 512, 1024)
    blocks: tuple[int, ...] = (2, 2, 2, 3)
    conv_dropout: float = 0.1
    head_dropout: float = 0.3
    l2: float = 1e-4
    embed_dim: int = 1024
    bn_momentum: float = 0.99
    input_pool: int = 1

    def __post_init__(self) -> None:
        if len(self.widths) != len(self.blocks) or not self.widths:
            raise ValueError("widths and blocks must be non-empty and of the same length")
        if any(w <= 0 or w % 8 for w in self.widths):
            raise ValueError(f"every width must be a positive multiple of 8, got {self.widths}")
        if any(b < 1 for b in self.blocks):
            raise ValueError(f"every stage needs at least one block, got {self.blocks}")
        if not (0 <= self.conv_dropout < 1 and 0 <= self.head_dropout < 1):
            raise ValueError("dropout rates must be in [0, 1)")
        if not 0 < self.bn_momentum < 1:
            raise ValueError("bn_momentum must be in (0, 1)")

    @classmethod
    def paper(cls) -> AudioNetConfig:
        """About 12.3 M trainable parameters on ``(128, 305, 6)`` inputs."""
        return cls()

    @classmethod
    def tiny(cls) -> AudioNetConfig:
        """The same structure at a few tens of thousands of parameters."""
        return cls(stem_filters=16, widths=(32, 64), blocks=(1, 1), embed_dim=64, bn_momentum=0.9)


def _conv_bn(
    x: keras.KerasTensor,
    filters: int,
    kernel: int,
    name: str,
    config: AudioNetConfig,
    relu: bool = True,
) -> keras.KerasTensor:
    x = keras.layers.Conv2D(
        filters,
        kernel,
        padding="same",
        use_bias=False,  # BN's beta does the job
        kernel_regularizer=l2_regularizer(config.l2),
        name=f"{name}_conv",
    )(x)
    x = keras.layers.BatchNormalization(momentum=config.bn_momentum, name=f"{name}_bn")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x) if relu else x


def _inception_block(
    x: keras.KerasTensor, width: int, name: str, config: AudioNetConfig
) -> keras.KerasTensor:
    q, r = width // 4, width // 8
    b1 = _conv_bn(x, q, 1, f"{name}_b1", config)
    b2 = _conv_bn(_conv_bn(x, r, 1, f"{name}_b2a", config), q, 3, f"{name}_b2b", config)
    b3 = _conv_bn(x, r, 1, f"{name}_b3a", config)
    b3 = _conv_bn(_conv_bn(b3, q, 3, f"{name}_b3b", config), q, 3, f"{name}_b3c", config)
    b4 = keras.layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_b4_pool")(x)
    b4 = _conv_bn(b4, q, 1, f"{name}_b4", config)
    y = keras.layers.Concatenate(name=f"{name}_concat")([b1, b2, b3, b4])
    y = _conv_bn(y, width, 1, f"{name}_mix", config, relu=False)
    shortcut = (
        x if x.shape[-1] == width else _conv_bn(x, width, 1, f"{name}_proj", config, relu=False)
    )
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


def build_audio_net(
    config: AudioNetConfig,
    input_shape: tuple[int, int, int] = PAPER_INPUT_SHAPE,
    n_classes: int = 10,
    name: str = "audio_net",
) -> keras.Model:
    """Build (uncompiled) one audio backbone.

    Parameters
    ----------
    config : AudioNetConfig
        Sizes; :meth:`AudioNetConfig.paper` or :meth:`AudioNetConfig.tiny`.
    input_shape : tuple of int
        ``(bins, frames, channels)`` of one segment's features. The frame count may be
        ``None`` (variable-length input; the network pools globally).
    n_classes : int
        Size of ``emb2`` and ``probs``.
    name : str
        Model name, e.g. ``"aud_mel"``.

    Returns
    -------
    keras.Model
        Maps float32 ``(batch, *input_shape)`` to softmax probabilities ``(batch, n_classes)``;
        layers ``emb1`` and ``emb2`` give the two embedding types.
    """
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    inputs = keras.Input(shape=input_shape, name="spectrogram")
    x = inputs
    if config.input_pool > 1:
        x = keras.layers.AveragePooling2D(config.input_pool, name="input_pool")(x)
    x = keras.layers.BatchNormalization(momentum=config.bn_momentum, name="input_bn")(x)
    x = _conv_bn(x, config.stem_filters, 3, "stem", config)
    x = keras.layers.MaxPooling2D(2, name="stem_pool")(x)
    last = len(config.widths) - 1
    for s, (width, blocks) in enumerate(zip(config.widths, config.blocks, strict=True)):
        for b in range(blocks):
            x = _inception_block(x, width, f"s{s + 1}b{b + 1}", config)
        if s < last:
            x = keras.layers.MaxPooling2D(2, name=f"s{s + 1}_pool")(x)
            x = keras.layers.SpatialDropout2D(config.conv_dropout, name=f"s{s + 1}_dropout")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = dense_head(
        x,
        embed_dim=config.embed_dim,
        n_classes=n_classes,
        dropout=config.head_dropout,
        l2=config.l2,
    )
    return keras.Model(inputs, outputs, name=name)


def trainable_params(model: keras.Model) -> int:
    """Number of trainable scalars in ``model``."""
    return sum(math.prod(v.shape) for v in model.trainable_weights)
