"""Joint optimisation (Chen, Wang, Zhang 2022): one training of both encoders and the classifier.

Every training segment feeds its spectrogram and its frames to the training model of
:func:`avsc_core.models.joint.build_joint_model`; mixup mixes both with the same partner.
The loss is KL divergence on the fused answer plus ``joint_branch_weight`` times the KL of
each encoder's own answer (+ L2 on the kernels); Adam with ``audio_lr`` for the acoustic
encoder and the classifier and ``visual_lr`` for the image model's layers, both on the
preset's schedule. Validation, checkpoints, early stopping, cancel, resume and precision
work as in Phase I (:mod:`avsc_core.train.monitor`, :mod:`avsc_core.train.trainer`).

The trained parts are saved like a two-phase model: two backbones (``joint-aud``,
``joint-vis``, each ending in ``emb1 -> emb2 -> probs``) and three heads (``fused``, the
jointly trained classifier on both ``emb1``; ``audio`` and ``visual``, each encoder's own
classifier), so evaluation, classification, export and the app use them unchanged.
Segments lacking sound or pictures cannot train a joint model and are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras

from avsc_core.backbones import AUDIO, FUSED, JOINT_AUDIO, JOINT_VISUAL, VISUAL
from avsc_core.config import feature_shape
from avsc_core.errors import AvscError
from avsc_core.features.prepare import PreparedClip
from avsc_core.models import scene_loss
from avsc_core.models.joint import (
    JointNetConfig,
    branch_head,
    build_acoustic_encoder,
    build_joint_model,
    build_visual_encoder,
)
from avsc_core.train.phase1 import visual_weights_argument
from avsc_core.train.pipeline import (
    Shard,
    StoredForm,
    segment_dataset,
    segment_items,
    stored_form,
)
from avsc_core.train.precision import float32_copy
from avsc_core.train.settings import TrainConfig
from avsc_core.train.stage import RunContext, Stage
from avsc_core.train.state import JOINT_STEP, StageFiles
from avsc_core.train.trainer import learning_rate, metrics, training_model

# The training model's outputs, each with its own loss.
OUTPUTS = (FUSED, AUDIO, VISUAL)
# The two-phase backbone whose ImageNet weights file each image model uses.
_WEIGHTS_OF = {"convnext_tiny": "vis-conv", "inception_v3": "vis-inc"}


def image_model_backbone(image_model: str) -> str:
    """The two-phase backbone (``"vis-conv"``, ``"vis-inc"``) whose ImageNet weights file
    joint optimisation's ``image_model`` starts from."""
    return _WEIGHTS_OF[image_model]


def joint_net_config(config: TrainConfig) -> JointNetConfig:
    """The network sizes of ``config``'s preset and joint settings.

    Raises
    ------
    AvscError
        Settings the networks cannot have (more stages than the image model has).
    """
    stages = config.joint_visual_stages or None
    try:
        if config.preset == "tiny":
            return JointNetConfig.tiny(stages)
        return JointNetConfig.paper(config.joint_image_model, stages)
    except ValueError as exc:
        raise AvscError(f"--joint-visual-stages: {exc}") from exc


