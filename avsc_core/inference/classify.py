"""Classifying whole files over time: per-segment and clip answers of every branch.

>>> result = classify_file("holiday.mp4", "models/paper")       # doctest: +SKIP
>>> result.label, result.confidence                              # doctest: +SKIP
('park', 0.91)
>>> print(result.to_json())                                      # doctest: +SKIP

A file is decoded segment by segment (:mod:`avsc_core.inference.inputs`) and the model
runs on small batches of segments, so memory stays flat whatever the file's length. The
clip answer of each branch is the mean of its segment probabilities; the clip label and
confidence come from the fused branch. Probabilities are calibrated (the bundle's
temperatures); a bundle with an unfamiliarity score gives it per segment and per file, and
the file is ``unfamiliar`` above the model's threshold (:mod:`avsc_core.inference.unfamiliar`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from avsc_core.backbones import BRANCHES
from avsc_core.bundle import Bundle, load_bundle
from avsc_core.errors import MediaError
from avsc_core.inference.inputs import (
    InputPlan,
    SegmentBatch,
    iter_input_batches,
    make_plan,
    silence_warning,
    stream_warnings,
)
from avsc_core.inference.review import review_reasons
from avsc_core.inference.unfamiliar import file_score
from avsc_core.media import MediaInfo, probe, segment_spans
from avsc_core.progress import Progress, ProgressCallback

if TYPE_CHECKING:
    from avsc_core.features import FeatureExtractor
    from avsc_core.inference.predictor import Predictor, SegmentPredictions

log = logging.getLogger(__name__)

def probability_dict(classes: list[str], probs: np.ndarray) -> dict[str, float]:
    """``{class: probability}`` for one probability vector."""
    return {c: float(p) for c, p in zip(classes, probs)}


def _normalise(probs: np.ndarray) -> np.ndarray:
    # Softmax outputs in float32 sum to 1 only within ~1e-6; the contract says they sum to 1.
    probs = np.asarray(probs, np.float64)
    return probs / probs.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class SegmentResult:
    """Answers for one segment: ``{class: p}`` per backbone and per branch.

    ``branches`` always has the keys ``audio``, ``visual`` and ``fused``; a branch that
    cannot run on the file is ``None``. ``unfamiliar_score`` is ``None`` when the model
    has no unfamiliarity score.
    """

    start: float
    end: float
    backbones: dict[str, dict[str, float]]
    branches: dict[str, dict[str, float] | None]
    unfamiliar_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "backbones": self.backbones,
            "branches": self.branches,
            "unfamiliar_score": self.unfamiliar_score,
        }


@dataclass
class ClassifyResult:
    """What a model says about one file, over time and for the whole clip.

    Attributes
    ----------
    file : str
        The file as given.
    duration : float
        Measured duration (s).
    has_audio, has_video : bool
        Which streams the file has.
    classes : list of str
        The model's classes, in the order of every probability array.
    segments : list of SegmentResult
        Per-segment answers, in time order.
    clip : dict
        ``{"label", "confidence", "branches": {branch: {class: p} | None}, "unfamiliar",
        "unfamiliar_score"}`` (the last two ``None`` without an unfamiliarity score);
        :meth:`to_dict` adds ``needs_review``.
    warnings : list of str
        Things the user should know (missing or silent streams, damaged data skipped).
    starts, ends : ndarray
        ``(segments,)`` segment bounds (s).
    probs : dict
        Branch -> float64 ``(segments, classes)``, or ``None`` when it cannot run.
    backbone_probs : dict
        Backbone name -> float64 ``(segments, classes)``, for the backbones that ran.
    clip_probs : dict
        Branch -> ``(classes,)`` mean over segments, or ``None``.
    unfamiliar_scores : ndarray or None
        ``(segments,)`` unfamiliarity scores, ``None`` when the model has none.
    """

    file: str
    duration: float
    has_audio: bool
    has_video: bool
    classes: list[str]
    segments: list[SegmentResult]
    clip: dict[str, Any]
    warnings: list[str]
    starts: np.ndarray
    ends: np.ndarray
    probs: dict[str, np.ndarray | None]
    backbone_probs: dict[str, np.ndarray]
    clip_probs: dict[str, np.ndarray | None]
    unfamiliar_scores: np.ndarray | None = None

    @property
    def unfamiliar_score(self) -> float | None:
        """The file's unfamiliarity score (the mean over its segments), or ``None``."""
        return self.clip.get("unfamiliar_score")

    @property
    def unfamiliar(self) -> bool | None:
        """Whether the file is unlike the training data; ``None`` when the model cannot tell."""
        return self.clip.get("unfamiliar")

    @property
    def label(self) -> str:
        return self.clip["label"]

    @property
    def confidence(self) -> float:
        return self.clip["confidence"]

    def branch_label(self, branch: str) -> str | None:
        """The clip label of ``branch``, or ``None`` when it did not run."""
        probs = self.clip_probs.get(branch)
        return None if probs is None else self.classes[int(np.argmax(probs))]

    def to_dict(self, min_confidence: float | None = None) -> dict[str, Any]:
        """The contract's JSON object (``avsc classify --json``).

        ``clip["needs_review"]`` lists the reasons of
        :func:`~avsc_core.inference.review.review_reasons` with ``min_confidence``.
        """
        return {
            "file": self.file,
            "duration": round(self.duration, 3),
            "has_audio": self.has_audio,
            "has_video": self.has_video,
            "classes": list(self.classes),
            "segments": [s.to_dict() for s in self.segments],
            "clip": {**self.clip, "needs_review": review_reasons(self, min_confidence)},
            "warnings": list(self.warnings),
        }

    def to_json(self, indent: int | None = 2, min_confidence: float | None = None) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(min_confidence), indent=indent, ensure_ascii=False)


