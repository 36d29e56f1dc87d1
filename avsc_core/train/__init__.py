"""Training: Pham et al.'s two-phase system (Phase I backbones, Phase II fusion heads)."""

from avsc_core.train.run import train_model
from avsc_core.train.settings import ALL_BACKBONES, FUSIONS, STRATEGIES, TrainConfig

__all__ = ["ALL_BACKBONES", "FUSIONS", "STRATEGIES", "TrainConfig", "train_model"]
