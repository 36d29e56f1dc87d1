"""Training settings, saved in every model bundle."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from avsc_core.backbones import AUDIO, TWO_PHASE_BACKBONES, VISUAL, modality_of
from avsc_core.config import FEATURE_KINDS, _Settings

STRATEGIES = ("two-phase", "joint")
FUSIONS = ("f1", "f2", "f3", "f4", "f5", "f6")
ALL_BACKBONES = TWO_PHASE_BACKBONES
SPECTROGRAMS = FEATURE_KINDS
JOINT_IMAGE_MODELS = ("convnext_tiny", "inception_v3")
JOINT_BATCH = 8
LR_SCHEDULES = ("cosine", "constant")
PRECISIONS = ("auto", "mixed", "float32")
# What a journal or manifest written before a setting existed trained with: a run resumed
# from it, or a bundle described from it, keeps that behaviour rather than today's default.
LEGACY_SETTINGS: dict[str, Any] = {
    "visual_epochs": 0,
    "lr_schedule": "constant",
    "warmup_fraction": 0.0,
    "patience": 0,
    "precision": "float32",
}


@dataclass(frozen=True)
class TrainConfig(_Settings):
    """How a model is trained.

    Parameters
    ----------
    preset : {"paper", "tiny"}
        Network sizes; ``tiny`` only exists so tests and demos run on a CPU.
    strategy : {"two-phase", "joint"}
        Pham et al.'s two-phase training, or Chen et al.'s joint optimisation.
    fusion : {"f1", ..., "f6"}
        Phase II fusion (``PAPERS.md``); f4 is the paper's best.
    backbones : tuple of str
        Backbones to train; any subset of the five with at least one.
    phase1_epochs, phase2_epochs : int
        Epochs per backbone (Phase I) and per fusion head (Phase II); totals, which early
        stopping may cut short.
    visual_epochs : int
        Epochs of each visual backbone instead of ``phase1_epochs``; 0 for
        ``phase1_epochs``. A visual epoch is every frame (20 per clip), 20 times the steps
        of an audio epoch, hence far fewer of them in the paper preset (see the README's
        recipe).
    batch_size : int
        Segments per audio batch, frames per visual batch, clips per fusion batch;
        segments (each with all its frames) per joint batch, 8 by default.
    audio_lr, visual_lr, fusion_lr : float
        Adam learning rates. Visual backbones start from ImageNet, hence a smaller rate in
        the paper preset.
    mixup_alpha : float
        Mixup's Beta(alpha, alpha) parameter; 0 turns mixup off.
    visual_weights : str
        ``"imagenet"``, ``"none"`` or a path to a weights file.
    seed : int
        Seeds splits, shuffling, mixup and initialisation.
    joint_epochs : int
        Epochs of joint optimisation (``strategy="joint"``).
    joint_feature : {"mel", "gam", "cqt"}
        The spectrogram the joint acoustic encoder takes.
    joint_image_model : {"convnext_tiny", "inception_v3"}
        The pre-trained image model whose bottom layers encode the frames (the ``tiny``
        preset always uses its small CNN).
    joint_visual_stages : int
        Stages of the image model kept; 0 for its default
        (:mod:`avsc_core.models.joint`).
    joint_freeze_visual : bool
        Keep the image model's layers fixed (only the rest is trained).
    joint_branch_weight : float
        Weight of each encoder's own loss beside the fused one.
    lr_schedule : {"cosine", "constant"}
        ``cosine``: a linear warm-up from 0 over ``warmup_fraction`` of a network's
        training steps, then cosine decay to 0 by its last epoch; ``constant``: the rate
        as given throughout (no warm-up).
    warmup_fraction : float
        Share of each network's steps spent warming up (``cosine`` only).
    patience : int
        Early stopping: a network stops after this many epochs without a lower validation
        log loss, and keeps its best epoch (it always does); 0 trains every epoch.
    precision : {"auto", "mixed", "float32"}
        ``mixed``: float16 computation with float32 weights, softmax and loss for the
        backbones and joint models (fusion heads, a few thousand parameters, stay
        float32); ``auto``: mixed on a GPU, float32 otherwise. A run records the one it
        chose; bundles are always saved in float32.

    In joint optimisation ``audio_lr`` trains the acoustic encoder and the classifier and
    ``visual_lr`` the image model's layers.
    """

    preset: str = "paper"
    strategy: str = "two-phase"
    fusion: str = "f4"
    backbones: tuple[str, ...] = ALL_BACKBONES
    phase1_epochs: int = 60
    phase2_epochs: int = 30
    batch_size: int = 32
    audio_lr: float = 1e-3
    visual_lr: float = 1e-4
    fusion_lr: float = 1e-3
    mixup_alpha: float = 0.4
    visual_weights: str = "imagenet"
    seed: int = 0
    joint_epochs: int = 30
    joint_feature: str = "mel"
    joint_image_model: str = "convnext_tiny"
    joint_visual_stages: int = 0
    joint_freeze_visual: bool = False
    joint_branch_weight: float = 0.3
    visual_epochs: int = 6
    lr_schedule: str = "cosine"
    warmup_fraction: float = 0.05
    patience: int = 8
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.preset not in ("paper", "tiny"):
            raise ValueError(f"preset must be 'paper' or 'tiny', got {self.preset!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        unknown = set(self.backbones) - set(ALL_BACKBONES)
        if unknown or not self.backbones:
            raise ValueError(f"backbones must be a non-empty subset of {ALL_BACKBONES}")
        if self.phase1_epochs < 0 or self.phase2_epochs < 0 or self.batch_size < 1:
            raise ValueError("epochs must be >= 0 and batch_size >= 1")
        if self.mixup_alpha < 0:
            raise ValueError("mixup_alpha must be >= 0")
        if self.joint_feature not in SPECTROGRAMS:
            raise ValueError(f"joint_feature must be one of {SPECTROGRAMS}")
        if self.joint_image_model not in JOINT_IMAGE_MODELS:
            raise ValueError(f"joint_image_model must be one of {JOINT_IMAGE_MODELS}")
        if self.joint_epochs < 0 or self.joint_visual_stages < 0 or self.joint_branch_weight < 0:
            raise ValueError("joint epochs, stages and branch weight must be >= 0")
        if self.visual_epochs < 0 or self.patience < 0:
            raise ValueError("visual_epochs and patience must be >= 0")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError("warmup_fraction must be at least 0 and below 1")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        object.__setattr__(self, "backbones", tuple(self.backbones))

    @property
    def embedding_type(self) -> int:
        """1 (FC(1024) outputs) for f1-f3 and joint models, 2 (FC(10) outputs) for f4-f6."""
        return 1 if self.strategy == "joint" or self.fusion in ("f1", "f2", "f3") else 2

    @classmethod
    def for_preset(cls, preset: str, **overrides: Any) -> TrainConfig:
        """Defaults of ``preset``: the tiny one trains for seconds with faster rates."""
        base: dict[str, Any] = {"preset": preset}
        if preset == "tiny":
            # Seconds on a CPU: few constant-rate epochs, every one of them trained.
            base.update(
                phase1_epochs=10,
                visual_epochs=0,
                phase2_epochs=20,
                joint_epochs=15,
                batch_size=8,
                visual_lr=1e-3,
                audio_lr=2e-3,
                fusion_lr=1e-2,
                visual_weights="none",
                lr_schedule="constant",
                warmup_fraction=0.0,
                patience=0,
            )
        given = {k: v for k, v in overrides.items() if v is not None}
        if given.get("strategy") == "joint" and "batch_size" not in given:
            # A joint batch item is a segment with all its frames (20 per 10 s): 8 of them
            # already put 160 frames through the image layers per step.
            base["batch_size"] = min(base.get("batch_size", cls.batch_size), JOINT_BATCH)
        base.update(given)
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["backbones"] = list(self.backbones)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Read settings saved in a journal or a manifest; a setting it lacks takes the
        value of :data:`LEGACY_SETTINGS` (what the version that wrote it trained with)."""
        if isinstance(data, dict):
            data = {**LEGACY_SETTINGS, **data}
        return super().from_dict(data)

    def backbone_epochs(self, name: str) -> int:
        """The epochs Phase I backbone ``name`` trains for."""
        if modality_of(name) == VISUAL and self.visual_epochs:
            return self.visual_epochs
        return self.phase1_epochs

    @property
    def audio_backbones(self) -> tuple[str, ...]:
        """Two-phase audio backbones trained (none for joint optimisation)."""
        if self.strategy == "joint":
            return ()
        return tuple(b for b in self.backbones if modality_of(b) == AUDIO)

    @property
    def visual_backbones(self) -> tuple[str, ...]:
        """Two-phase visual backbones trained (none for joint optimisation)."""
        if self.strategy == "joint":
            return ()
        return tuple(b for b in self.backbones if modality_of(b) == VISUAL)


def parse_devices(text: str | None) -> int | list[str] | None:
    """The devices ``text`` asks a run to train on (``avsc train --devices``, the app's
    *GPUs* field): a number of GPUs, or TensorFlow device names separated by commas.

    Blank or ``None`` means the default (every visible GPU, else the CPU). The devices are
    checked against what TensorFlow sees when the run starts
    (:func:`avsc_core.train.distribute.device_names`); this only reads the text, without
    TensorFlow.

    Raises
    ------
    ValueError
        Text that is neither, with the reason.
    """
    if text is None or not text.strip():
        return None
    if text.strip().isdigit():
        count = int(text)
        if count < 1:
            raise ValueError(f"must be at least 1 GPU, got {count}")
        return count
    names = [name.strip() for name in text.split(",") if name.strip()]
    if any(not name.startswith("/") for name in names):
        raise ValueError("give a number of GPUs or TensorFlow device names such as "
                         "/gpu:0,/gpu:1")
    return names