class ResultBuilder:
    """Collects a file's predictions batch by batch, then builds its :class:`ClassifyResult`.

    Raises
    ------
    MediaError
        From the constructor, when the file has no stream the model uses.
    """

    def __init__(self, path: str | Path, info: MediaInfo, classes: list[str], plan: InputPlan):
        self.path = path
        self.info = info
        self._media = plan.media
        self.classes = list(classes)
        self.warnings = stream_warnings(path, info, plan)
        self._starts: list[float] = []
        self._ends: list[float] = []
        self._backbones: dict[str, list[np.ndarray]] = {}
        self._branches: dict[str, list[np.ndarray] | None] = {b: [] for b in BRANCHES}
        self._peaks: list[np.ndarray] = []
        # None once a batch came without scores: a file's score covers all its segments.
        self._unfamiliar: list[np.ndarray] | None = []
        self._threshold: float | None = None

    @property
    def segments_done(self) -> int:
        return len(self._starts)

    @cached_property
    def segments_total(self) -> int:
        """Segments the file will give (its progress' total)."""
        return len(segment_spans(self.info.duration, self._media))

    def report(self, batch: SegmentBatch, progress: ProgressCallback) -> None:
        """``Progress("classify", n, total, {"file", "start", "end"})`` for each segment
        of ``batch``, the batch :meth:`add` took last."""
        first = self.segments_done - len(batch.spans) + 1
        for n, span in enumerate(batch.spans, first):
            progress(Progress("classify", n, self.segments_total,
                              {"file": str(self.path), "start": span.start, "end": span.end}))

    def add(self, batch: SegmentBatch, predictions: SegmentPredictions) -> None:
        self._starts.extend(s.start for s in batch.spans)
        self._ends.extend(s.end for s in batch.spans)
        for warning in batch.warnings:
            if warning not in self.warnings:
                self.warnings.append(warning)
        if batch.peaks is not None:
            self._peaks.append(batch.peaks)
        for name, probs in predictions.backbones.items():
            self._backbones.setdefault(name, []).append(_normalise(probs))
        for branch in BRANCHES:
            probs = predictions.branches.get(branch)
            parts = self._branches[branch]
            if probs is None or parts is None:
                self._branches[branch] = None
            else:
                parts.append(_normalise(probs))
        if predictions.unfamiliar is None or self._unfamiliar is None:
            self._unfamiliar = None
        else:
            self._unfamiliar.append(predictions.unfamiliar)
            self._threshold = predictions.unfamiliar_threshold

    def finish(self) -> ClassifyResult:
        if not self._starts:
            raise MediaError(self.path, "no segments could be decoded")
        warnings = list(self.warnings)
        if self._peaks:
            silent = silence_warning(np.concatenate(self._peaks))
            if silent:
                warnings.append(silent)
        probs = {b: None if p is None else np.concatenate(p) for b, p in self._branches.items()}
        backbone_probs = {n: np.concatenate(p) for n, p in self._backbones.items()}
        clip_probs = {b: None if p is None else p.mean(axis=0) for b, p in probs.items()}
        fused = clip_probs["fused"]
        if fused is None:
            raise MediaError(self.path, "the model gave no answer (no branch could run)")
        best = int(np.argmax(fused))
        scores = np.concatenate(self._unfamiliar) if self._unfamiliar else None
        segments = [
            SegmentResult(
                start=float(self._starts[i]),
                end=float(self._ends[i]),
                backbones={
                    n: probability_dict(self.classes, p[i]) for n, p in backbone_probs.items()
                },
                branches={
                    b: None if p is None else probability_dict(self.classes, p[i])
                    for b, p in probs.items()
                },
                unfamiliar_score=None if scores is None else float(scores[i]),
            )
            for i in range(len(self._starts))
        ]
        score = None if scores is None else file_score(scores)
        clip = {
            "label": self.classes[best],
            "confidence": float(fused[best]),
            "branches": {
                b: None if p is None else probability_dict(self.classes, p)
                for b, p in clip_probs.items()
            },
            "unfamiliar": None if score is None else bool(score > self._threshold),
            "unfamiliar_score": score,
        }
        return ClassifyResult(
            file=str(self.path),
            duration=float(self.info.duration),
            has_audio=self.info.has_audio,
            has_video=self.info.has_video,
            classes=self.classes,
            segments=segments,
            clip=clip,
            warnings=warnings,
            starts=np.array(self._starts),
            ends=np.array(self._ends),
            probs=probs,
            backbone_probs=backbone_probs,
            clip_probs=clip_probs,
            unfamiliar_scores=scores,
        )


