"""The visual backbones Vis-INC (InceptionV3) and Vis-CONV (ConvNeXtTiny), and a tiny stand-in.

Each model takes RGB frames ``(batch, 224, 224, 3)`` with values in ``[0, 255]`` (uint8 or
float) and does its own preprocessing, so callers never have to know which network they
feed:

- ``inception_v3``: a ``Rescaling`` layer maps ``[0, 255]`` to ``[-1, 1]``, what
  ``keras.applications.inception_v3.preprocess_input`` does.
- ``convnext_tiny``: Keras's ConvNeXt contains its own ImageNet mean/std ``Normalization``
  (``include_preprocessing=True``) and expects ``[0, 255]``.
- ``tiny_cnn``: ``[-1, 1]`` rescaling, ``4x4`` average pooling, three ``3x3`` conv + BN + ReLU
  stages (16, 32, 64 filters) with max pooling; about 30 k parameters, for tests and demos.

The backbone is one nested layer (named ``inception_v3``, ``convnext_tiny`` or ``tiny_cnn``;
:func:`visual_backbone` returns it, e.g. to freeze it), cut at global average pooling and
followed by the dense block of :mod:`avsc_core.models.heads` (``emb1``, ``emb2``, ``probs``).

Trainable parameters with 10 classes: Vis-INC 21,768,352 + 2,108,426 head; Vis-CONV
27,820,128 + 797,706 head (ConvNeXtTiny pools to 768 features, InceptionV3 to 2048).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import keras

from avsc_core.errors import AvscError, first_line
from avsc_core.models.heads import dense_head
from avsc_core.models.weights import IMAGENET_WEIGHTS, resolve_imagenet_weights

VISUAL_ARCHS = ("inception_v3", "convnext_tiny", "tiny_cnn")
FRAME_SHAPE = (224, 224, 3)
_TINY_FILTERS = (16, 32, 64)

Weights = str | Path | None


@dataclass(frozen=True)
class VisualNetConfig:
    """Architecture and head of a visual backbone.

    Parameters
    ----------
    arch : str
        One of :data:`VISUAL_ARCHS`.
    embed_dim : int
        Size of ``emb1`` (embedding type 1); 1024 in the paper.
    head_dropout : float
        Dropout between ``emb1`` and ``emb2``.
    l2 : float
        L2 penalty on the head's kernels (the pretrained backbone keeps its own settings).
    """

    arch: str = "inception_v3"
    embed_dim: int = 1024
    head_dropout: float = 0.3
    l2: float = 1e-4

    def __post_init__(self) -> None:
        if self.arch not in VISUAL_ARCHS:
            raise ValueError(f"arch must be one of {VISUAL_ARCHS}, got {self.arch!r}")
        if not 0 <= self.head_dropout < 1:
            raise ValueError("head_dropout must be in [0, 1)")

    @classmethod
    def paper(cls, arch: str) -> VisualNetConfig:
        return cls(arch=arch)

    @classmethod
    def tiny(cls) -> VisualNetConfig:
        # Same embed_dim as the tiny audio net: fusion needs equal embedding sizes.
        return cls(arch="tiny_cnn", embed_dim=64)


def _tiny_cnn(input_shape: tuple[int, int, int]) -> keras.Model:
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.AveragePooling2D(4, name="downsample")(inputs)
    for i, filters in enumerate(_TINY_FILTERS):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"c{i}_conv")(x)
        # Momentum 0.9: a tiny model trains for few steps, too few for Keras's 0.99.
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"c{i}_bn")(x)
        x = keras.layers.Activation("relu", name=f"c{i}_relu")(x)
        if i < len(_TINY_FILTERS) - 1:
            x = keras.layers.MaxPooling2D(2, name=f"c{i}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, x, name="tiny_cnn")


def _resolve_weights(arch: str, weights: Weights) -> Path | None:
    if weights is None:
        return None
    if weights == "imagenet":
        names = [name for name, spec in IMAGENET_WEIGHTS.items() if spec.arch == arch]
        if not names:
            raise AvscError(f"{arch} has no ImageNet weights; use --visual-weights none")
        return resolve_imagenet_weights(names[0])
    path = Path(weights)
    if not path.is_file():
        raise AvscError(f"{path}: no such weights file")
    return path


def build_application(
    arch: str,
    input_shape: tuple[int, int, int],
    weights: Weights = None,
    pooling: str | None = "avg",
) -> keras.Model:
    """The headless backbone, globally average-pooled, with its weights loaded.

    Parameters
    ----------
    arch : str
        One of :data:`VISUAL_ARCHS`.
    input_shape : tuple of int
        ``(height, width, 3)``.
    weights : {"imagenet", None} or path
        ``"imagenet"`` (from avsc's cache, downloaded if needed, see
        :mod:`avsc_core.models.weights`), ``None`` (random), or a ``.h5`` / ``.weights.h5``
        file of this headless backbone.
    pooling : {"avg", None}
        ``None`` keeps the last feature map (the joint strategy cuts the model earlier);
        ``tiny_cnn`` always ends pooled, its inner layers stay reachable by name.

    Raises
    ------
    AvscError
        When the weights are unavailable or do not fit the backbone; the message names the file.
    """
    if arch not in VISUAL_ARCHS:
        raise ValueError(f"arch must be one of {VISUAL_ARCHS}, got {arch!r}")
    path = _resolve_weights(arch, weights)
    # Keras warns about every object a mismatched file skips; on failure our error says it
    # once, so the warnings are only passed on when loading succeeds.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = _application(arch, input_shape, path, pooling)
        except (ValueError, OSError, KeyError, TypeError) as exc:
            if path is None:
                raise
            raise AvscError(f"{path}: not a weights file of a headless {arch} "
                            f"({first_line(exc)})") from exc
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return model


def _application(
    arch: str, input_shape: tuple[int, int, int], path: Path | None, pooling: str | None
) -> keras.Model:
    if arch == "inception_v3":
        return keras.applications.InceptionV3(
            include_top=False, weights=path, input_shape=input_shape, pooling=pooling
        )
    if arch == "convnext_tiny":
        return keras.applications.ConvNeXtTiny(
            include_top=False,
            include_preprocessing=True,
            weights=path,
            input_shape=input_shape,
            pooling=pooling,
        )
    model = _tiny_cnn(input_shape)
    if path is not None:
        model.load_weights(path)
    return model


def build_visual_net(
    config: VisualNetConfig,
    input_shape: tuple[int, int, int] = FRAME_SHAPE,
    n_classes: int = 10,
    weights: Weights = None,
    name: str = "visual_net",
) -> keras.Model:
    """Build (uncompiled) one visual backbone with its dense head.

    Parameters
    ----------
    config : VisualNetConfig
        :meth:`VisualNetConfig.paper` or :meth:`VisualNetConfig.tiny`.
    input_shape : tuple of int
        ``(height, width, 3)`` of the frames.
    n_classes : int
        Size of ``emb2`` and ``probs``.
    weights : {"imagenet", None} or path
        Backbone weights, see :func:`build_application`.
    name : str
        Model name, e.g. ``"vis_inc"``.

    Returns
    -------
    keras.Model
        Maps RGB frames in ``[0, 255]`` to softmax probabilities ``(batch, n_classes)``.
    """
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    inputs = keras.Input(shape=input_shape, name="frames")
    x = inputs
    if config.arch != "convnext_tiny":
        x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")(x)
    x = build_application(config.arch, input_shape, weights)(x)
    outputs = dense_head(
        x,
        embed_dim=config.embed_dim,
        n_classes=n_classes,
        dropout=config.head_dropout,
        l2=config.l2,
    )
    return keras.Model(inputs, outputs, name=name)


def visual_backbone(model: keras.Model) -> keras.Model:
    """The nested pretrained (or tiny) backbone of a model from :func:`build_visual_net`."""
    for arch in VISUAL_ARCHS:
        try:
            return model.get_layer(arch)
        except ValueError:
            continue
    raise ValueError(f"{model.name} has no visual backbone layer ({', '.join(VISUAL_ARCHS)})")
