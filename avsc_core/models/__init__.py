"""Keras models of the two-phase system (Pham et al. 2023).

- :mod:`~avsc_core.models.audio`: the residual-inception audio backbone (Aud-MEL/GAM/CQT).
- :mod:`~avsc_core.models.visual`: Vis-INC (InceptionV3) and Vis-CONV (ConvNeXtTiny).
- :mod:`~avsc_core.models.heads`: the shared ``emb1 -> emb2 -> probs`` block.
- :mod:`~avsc_core.models.fusion`: the Phase II fusion layers f1..f6 and their heads.
- :mod:`~avsc_core.models.presets`: the backbones' builders and the ``tiny``/``paper``
  presets (what each backbone is: :mod:`avsc_core.backbones`).
- :mod:`~avsc_core.models.weights`: the ImageNet weights cache.
- :mod:`~avsc_core.models.losses`: the KL-divergence training loss.
"""

from avsc_core.backbones import modality_of
from avsc_core.models.audio import AudioNetConfig, build_audio_net, trainable_params
from avsc_core.models.fusion import (
    FUSIONS,
    EmbeddingFusion,
    FusionSpec,
    build_fusion_head,
    fusion_spec,
)
from avsc_core.models.heads import EMBEDDING_LAYERS
from avsc_core.models.losses import scene_loss
from avsc_core.models.presets import (
    AUDIO_BACKBONES,
    BACKBONES,
    PRESETS,
    VISUAL_BACKBONES,
    BackboneSpec,
    build_backbone,
)
from avsc_core.models.visual import VisualNetConfig, build_visual_net, visual_backbone
from avsc_core.models.weights import resolve_imagenet_weights, visual_weights_path

__all__ = [
    "AUDIO_BACKBONES",
    "BACKBONES",
    "EMBEDDING_LAYERS",
    "FUSIONS",
    "PRESETS",
    "VISUAL_BACKBONES",
    "AudioNetConfig",
    "BackboneSpec",
    "EmbeddingFusion",
    "FusionSpec",
    "VisualNetConfig",
    "build_audio_net",
    "build_backbone",
    "build_fusion_head",
    "build_visual_net",
    "fusion_spec",
    "modality_of",
    "resolve_imagenet_weights",
    "scene_loss",
    "trainable_params",
    "visual_backbone",
    "visual_weights_path",
]
