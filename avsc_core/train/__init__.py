"""Training: Pham et al.'s two-phase system (Phase I backbones, Phase II fusion heads).

Importing this package is cheap; TensorFlow loads only when :func:`train_model` runs.
"""

from avsc_core.train.settings import ALL_BACKBONES, FUSIONS, STRATEGIES, TrainConfig

__all__ = ["ALL_BACKBONES", "FUSIONS", "STRATEGIES", "TrainConfig", "train_model"]


def __getattr__(name: str):
    if name == "train_model":
        from avsc_core.train.run import train_model

        return train_model
    raise AttributeError(name)
