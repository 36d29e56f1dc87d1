"""Probabilities from a two-phase bundle for a file's segments, per backbone and branch.

A branch whose modality is missing (no audio track, no video stream) is ``None``, and the
fused answer then comes from the branch that exists, exactly as the trained heads allow:
the ``audio`` and ``visual`` heads were trained for that case.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from avsc_core.bundle import Bundle
from avsc_core.inference.backbones import backbone_runner, run_audio_backbone, run_visual_backbone
from avsc_core.models.presets import backbone_spec

BRANCHES = ("audio", "visual", "fused")


@dataclass
class SegmentPredictions:
    """Per-segment probabilities ``(segments, classes)``; ``None`` where a branch cannot run."""

    backbones: dict[str, np.ndarray] = field(default_factory=dict)
    branches: dict[str, np.ndarray | None] = field(default_factory=dict)


class Predictor:
    """Runs the backbones and fusion heads of ``bundle`` on decoded arrays."""

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.embedding_type = int(bundle.manifest.get("embedding_type", 2))
        self._runners: dict[str, object] = {}

    def _runner(self, name: str):
        if name not in self._runners:
            self._runners[name] = backbone_runner(self.bundle.backbone(name))
        return self._runners[name]

    def needs(self) -> tuple[tuple[str, ...], bool]:
        """Spectrogram kinds and whether frames are needed by the bundle's backbones."""
        kinds = []
        frames = False
        for name in self.bundle.backbone_names:
            feature = backbone_spec(name).feature
            if feature == "frames":
                frames = True
            elif feature not in kinds:
                kinds.append(feature)
        return tuple(kinds), frames

    def predict(
        self,
        features: dict[str, np.ndarray] | None,
        frames: np.ndarray | None,
    ) -> SegmentPredictions:
        """Predict from spectrograms (kind -> ``(n, bins, frames, ch)``) and/or frames."""
        result = SegmentPredictions()
        embeddings: dict[str, np.ndarray] = {}
        key = f"emb{self.embedding_type}"
        for name in self.bundle.backbone_names:
            feature = backbone_spec(name).feature
            if feature == "frames":
                if frames is None:
                    continue
                out = run_visual_backbone(self._runner(name), frames)
            else:
                if features is None or feature not in features:
                    continue
                out = run_audio_backbone(self._runner(name), features[feature])
            result.backbones[name] = out["probs"]
            embeddings[name] = out[key]
        heads = self.bundle.manifest["heads"]
        for branch in ("audio", "visual"):
            result.branches[branch] = self._run_head(branch, heads, embeddings)
        fused = self._run_head("fused", heads, embeddings)
        for fallback in ("audio", "visual"):
            if fused is None:
                fused = result.branches[fallback]
        result.branches["fused"] = fused
        return result

    def _run_head(
        self, name: str, heads: dict, embeddings: dict[str, np.ndarray]
    ) -> np.ndarray | None:
        if name not in heads:
            return None
        inputs = heads[name]["inputs"]
        if not all(n in embeddings for n in inputs):
            return None
        model = self.bundle.head(name)
        return np.asarray(model.predict_on_batch({n: embeddings[n] for n in inputs}), np.float32)


def clip_probabilities(segment_probs: np.ndarray | None) -> np.ndarray | None:
    """A clip's probabilities: the mean over its segments."""
    if segment_probs is None:
        return None
    return segment_probs.mean(axis=0)
