"""Evaluating a bundle on a dataset, per branch, at the clip level (and per segment)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from avsc_core.bundle import load_bundle
from avsc_core.datasets import Dataset, load_dataset
from avsc_core.errors import AvscError
from avsc_core.evaluation.metrics import score_clips
from avsc_core.progress import Cancelled, Progress, ProgressCallback

if TYPE_CHECKING:
    from avsc_core.config import MediaConfig
    from avsc_core.datasets import Clip
    from avsc_core.inference.inputs import InputPlan
    from avsc_core.inference.predictor import Predictor


def _relative_paths(dataset: Dataset) -> set[str]:
    return {dataset.relative(c.path) for c in dataset.clips}


def dataset_for_evaluation(
    recorded: dict[str, Any], data: str | Path, layout: str, seed: int
) -> Dataset:
    """The clips to evaluate, with their splits.

    On the model's own training data (the same files), the split recorded in the bundle
    decides, so ``test`` is exactly what the model never saw. Other data keeps its own
    split (its ``split`` column, TAU fold files, or a seeded split).
    """
    fresh = load_dataset(data, layout, seed=seed)
    try:
        trained_on = Dataset.from_dict(recorded, root=data)
    except (AvscError, KeyError, TypeError, ValueError):
        return fresh
    if _relative_paths(trained_on) <= _relative_paths(fresh):
        return trained_on
    return fresh


def evaluate_model(
    model: str | Path,
    data: str | Path,
    layout: str = "auto",
    split: str = "test",
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    segment_seconds: float | None = None,
    submission: str | Path | None = None,
    *,
    jobs: int | None = None,
    cache_dir: str | Path | None = None,
    runtime: str = "auto",
    frames_per_second: float | None = None,
) -> dict[str, Any]:
    """Clip-level metrics of the audio, visual and fused branches on ``split`` of ``data``.

    Parameters
    ----------
    jobs : int, optional
        Processes decoding the clips not in the feature cache yet (all cores when omitted).
    cache_dir : str or Path, optional
        The feature cache folder (:func:`~avsc_core.features.default_cache_dir` when
        omitted).
    runtime : str
        What runs the networks (:func:`~avsc_core.inference.predictor.choose_runtime`):
        ``"keras"`` gives the answers the training metrics of ``avsc info`` were computed
        from; ``"auto"`` the fastest export, as ``classify`` and ``label`` use it.
    segment_seconds : float, optional
        Also score segments of this length, each as one answer, the way DCASE 2021
        Task 1B ranks systems (1 s there; :mod:`avsc_core.evaluation.challenge`).
    submission : str or Path, optional
        Write the challenge's output file there: one row per segment with
        ``segment_seconds``, else one per clip, with the fused probabilities.
    frames_per_second : float, optional
        Measure the model as ``classify`` and ``label`` run it with this many video frames
        a second (default: the model's). The frames cached at the model's rate are
        reused, so the rate must be the model's divided by a whole number (1 or 0.5 for
        a 2-frames-a-second model). A clip shorter than a segment, whose cached frames
        repeat to fill it, sees slightly other frames than classify decodes.

    Returns
    -------
    dict
        ``{"n", "classes", "split", "branches": {"audio": M, "visual": M, "fused": M},
        "clips": [...], "skipped": [...], "runtime", "frames_per_second"}`` with ``M``
        from :func:`branch_metrics` (``None`` for a branch that could not run on any
        clip); for a calibrated model each ``M`` also has ``"uncalibrated": {"log_loss",
        "ece"}``. Each of ``clips``
        is ``{"file", "label", "predicted": {branch: class | None}, "confidence":
        {branch: p | None}, "unfamiliar_score"}`` (and ``"predicted_uncalibrated"``,
        ``"confidence_uncalibrated"`` for a calibrated model), so a confusion cell can list
        its clips. With
        ``segment_seconds``, ``"segments": {"seconds", "n", "branches"}`` scores segments.

    Raises
    ------
    AvscError
        Unknown classes, an empty split, a segment length the model cannot take or a
        frame rate that is not the model's divided by a whole number (before any
        decoding).
    """
    from avsc_core.features.prepare import prepare_clips
    from avsc_core.features.store import open_entry
    from avsc_core.inference.classify import plan_for
    from avsc_core.inference.predictor import Predictor, clip_probabilities
    from avsc_core.inference.unfamiliar import file_score

    bundle = load_bundle(model)
    seed = int(bundle.manifest.get("training", {}).get("seed", 0))
    dataset = dataset_for_evaluation(bundle.manifest.get("dataset", {}), data, layout, seed)
    clips = dataset.clips if split == "all" else dataset.split(split)
    classes = bundle.classes
    unknown = sorted({c.label for c in clips} - set(classes))
    if unknown:
        raise AvscError(
            f"{data}: classes the model does not know: {', '.join(unknown)} "
            f"(it knows {', '.join(classes)})"
        )
    if not clips:
        raise AvscError(f"{data}: no clips in the '{split}' split")
    step = frame_step(bundle.media, frames_per_second)
    predictor = Predictor(bundle, runtime=runtime)
    calibrated = "calibration" in bundle.manifest
    # A clip's frames at the asked rate, as classify counts them (which may be fewer than
    # every step-th cached frame: 2, not 3, at 0.25 a second over 10 s).
    kept = plan_for(predictor, frames_per_second=frames_per_second).media.frames_per_segment
    segment_plan = (plan_for(predictor, segment_seconds, frames_per_second=frames_per_second)
                    if segment_seconds is not None else None)
    kinds, frames = predictor.needs()
    preparation = prepare_clips(
        clips,
        bundle.media,
        bundle.features,
        cache_dir,
        kinds=kinds,
        frames=frames,
        jobs=jobs,
        progress=progress,
        cancel=cancel,
    )
    lookup = {c: i for i, c in enumerate(classes)}
    labels: list[int] = []
    answers: list[dict[str, np.ndarray | None]] = []
    uncalibrated: list[dict[str, np.ndarray | None]] = []
    rows: list[dict[str, Any]] = []
    for done, prepared in enumerate(preparation.clips, 1):
        if cancel and cancel():
            raise Cancelled()
        n = prepared.segments
        features = (
            {k: open_entry(p)[:n] for k, p in prepared.features.items()}
            if prepared.features
            else None
        )
        frame_array = open_entry(prepared.frames)[:n] if prepared.frames else None
        if frame_array is not None and step > 1:
            frame_array = np.ascontiguousarray(frame_array[:, ::step][:, :kept])
        result = predictor.predict(features, frame_array)
        row: dict[str, Any] = {
            "file": dataset.relative(prepared.clip.path),
            "label": prepared.clip.label,
            "predicted": {},
            "confidence": {},
        }
        answer = {b: clip_probabilities(p) for b, p in result.branches.items()}
        before = {b: clip_probabilities(p) for b, p in result.uncalibrated.items()}
        for branch, clip_probs in answer.items():
            if clip_probs is None:
                row["predicted"][branch] = row["confidence"][branch] = None
                continue
            best = int(np.argmax(clip_probs))
            row["predicted"][branch] = classes[best]
            row["confidence"][branch] = float(clip_probs[best])
        if calibrated:
            # Scaling keeps each segment's class, but a clip's mean may change its mind.
            row["predicted_uncalibrated"] = {
                b: None if p is None else classes[int(np.argmax(p))] for b, p in before.items()}
            row["confidence_uncalibrated"] = {
                b: None if p is None else float(np.max(p)) for b, p in before.items()}
        row["unfamiliar_score"] = (
            None if result.unfamiliar is None else file_score(result.unfamiliar))
        labels.append(lookup[prepared.clip.label])
        answers.append(answer)
        uncalibrated.append(before)
        rows.append(row)
        if progress:
            progress(
                Progress(
                    "evaluate", done, len(preparation.clips), {"file": str(prepared.clip.path)}
                )
            )
    evaluation: dict[str, Any] = {
        "n": len(preparation.clips),
        "classes": classes,
        "split": split,
        "branches": score_clips(labels, answers, classes, uncalibrated if calibrated else None),
        "clips": rows,
        "skipped": [{"file": str(c.path), "reason": r} for c, r in preparation.failures],
        "runtime": predictor.runtime,
        "frames_per_second": bundle.media.frames_per_second / step,
    }
    outputs = [(row["file"], answer["fused"]) for row, answer in zip(rows, answers)]
    if segment_plan is not None:
        evaluation["segments"], outputs = _score_segments(
            dataset, [c.clip for c in preparation.clips], predictor, segment_plan, calibrated,
            progress, cancel,
        )
    if submission is not None:
        from avsc_core.evaluation.challenge import write_submission

        write_submission(submission, classes, outputs)
    return evaluation


def frame_step(media: MediaConfig, frames_per_second: float | None) -> int:
    """Every how many of the frames cached at ``media``'s rate a clip at
    ``frames_per_second`` sees (1: the model's rate).

    Frames sampled at the model's rate divided by ``k`` are every ``k``-th frame sampled
    at the model's rate, from the segment's start.

    Raises
    ------
    AvscError
        ``frames_per_second`` is not positive, or not the model's rate divided by a whole
        number.
    """
    if frames_per_second is None:
        return 1
    model = media.frames_per_second
    step = model / frames_per_second if frames_per_second > 0 else 0.0
    if step < 1 - 1e-9 or abs(step - round(step)) > 1e-6:
        raise AvscError(
            f"--frames-per-second {frames_per_second:g}: evaluate reuses the frames cached "
            f"at the model's {model:g} a second, so it takes that rate divided by a whole "
            f"number ({model:g}, {model / 2:g}, {model / 4:g}...)")
    return round(step)


def _score_segments(
    dataset: Dataset,
    clips: list[Clip],
    predictor: Predictor,
    plan: InputPlan,
    calibrated: bool,
    progress: ProgressCallback | None,
    cancel: Callable[[], bool] | None,
) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    """Segment-level metrics of ``clips`` and each segment's name and fused answer."""
    from avsc_core.evaluation.challenge import item_name, segment_predictions
    from avsc_core.features import FeatureExtractor

    extractor = FeatureExtractor(plan.features, plan.media.sample_rate)
    lookup = {c: i for i, c in enumerate(predictor.bundle.classes)}
    labels: list[int] = []
    answers: list[dict[str, np.ndarray | None]] = []
    uncalibrated: list[dict[str, np.ndarray | None]] = []
    outputs: list[tuple[str, np.ndarray]] = []
    for done, clip in enumerate(clips, 1):
        if cancel and cancel():
            raise Cancelled()
        spans = []
        for batch_spans, predictions in segment_predictions(clip, predictor, plan, extractor):
            for i, span in enumerate(batch_spans):
                spans.append(span)
                labels.append(lookup[clip.label])
                answers.append({b: None if p is None else p[i]
                                for b, p in predictions.branches.items()})
                uncalibrated.append({b: None if p is None else p[i]
                                     for b, p in predictions.uncalibrated.items()})
        file = dataset.relative(clip.path)
        outputs += [(item_name(file, span, len(spans)), answer["fused"])
                    for span, answer in zip(spans, answers[len(answers) - len(spans):])]
        if progress:
            progress(Progress("evaluate-segments", done, len(clips), {"file": str(clip.path)}))
    classes = predictor.bundle.classes
    metrics = {
        "seconds": plan.media.segment_seconds,
        "n": len(labels),
        "branches": score_clips(labels, answers, classes, uncalibrated if calibrated else None),
    }
    return metrics, outputs