class TwoRateAdam(keras.optimizers.Adam):
    """Adam with its learning rate scaled by ``scale`` for a chosen set of variables.

    Keras has one learning rate per optimizer; joint optimisation fine-tunes pre-trained
    image layers more gently than the networks trained from scratch. Scaling the
    gradients would not do it (Adam's steps do not depend on the gradient's scale), so the
    rate itself is scaled in :meth:`update_step`. Used for training only, never saved.
    """

    def __init__(self, learning_rate: float, scaled: Sequence, scale: float, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self._scaled_keys = {self._var_key(v) for v in scaled}
        self._scale = float(scale)

    def update_step(self, gradient, variable, learning_rate):
        if self._var_key(variable) in self._scaled_keys:
            learning_rate = learning_rate * self._scale
        super().update_step(gradient, variable, learning_rate)


def joint_visual_weights(config: TrainConfig):
    """The image model's initial weights (see :func:`~avsc_core.train.phase1.visual_weights_argument`).

    Raises
    ------
    AvscError
        When ``config.visual_weights`` names a folder without the image model's file.
    """
    net = joint_net_config(config)
    if net.image_model == "tiny_cnn":
        return None
    return visual_weights_argument(config, image_model_backbone(net.image_model))


def _build(
    config: TrainConfig,
    net: JointNetConfig,
    n_classes: int,
    input_shape: tuple[int, int, int],
    frames_per_segment: int,
    stored: StoredForm | None = None,
    total_steps: int = 0,
    seed: int = 0,
) -> tuple[keras.Model, keras.Model, keras.Model, keras.Model]:
    """The compiled training model (a :class:`~avsc_core.train.trainer.DeviceTrainer` taking
    the ``stored`` form, or the network's input when omitted, on a schedule over
    ``total_steps``), and the encoders and classifier it trains."""
    audio = build_acoustic_encoder(net, input_shape, n_classes, name="joint_aud")
    visual = build_visual_encoder(net, n_classes, joint_visual_weights(config), name="joint_vis")
    image_layers = visual.get_layer(f"{net.image_model}_bottom")
    if config.joint_freeze_visual:
        image_layers.trainable = False
    joint, classifier = build_joint_model(audio, visual, frames_per_segment, n_classes, net)
    model = training_model(joint, stored, config.mixup_alpha, seed)
    scaled = [] if config.joint_freeze_visual else image_layers.trainable_variables
    rate = learning_rate(config.audio_lr, config.lr_schedule, config.warmup_fraction,
                         total_steps)
    model.compile(
        optimizer=TwoRateAdam(rate, scaled, config.visual_lr / config.audio_lr),
        loss={name: scene_loss() for name in OUTPUTS},
        loss_weights={FUSED: 1.0, AUDIO: config.joint_branch_weight,
                      VISUAL: config.joint_branch_weight},
        metrics={FUSED: metrics()},
    )
    return model, audio, visual, classifier


def train_joint(
    context: RunContext,
    train: Sequence[PreparedClip],
    val: Sequence[PreparedClip],
) -> tuple[dict[str, Path], dict[str, tuple[Path, list[str]]]]:
    """Train (or resume) a joint model; return its backbone files and head files.

    Returns
    -------
    backbones : dict
        ``{"joint-aud": path, "joint-vis": path}``.
    heads : dict
        ``{head: (path, backbone names it takes)}`` for ``fused``, ``audio``, ``visual``.
    """
    config, classes, media, out = context.config, context.classes, context.media, context.out
    backbones = {name: out / "backbones" / f"{name}.keras" for name in (JOINT_AUDIO, JOINT_VISUAL)}
    heads = {
        FUSED: (out / "heads" / f"{FUSED}.keras", [JOINT_AUDIO, JOINT_VISUAL]),
        AUDIO: (out / "heads" / f"{AUDIO}.keras", [JOINT_AUDIO]),
        VISUAL: (out / "heads" / f"{VISUAL}.keras", [JOINT_VISUAL]),
    }
    files = (*backbones.values(), *(path for path, _ in heads.values()))
    stage = Stage(context, JOINT_STEP, seed_key="joint",
                  files=StageFiles.of(out, JOINT_STEP).with_products(files))
    if stage.finished:
        return backbones, heads

    kind = config.joint_feature
    train_items = segment_items(train, kind, classes)
    val_items = segment_items(val, kind, classes)
    if not train_items:
        raise AvscError("no training clip has both sound and pictures; joint optimisation "
                        "needs both (use --strategy two-phase for one modality)")
    net = joint_net_config(config)

    def build(seed: int, total_steps: int):
        model, audio, visual, classifier = _build(
            config, net, len(classes), feature_shape(media, context.features),
            media.frames_per_segment, stored_form(train_items), total_steps, seed,
        )
        return model, (audio, visual, classifier)

    def datasets(batch: int, seed: int, epochs_done: int, shard: Shard | None):
        # The training pipeline counts its epochs on from the resumed one (its shuffles).
        train_ds = segment_dataset(train_items, len(classes), batch, True, seed, OUTPUTS,
                                   [epochs_done], shard)
        val_ds = (segment_dataset(val_items, len(classes), batch, False, seed, OUTPUTS)
                  if val_items else None)
        return train_ds, val_ds

    parts = stage.fit(examples=len(train_items), epochs=config.joint_epochs, build=build,
                      datasets=datasets, precision=config.precision)
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
    audio, visual, classifier = (float32_copy(m) for m in parts)
    audio.save(backbones[JOINT_AUDIO])
    visual.save(backbones[JOINT_VISUAL])
    classifier.save(heads[FUSED][0])
    branch_head(audio, JOINT_AUDIO).save(heads[AUDIO][0])
    branch_head(visual, JOINT_VISUAL).save(heads[VISUAL][0])
    return backbones, heads
