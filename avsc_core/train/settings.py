"""Training settings, saved in every model bundle."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from avsc_core.config import _Settings

STRATEGIES = ("two-phase", "joint")
FUSIONS = ("f1", "f2", "f3", "f4", "f5", "f6")
ALL_BACKBONES = ("aud-mel", "aud-gam", "aud-cqt", "vis-inc", "vis-conv")
SPECTROGRAMS = ("mel", "gam", "cqt")
JOINT_IMAGE_MODELS = ("convnext_tiny", "inception_v3")
JOINT_BATCH = 8


def backbone_modality(name: str) -> str:
    """``"audio"`` or ``"visual"``: what a two-phase backbone learns from."""
    return "audio" if name.startswith("aud-") else "visual"


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
        Epochs per backbone (Phase I) and per fusion head (Phase II).
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

    In joint optimisation ``audio_lr`` trains the acoustic encoder and the classifier and
    ``visual_lr`` the image model's layers.
    """

    preset: str = "paper"
    strategy: str = "two-phase"
    fusion: str = "f4"
    backbones: tuple[str, ...] = ALL_BACKBONES
    phase1_epochs: int = 30
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
            base.update(
                phase1_epochs=10,
                phase2_epochs=20,
                joint_epochs=15,
                batch_size=8,
                visual_lr=1e-3,
                audio_lr=2e-3,
                fusion_lr=1e-2,
                visual_weights="none",
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

    @property
    def audio_backbones(self) -> tuple[str, ...]:
        """Two-phase audio backbones trained (none for joint optimisation)."""
        if self.strategy == "joint":
            return ()
        return tuple(b for b in self.backbones if backbone_modality(b) == "audio")

    @property
    def visual_backbones(self) -> tuple[str, ...]:
        """Two-phase visual backbones trained (none for joint optimisation)."""
        if self.strategy == "joint":
            return ()
        return tuple(b for b in self.backbones if backbone_modality(b) == "visual")
