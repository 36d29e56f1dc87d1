"""Probabilities from a two-phase bundle for a file's segments, per backbone and branch.

A branch whose modality is missing (no audio track, no video stream) is ``None``, and the
fused answer then comes from the branch that exists, exactly as the trained heads allow:
the ``audio`` and ``visual`` heads were trained for that case.

Each head's answers are scaled by the temperature training fitted for it
(:mod:`avsc_core.inference.calibration`), and each segment gets an unfamiliarity score
when the bundle has one (:mod:`avsc_core.inference.unfamiliar`).

The networks run in Keras, or in an optimised copy written by ``avsc export``
(:mod:`avsc_core.export`) when the bundle has one: ``runtime="auto"`` takes the fastest
export recorded in the manifest (:data:`avsc_core.export.formats.AUTO_ORDER`), and Keras
when there is none. An export is used only when all of its networks are present.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from avsc_core.bundle import Bundle
from avsc_core.errors import AvscError
from avsc_core.inference.backbones import backbone_runner, run_audio_backbone, run_visual_backbone
from avsc_core.inference.calibration import apply_temperature, temperatures
from avsc_core.inference.unfamiliar import EMBEDDING, load_familiarity

BRANCHES = ("audio", "visual", "fused")
KERAS = "keras"


@dataclass
class SegmentPredictions:
    """Per-segment probabilities ``(segments, classes)``; ``None`` where a branch cannot run.

    ``branches`` are calibrated, ``uncalibrated`` the same answers before temperature
    scaling. ``unfamiliar`` holds each segment's unfamiliarity score and
    ``unfamiliar_threshold`` the model's threshold for a file's score (both ``None`` when
    the bundle has no such score).
    """

    backbones: dict[str, np.ndarray] = field(default_factory=dict)
    branches: dict[str, np.ndarray | None] = field(default_factory=dict)
    uncalibrated: dict[str, np.ndarray | None] = field(default_factory=dict)
    unfamiliar: np.ndarray | None = None
    unfamiliar_threshold: float | None = None


def choose_runtime(bundle: Bundle, runtime: str = "auto") -> str:
    """The runtime :class:`Predictor` uses: ``"keras"`` or an export key (``"tflite-int8"``).

    Parameters
    ----------
    runtime : str
        ``"auto"`` (the fastest export, else Keras), ``"keras"``, a format (``"tflite"``,
        ``"onnx"``: its fastest precision) or an export key.

    Raises
    ------
    AvscError
        When the requested export is not in the bundle.
    """
    from avsc_core.export.formats import AUTO_ORDER, FORMATS

    exports = bundle.exports
    complete = [k for k in exports if _complete(bundle, exports[k])]
    ranked = sorted(complete, key=lambda k: AUTO_ORDER.index(k) if k in AUTO_ORDER else 99)
    if runtime == KERAS:
        return KERAS
    if runtime == "auto":
        return ranked[0] if ranked else KERAS
    if runtime in FORMATS:
        matching = [k for k in ranked if exports[k]["format"] == runtime]
        if matching:
            return matching[0]
    elif runtime in complete:
        return runtime
    have = ", ".join(complete) or "none"
    raise AvscError(
        f"{bundle.root}: no {runtime} export in this model (exports: {have}); "
        f"write one with 'avsc export --model {bundle.root} --format ...'"
    )


def _complete(bundle: Bundle, export: dict) -> bool:
    return set(export.get("backbones", {})) >= set(bundle.backbone_names) and set(
        export.get("heads", {})
    ) >= set(bundle.head_names)


class Predictor:
    """Runs the backbones and fusion heads of ``bundle`` on decoded arrays.

    Parameters
    ----------
    bundle : Bundle
    runtime : str
        See :func:`choose_runtime`; the choice is in :attr:`runtime`.
    threads : int, optional
        CPU threads of an exported runtime (all cores by default; give 1 per process
        when several run side by side). Keras keeps TensorFlow's own setting.
    """

    def __init__(self, bundle: Bundle, runtime: str = "auto", threads: int | None = None):
        self.bundle = bundle
        self.embedding_type = int(bundle.manifest.get("embedding_type", 2))
        self.runtime = choose_runtime(bundle, runtime)
        self.threads = threads
        self.temperatures = temperatures(bundle.manifest)
        self.familiarity = load_familiarity(bundle)
        self._runners: dict[str, object] = {}

    def _export_network(self, group: str, name: str):
        from avsc_core.export.runtime import open_network

        export = self.bundle.exports[self.runtime]
        entry = export[group][name]
        return open_network(export["format"], self.bundle.export_file(entry), entry, self.threads)

    def backbone(self, name: str):
        """The runner of backbone ``name``: ``runner(x) -> {"emb1", "emb2", "probs"}``."""
        if name not in self._runners:
            if self.runtime == KERAS:
                self._runners[name] = backbone_runner(self.bundle.backbone(name))
            else:
                self._runners[name] = self._export_network("backbones", name)
        return self._runners[name]

    def head(self, name: str):
        """Fusion head ``name`` as a function: ``{backbone: embeddings} -> probs``."""
        key = f"head/{name}"
        if key not in self._runners:
            if self.runtime == KERAS:
                model = self.bundle.head(name)

                def run(embeddings: dict[str, np.ndarray]) -> np.ndarray:
                    return np.asarray(model.predict_on_batch(embeddings), np.float32)

            else:
                network = self._export_network("heads", name)

                def run(embeddings: dict[str, np.ndarray]) -> np.ndarray:
                    return network(embeddings)["probs"]

            self._runners[key] = run
        return self._runners[key]

    def _feature(self, name: str) -> str:
        feature = self.bundle.backbone_entry(name).get("feature")
        if feature is None:  # bundles written before the manifest recorded it
            from avsc_core.models.presets import backbone_spec

            feature = backbone_spec(name).feature
        return feature

    def needs(self) -> tuple[tuple[str, ...], bool]:
        """Spectrogram kinds and whether frames are needed by the bundle's backbones."""
        kinds = []
        frames = False
        for name in self.bundle.backbone_names:
            feature = self._feature(name)
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
        familiarity_inputs: dict[str, np.ndarray] = {}
        key = f"emb{self.embedding_type}"
        for name in self.bundle.backbone_names:
            feature = self._feature(name)
            if feature == "frames":
                if frames is None:
                    continue
                out = run_visual_backbone(self.backbone(name), frames)
            else:
                if features is None or feature not in features:
                    continue
                out = run_audio_backbone(self.backbone(name), features[feature])
            result.backbones[name] = out["probs"]
            embeddings[name] = out[key]
            familiarity_inputs[name] = out[EMBEDDING]
        heads = self.bundle.manifest["heads"]
        raw = {branch: self._run_head(branch, heads, embeddings) for branch in BRANCHES}
        result.uncalibrated = with_fallback(raw)
        result.branches = with_fallback(
            {b: None if p is None else apply_temperature(p, self.temperatures.get(b, 1.0))
             for b, p in raw.items()}
        )
        if self.familiarity is not None:
            result.unfamiliar = self.familiarity.segment_scores(familiarity_inputs)
            result.unfamiliar_threshold = self.familiarity.threshold
        return result

    def _run_head(
        self, name: str, heads: dict, embeddings: dict[str, np.ndarray]
    ) -> np.ndarray | None:
        if name not in heads:
            return None
        inputs = heads[name]["inputs"]
        if not all(n in embeddings for n in inputs):
            return None
        return self.head(name)({n: embeddings[n] for n in inputs})


def with_fallback(branches: Mapping[str, np.ndarray | None]) -> dict[str, np.ndarray | None]:
    """The three branches' answers, ``fused`` taken from the branch that exists when the
    fused head cannot run (audio first, then visual).

    Everything that scores a model applies this rule (:class:`Predictor`, and the metrics
    training records), so that training and ``avsc evaluate`` agree on every clip.
    """
    answers = {branch: branches.get(branch) for branch in BRANCHES}
    for fallback in ("audio", "visual"):
        if answers["fused"] is None:
            answers["fused"] = answers[fallback]
    return answers


def clip_probabilities(segment_probs: np.ndarray | None) -> np.ndarray | None:
    """A clip's probabilities: the mean over its segments."""
    if segment_probs is None:
        return None
    return segment_probs.mean(axis=0)
