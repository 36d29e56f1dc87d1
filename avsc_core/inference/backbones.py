"""Running a trained backbone: its two embeddings and its probabilities, per segment.

Training (Phase II embeddings), evaluation and classification all call these, so they
compute the same numbers for the same input.
"""

from __future__ import annotations

import keras
import numpy as np

from avsc_core.models.heads import EMBEDDING_LAYERS, PROBS_LAYER

OUTPUTS = ("emb1", "emb2", "probs")


def backbone_runner(model: keras.Model) -> keras.Model:
    """A model sharing ``model``'s layers with outputs ``emb1``, ``emb2`` and ``probs``."""
    layers = [EMBEDDING_LAYERS[1], EMBEDDING_LAYERS[2], PROBS_LAYER]
    outputs = [model.get_layer(name).output for name in layers]
    return keras.Model(model.inputs, outputs, name=f"{model.name}_outputs")


def _predict(runner: keras.Model, x: np.ndarray, batch_size: int) -> list[np.ndarray]:
    parts: list[list[np.ndarray]] = [[] for _ in OUTPUTS]
    for start in range(0, len(x), batch_size):
        outputs = runner.predict_on_batch(np.asarray(x[start : start + batch_size]))
        for part, out in zip(parts, outputs):
            part.append(np.asarray(out, np.float32))
    return [np.concatenate(p) for p in parts]


def run_audio_backbone(
    runner: keras.Model, features: np.ndarray, batch_size: int = 16
) -> dict[str, np.ndarray]:
    """Outputs for ``(segments, bins, frames, channels)`` spectrograms.

    Returns
    -------
    dict
        ``emb1`` ``(segments, d)``, ``emb2`` and ``probs`` ``(segments, classes)``.
    """
    return dict(zip(OUTPUTS, _predict(runner, features, batch_size)))


def run_visual_backbone(
    runner: keras.Model, frames: np.ndarray, batch_size: int = 20
) -> dict[str, np.ndarray]:
    """Outputs for ``(segments, n_frames, h, w, 3)`` frames, averaged over each segment's frames.

    A clip's visual output is the mean over its frames (Pham et al. 2023); embeddings are
    averaged the same way so the fusion heads see one vector per segment.
    """
    segments, n_frames = frames.shape[:2]
    flat = frames.reshape((segments * n_frames, *frames.shape[2:]))
    outputs = _predict(runner, flat, batch_size)
    return {
        name: out.reshape(segments, n_frames, -1).mean(axis=1)
        for name, out in zip(OUTPUTS, outputs)
    }
