"""The builders of the five backbones of the two-phase system, by their contract names.

What each backbone is (modality, feature) is the registry's (:mod:`avsc_core.backbones`);
this module adds how to build it.

==============  ========  =======  ====================================================
name            modality  feature  paper preset
==============  ========  =======  ====================================================
``aud-mel``     audio     mel      residual-inception CNN, ~12 M params, input 128x305x6
``aud-gam``     audio     gam      same network on the gammatone spectrogram
``aud-cqt``     audio     cqt      same network on the constant-Q spectrogram
``vis-inc``     visual    frames   InceptionV3 + FC(1024) + FC(10), 224x224x3 frames
``vis-conv``    visual    frames   ConvNeXtTiny + FC(1024) + FC(10), 224x224x3 frames
==============  ========  =======  ====================================================

Preset ``tiny`` keeps the five names with small networks (the audio ``tiny`` config and
the visual ``tiny_cnn``; both embed to 64) so that training runs on a CPU in seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras

from avsc_core.backbones import TWO_PHASE_BACKBONES, backbone_entry
from avsc_core.models.audio import PAPER_INPUT_SHAPE, AudioNetConfig, build_audio_net
from avsc_core.models.visual import FRAME_SHAPE, VisualNetConfig, Weights, build_visual_net

PRESETS = ("tiny", "paper")

Builder = Callable[[str, str, int, tuple[int, int, int], Weights], keras.Model]


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one two-phase backbone, with its registry entry's modality and feature.

    Attributes
    ----------
    name : str
        Contract name, e.g. ``"aud-mel"``.
    modality : {"audio", "visual"}
    feature : {"mel", "gam", "cqt", "frames"}
        What the model takes: a spectrogram kind of :mod:`avsc_core.features`, or video frames.
    default_input_shape : tuple of int
        Input shape used when :func:`build_backbone` gets none.
    builder : callable
        ``builder(name, preset, n_classes, input_shape, weights) -> keras.Model``.
    """

    name: str
    modality: str
    feature: str
    default_input_shape: tuple[int, int, int]
    builder: Builder


def _audio(
    name: str, preset: str, n_classes: int, input_shape: tuple[int, int, int], weights: Weights
) -> keras.Model:
    if weights is not None:
        raise ValueError(f"{name}: audio backbones have no pretrained weights, pass weights=None")
    config = AudioNetConfig.paper() if preset == "paper" else AudioNetConfig.tiny()
    return build_audio_net(config, input_shape, n_classes, name=name.replace("-", "_"))


def _visual(arch: str) -> Builder:
    def build(
        name: str,
        preset: str,
        n_classes: int,
        input_shape: tuple[int, int, int],
        weights: Weights,
    ) -> keras.Model:
        config = VisualNetConfig.paper(arch) if preset == "paper" else VisualNetConfig.tiny()
        return build_visual_net(
            config, input_shape, n_classes, weights, name=name.replace("-", "_")
        )

    return build


def _spec(name: str, default_input_shape: tuple[int, int, int], builder: Builder) -> BackboneSpec:
    entry = backbone_entry(name)
    return BackboneSpec(name, entry.modality, entry.feature, default_input_shape, builder)


_BUILDERS: dict[str, tuple[tuple[int, int, int], Builder]] = {
    "aud-mel": (PAPER_INPUT_SHAPE, _audio),
    "aud-gam": (PAPER_INPUT_SHAPE, _audio),
    "aud-cqt": (PAPER_INPUT_SHAPE, _audio),
    "vis-inc": (FRAME_SHAPE, _visual("inception_v3")),
    "vis-conv": (FRAME_SHAPE, _visual("convnext_tiny")),
}
BACKBONES: dict[str, BackboneSpec] = {
    name: _spec(name, *_BUILDERS[name]) for name in TWO_PHASE_BACKBONES
}
AUDIO_BACKBONES = tuple(n for n, s in BACKBONES.items() if s.modality == "audio")
VISUAL_BACKBONES = tuple(n for n, s in BACKBONES.items() if s.modality == "visual")


def backbone_spec(name: str) -> BackboneSpec:
    try:
        return BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}") from None


def build_backbone(
    name: str,
    preset: str,
    n_classes: int = 10,
    input_shape: tuple[int, int, int] | None = None,
    weights: Weights = None,
) -> keras.Model:
    """Build (uncompiled) backbone ``name`` of ``preset``.

    Parameters
    ----------
    name : str
        A key of :data:`BACKBONES`.
    preset : {"tiny", "paper"}
    n_classes : int
    input_shape : tuple of int, optional
        Defaults to the spec's ``default_input_shape``; audio inputs are
        ``avsc_core.config.feature_shape(...)``.
    weights : {"imagenet", None} or path
        Visual backbones only (see :func:`avsc_core.models.visual.build_application`);
        audio backbones take ``None``.
    """
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    spec = backbone_spec(name)
    shape = tuple(input_shape) if input_shape is not None else spec.default_input_shape
    return spec.builder(name, preset, n_classes, shape, weights)
