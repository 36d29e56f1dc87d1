"""Phase I: each backbone trained on its own (Pham et al. 2023).

Audio backbones learn from segment spectrograms, visual backbones from single frames
carrying their clip's label; both with mixup, the KL-divergence loss (+ L2 on the
kernels), Adam on the preset's learning-rate schedule, validation every epoch, a
checkpoint every epoch, early stopping, and the best epoch's weights restored at the end.
The network trains through a :class:`~avsc_core.train.trainer.DeviceTrainer` (input
preparation and mixup in the compiled step) in the run's precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras

from avsc_core.backbones import FRAMES, VISUAL
from avsc_core.config import MediaConfig, feature_shape
from avsc_core.errors import AvscError
from avsc_core.features.prepare import PreparedClip
from avsc_core.models import build_backbone
from avsc_core.models.presets import backbone_spec
from avsc_core.train.pipeline import (
    Shard,
    frame_items,
    item_dataset,
    spectrogram_items,
    stored_form,
)
from avsc_core.train.settings import TrainConfig
from avsc_core.train.stage import RunContext, Stage
from avsc_core.train.state import phase1_step
from avsc_core.train.trainer import compile_model, learning_rate, training_model


def visual_weights_argument(config: TrainConfig, name: str) -> str | Path | None:
    """Initial weights of visual backbone ``name`` from ``config.visual_weights``.

    ``"imagenet"`` uses the cached (or downloaded) Keras ImageNet weights; ``"none"``
    starts from scratch; a folder is searched for the backbone's Keras weights file (as
    named in ``keras.applications``, e.g. ``inception_v3_weights_tf_dim_ordering_tf_kernels
    _notop.h5``); a file is used as is when only one visual backbone is trained.
    """
    from avsc_core.models.weights import IMAGENET_WEIGHTS

    if config.preset == "tiny" or config.visual_weights == "none":
        return None
    if config.visual_weights == "imagenet":
        return "imagenet"
    path = Path(config.visual_weights)
    if path.is_dir():
        spec = IMAGENET_WEIGHTS[name]
        for candidate in (spec.filename, spec.imported_filename):
            if (path / candidate).is_file():
                return path / candidate
        raise AvscError(f"{path}: no {spec.filename} for {name} in this folder")
    if len(config.visual_backbones) > 1:
        raise AvscError(
            f"{path}: one weights file cannot start both visual backbones; pass a folder "
            "holding both Keras weights files, or train one visual backbone (--backbones)"
        )
    return path


def backbone_items(
    name: str, clips: Sequence[PreparedClip], classes: Sequence[str], media: MediaConfig
) -> list:
    spec = backbone_spec(name)
    if spec.feature == FRAMES:
        return frame_items(clips, classes, media.frames_per_segment)
    return spectrogram_items(clips, spec.feature, classes)


def train_backbone(
    context: RunContext,
    name: str,
    train: Sequence[PreparedClip],
    val: Sequence[PreparedClip],
) -> Path:
    """Train backbone ``name`` (or resume it) and return its final ``.keras`` file.

    ``context.config.precision`` is the run's, resolved (``"mixed"`` or ``"float32"``, see
    :func:`~avsc_core.train.precision.resolve_precision`); the file is float32 either way.
    """
    config, classes, media = context.config, context.classes, context.media
    stage = Stage(context, phase1_step(name), seed_key=name)
    if stage.finished:
        return stage.files.final
    spec = backbone_spec(name)
    train_items = backbone_items(name, train, classes, media)
    val_items = backbone_items(name, val, classes, media)
    if not train_items:
        raise ValueError(f"{name}: no training clip has the {spec.modality} it needs")
    peak = config.visual_lr if spec.modality == VISUAL else config.audio_lr
    epochs = config.backbone_epochs(name)

    def build(seed: int, total_steps: int) -> tuple[keras.Model, keras.Model]:
        input_shape = None if spec.feature == FRAMES else feature_shape(media, context.features)
        net = build_backbone(
            name,
            config.preset,
            len(classes),
            input_shape,
            visual_weights_argument(config, name) if spec.modality == VISUAL else None,
        )
        model = training_model(net, stored_form(train_items), config.mixup_alpha, seed)
        rate = learning_rate(peak, config.lr_schedule, config.warmup_fraction, total_steps)
        compile_model(model, keras.optimizers.Adam(rate))
        return model, net

    def datasets(batch: int, seed: int, epochs_done: int, shard: Shard | None):
        # The training pipeline counts its epochs on from the resumed one (its shuffles).
        train_ds = item_dataset(train_items, len(classes), batch, True, seed, [epochs_done],
                                shard)
        val_ds = (item_dataset(val_items, len(classes), batch, False, seed)
                  if val_items else None)
        return train_ds, val_ds

    stage.fit(examples=len(train_items), epochs=epochs, build=build, datasets=datasets,
              precision=config.precision)
    return stage.files.final
