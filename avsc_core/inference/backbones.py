"""Running a trained backbone: its two embeddings and its probabilities, per segment.

Training (Phase II embeddings), evaluation and classification all call these, so they
compute the same numbers for the same input.

A *runner* is any callable mapping a batch of inputs to ``{"emb1", "emb2", "probs"}``
arrays: :func:`backbone_runner` wraps a Keras backbone, and the exported networks of
:mod:`avsc_core.export` (TFLite, ONNX) are runners too. A runner may carry a
``batch_size`` attribute, the batch it was compiled for; the helpers here then feed it
batches of exactly that size.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# The names of avsc_core.models.heads' layers, repeated here so that running an exported
# network never imports Keras (and TensorFlow): a large saving in start-up time and memory.
OUTPUTS = ("emb1", "emb2", "probs")

Runner = Callable[[np.ndarray], dict[str, np.ndarray]]


class KerasBackboneRunner:
    """A Keras backbone seen as a runner: ``runner(x) -> {"emb1", "emb2", "probs"}``."""

    batch_size: int | None = None

    def __init__(self, model):
        import keras

        outputs = [model.get_layer(name).output for name in OUTPUTS]
        self.model = keras.Model(model.input, outputs, name=f"{model.name}_outputs")

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.model.predict_on_batch(np.asarray(x))
        return {name: np.asarray(out, np.float32) for name, out in zip(OUTPUTS, outputs)}


def backbone_runner(model) -> KerasBackboneRunner:
    """A runner sharing the Keras ``model``'s layers with outputs ``emb1``, ``emb2``, ``probs``."""
    return KerasBackboneRunner(model)


def _predict(runner: Runner, x: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    batch_size = getattr(runner, "batch_size", None) or batch_size
    parts: dict[str, list[np.ndarray]] = {name: [] for name in OUTPUTS}
    for start in range(0, len(x), batch_size):
        outputs = runner(np.asarray(x[start : start + batch_size]))
        for name in OUTPUTS:
            parts[name].append(np.asarray(outputs[name], np.float32))
    return {name: np.concatenate(p) for name, p in parts.items()}


def run_audio_backbone(
    runner: Runner, features: np.ndarray, batch_size: int = 16
) -> dict[str, np.ndarray]:
    """Outputs for ``(segments, bins, frames, channels)`` spectrograms.

    Returns
    -------
    dict
        ``emb1`` ``(segments, d)``, ``emb2`` and ``probs`` ``(segments, classes)``.
    """
    return _predict(runner, features, batch_size)


def run_visual_backbone(
    runner: Runner, frames: np.ndarray, batch_size: int = 20
) -> dict[str, np.ndarray]:
    """Outputs for ``(segments, n_frames, h, w, 3)`` frames, averaged over each segment's frames.

    A clip's visual output is the mean over its frames (Pham et al. 2023); embeddings are
    averaged the same way so the fusion heads see one vector per segment.
    """
    segments, n_frames = frames.shape[:2]
    flat = frames.reshape((segments * n_frames, *frames.shape[2:]))
    return segment_means(_predict(runner, flat, batch_size), segments, n_frames)


def run_frames(runner: Runner, frames: np.ndarray, batch_size: int = 20
               ) -> dict[str, np.ndarray]:
    """Outputs per frame for ``(n, h, w, 3)`` frames (any part of a batch's frames)."""
    return _predict(runner, frames, batch_size)


def segment_means(outputs: dict[str, np.ndarray], segments: int, n_frames: int
                  ) -> dict[str, np.ndarray]:
    """Per-frame outputs ``(segments * n_frames, d)`` averaged over each segment's frames."""
    return {name: out.reshape(segments, n_frames, -1).mean(axis=1)
            for name, out in outputs.items()}