def load_predictor(model: Bundle | Predictor | str | Path, runtime: str = "auto") -> Predictor:
    """A :class:`Predictor` for a bundle or a bundle folder, running ``runtime`` (see
    :func:`~avsc_core.inference.predictor.choose_runtime`), or a predictor itself."""
    from avsc_core.inference.predictor import Predictor

    if isinstance(model, Predictor):
        return model
    return Predictor(model if isinstance(model, Bundle) else load_bundle(model), runtime=runtime)


def plan_for(
    predictor: Predictor,
    segment_seconds: float | None = None,
    hop_seconds: float | None = None,
    frames_per_second: float | None = None,
) -> InputPlan:
    """What to decode for ``predictor``'s model with the requested segments and frame
    rate (see :func:`~avsc_core.inference.inputs.analysis_media`).

    The predictor's visual networks are sized for the plan's segments
    (:meth:`Predictor.fit_frames`), so that fewer frames a segment cost less.
    """
    kinds, frames = predictor.needs()
    bundle = predictor.bundle
    plan = make_plan(bundle.media, bundle.features, kinds, frames, segment_seconds,
                     hop_seconds, frames_per_second)
    if frames:
        predictor.fit_frames(plan.media.frames_per_segment)
    return plan


def classify_with(
    path: str | Path,
    predictor: Predictor,
    plan: InputPlan,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    extractor: FeatureExtractor | None = None,
) -> ClassifyResult:
    """:func:`classify_file` with a loaded predictor and a plan; several files go through
    :func:`~avsc_core.inference.pipeline.classify_files`."""
    info = probe(path)
    builder = ResultBuilder(path, info, predictor.bundle.classes, plan)
    for batch in iter_input_batches(path, plan, info, extractor, cancel=cancel):
        builder.add(batch, predictor.predict(batch.features, batch.frames))
        if progress:
            builder.report(batch, progress)
    return builder.finish()


def classify_file(
    path: str | Path,
    model: Bundle | Predictor | str | Path,
    segment_seconds: float | None = None,
    hop_seconds: float | None = None,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    frames_per_second: float | None = None,
) -> ClassifyResult:
    """Classify one audio or video file, segment by segment.

    Parameters
    ----------
    path : str or Path
        Any audio or video file FFmpeg reads.
    model : Bundle, Predictor, str or Path
        A model bundle (loaded or its folder) or a ready predictor.
    segment_seconds, hop_seconds : float, optional
        Analysis segment length and distance between segment starts; the model's own
        settings by default. Segments shorter than the model's are repeated up to its
        length, as short clips were in training; longer ones are refused.
    frames_per_second : float, optional
        Video frames a second the visual networks see (default: the model's rate, 2 for
        TAU models); fewer cost proportionally less, and a segment's visual answer, the
        mean over its frames, moves only a little.
    progress : callable, optional
        Receives ``Progress("classify", segments done, segments total, {"file", "start",
        "end"})`` for each segment, once the model has run on it.
    cancel : callable, optional
        Polled before each segment; when it returns True, :class:`Cancelled` is raised.

    Raises
    ------
    MediaError
        The file cannot be read, or has nothing the model can use.
    BundleError
        The model cannot be loaded.
    """
    predictor = load_predictor(model)
    plan = plan_for(predictor, segment_seconds, hop_seconds, frames_per_second)
    return classify_with(path, predictor, plan, progress, cancel)
