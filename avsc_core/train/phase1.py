"""Phase I: each backbone trained on its own (Pham et al. 2023).

Audio backbones learn from segment spectrograms, visual backbones from single frames
carrying their clip's label; both with mixup, the KL-divergence loss (+ L2 on the
kernels), Adam on the preset's learning-rate schedule, validation every epoch, a
checkpoint every epoch, early stopping, and the best epoch's weights restored at the end.
The network trains through a :class:`~avsc_core.train.trainer.DeviceTrainer` (input
preparation and mixup in the compiled step) in the run's precision.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
import tensorflow as tf

from avsc_core.config import FeatureConfig, MediaConfig, feature_shape
from avsc_core.errors import AvscError
from avsc_core.models import build_backbone
from avsc_core.models.presets import backbone_spec
from avsc_core.progress import ProgressCallback
from avsc_core.train.checkpoint import load_checkpoint
from avsc_core.train.monitor import fit_and_keep_best
from avsc_core.train.pipeline import frame_items, item_dataset, spectrogram_items, stored_form
from avsc_core.train.precision import precision_policy
from avsc_core.train.prepare import PreparedClip
from avsc_core.train.settings import TrainConfig
from avsc_core.train.state import StepFiles, TrainState, phase1_step
from avsc_core.train.trainer import compile_model, learning_rate, training_model


def backbone_seed(seed: int, name: str) -> int:
    """A per-backbone seed, stable across runs and Python processes."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**31)


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
    if spec.feature == "frames":
        return frame_items(clips, classes, media.frames_per_segment)
    return spectrogram_items(clips, spec.feature, classes)


def train_backbone(
    name: str,
    train: Sequence[PreparedClip],
    val: Sequence[PreparedClip],
    classes: Sequence[str],
    config: TrainConfig,
    media: MediaConfig,
    features: FeatureConfig,
    workdir: Path,
    state: TrainState,
    distribution: tf.distribute.Strategy,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Path:
    """Train backbone ``name`` (or resume it) and return its final ``.keras`` file.

    ``config.precision`` is the run's, resolved (``"mixed"`` or ``"float32"``, see
    :func:`~avsc_core.train.precision.resolve_precision`); the file is float32 either way.
    """
    step_name = phase1_step(name)
    step = state.step(step_name)
    files = StepFiles.of(workdir, step_name)
    final, last, best = files.final, files.last, files.best
    if step.finished and final.exists():
        return final
    last.parent.mkdir(parents=True, exist_ok=True)
    final.parent.mkdir(parents=True, exist_ok=True)

    spec = backbone_spec(name)
    train_items = backbone_items(name, train, classes, media)
    val_items = backbone_items(name, val, classes, media)
    if not train_items:
        raise ValueError(f"{name}: no training clip has the {spec.modality} it needs")
    peak = config.visual_lr if spec.modality == "visual" else config.audio_lr
    epochs = config.backbone_epochs(name)
    batch = config.batch_size * distribution.num_replicas_in_sync
    steps_per_epoch = math.ceil(len(train_items) / batch)
    seed = backbone_seed(config.seed, name)
    keras.utils.set_random_seed(seed)
    resuming = step.epochs_done > 0 and last.exists()
    with distribution.scope(), precision_policy(config.precision):
        input_shape = None if spec.feature == "frames" else feature_shape(media, features)
        net = build_backbone(
            name,
            config.preset,
            len(classes),
            input_shape,
            visual_weights_argument(config, name) if spec.modality == "visual" else None,
        )
        model = training_model(net, stored_form(train_items), config.mixup_alpha, seed)
        rate = learning_rate(peak, config.lr_schedule, config.warmup_fraction,
                             epochs * steps_per_epoch)
        compile_model(model, keras.optimizers.Adam(rate))
        if resuming:
            load_checkpoint(model, last)
        else:
            step.restart()

    counter = [step.epochs_done]
    train_ds = item_dataset(train_items, len(classes), batch, True, seed, counter)
    val_ds = item_dataset(val_items, len(classes), batch, False, seed) if val_items else None
    return fit_and_keep_best(
        model,
        train_ds,
        val_ds,
        stage=step_name,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        state=state,
        step=step,
        last_path=last,
        best_path=best,
        final_path=final,
        saved=net,
        patience=config.patience,
        progress=progress,
        cancel=cancel,
    )
