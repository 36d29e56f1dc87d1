"""Training a model bundle end to end: prepare, train (two-phase or joint), metrics, manifest.

The bundle folder doubles as the run's working folder: ``training/state.json`` (the
resume journal), ``training/checkpoints/`` and ``training/embeddings.npz`` live there
until the manifest is written, which is the last step and marks the bundle complete.
A journal without any finished epoch holds nothing worth resuming: a new run replaces it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from avsc_core import locks
from avsc_core.backbones import (
    BRANCHES,
    JOINT_AUDIO,
    JOINT_VISUAL,
    backbone_entry,
    inputs_needed,
)
from avsc_core.bundle.manifest import (
    MANIFEST,
    file_entry,
    head_entries,
    stamped,
    write_manifest,
)
from avsc_core.config import FeatureConfig, MediaConfig
from avsc_core.datasets import Dataset, load_dataset
from avsc_core.datasets.check import DatasetReport
from avsc_core.datasets.types import SPLITS
from avsc_core.errors import AvscError
from avsc_core.evaluation.metrics import score_clips
from avsc_core.features.prepare import Preparation, PreparedClip, prepare_clips
from avsc_core.inference.predictor import clip_probabilities, with_fallback
from avsc_core.locks import OutputLock
from avsc_core.models import trainable_params
from avsc_core.outputs import check_output_folder
from avsc_core.progress import Progress, ProgressCallback
from avsc_core.train.resume import (
    check_resume,
    check_split_options,
    discarded_steps,
    wanted_config,
)
from avsc_core.train.settings import TrainConfig
from avsc_core.train.state import (
    CHECKPOINTS,
    DEFAULT_FRACTION,
    EMBEDDINGS_STEP,
    HEADS,
    JOINT_STEP,
    JOURNAL,
    StageFiles,
    TrainState,
    phase1_step,
)
from avsc_core.train.validate import check_classes, check_prepared

if TYPE_CHECKING:
    from avsc_core.train.stage import RunContext

log = logging.getLogger(__name__)

PHASES = ("1", "2")
EMBEDDINGS_CACHE = Path("training") / "embeddings.npz"
# What a run writes into its folder besides the manifest (see the module docstring).
RUN_FOLDERS = ("training", "backbones", "heads")
# A non-chief worker's folder in the temporary folder (see _run_folder), and the age after
# which one that no live worker holds is removed.
WORKER_PREFIX = "avsc-worker-"
STALE_WORKER_AGE_S = 60.0


def _check_phases(config: TrainConfig, phases: Sequence[str]) -> None:
    if config.strategy == "joint" and tuple(phases) != PHASES:
        raise AvscError("--phase applies to two-phase training; joint optimisation has one phase")


def _refuse_complete(out: Path) -> None:
    if (out / MANIFEST).exists():
        raise AvscError(f"{out}: a trained model is already there; choose another --out")


def _check_new_run_folder(out: Path) -> None:
    """Refuse a folder a new run cannot start in; clear one left by a run without work."""
    _refuse_complete(out)
    if (out / JOURNAL).exists():
        if TrainState.load(out / JOURNAL).has_work:
            raise AvscError(
                f"{out}: holds an interrupted training run; add --resume to continue it "
                "or choose another --out"
            )
        # A run stopped before its first epoch (refused data, a kill) saved nothing worth
        # resuming; keeping it would only stop the user from starting again.
        for name in RUN_FOLDERS:
            shutil.rmtree(out / name, ignore_errors=True)
    if out.exists() and any(out.iterdir()):
        raise AvscError(f"{out}: folder exists and is not empty; choose another --out")


def _start(
    out: Path,
    config: TrainConfig,
    media: MediaConfig,
    features: FeatureConfig,
    dataset: Dataset,
    split: dict[str, float],
) -> TrainState:
    """The journal of a new run at ``out``, written once every check has passed."""
    state = TrainState(
        out / JOURNAL,
        {
            "config": config.to_dict(),
            "media": media.to_dict(),
            "features": features.to_dict(),
            "dataset": dataset.to_dict(),
            "split": split,
        },
    )
    state.save()
    return state


def _resume(
    out: Path,
    config: TrainConfig | None,
    changes: Mapping[str, Any] | None,
    split_options: dict[str, Any],
) -> TrainState:
    """The journal of the interrupted run at ``out``, with the changes it can take."""
    _refuse_complete(out)
    if not (out / JOURNAL).exists():
        raise AvscError(f"{out}: no interrupted training run to resume")
    state = TrainState.load(out / JOURNAL)
    check_split_options(out, state, split_options)
    saved = TrainConfig.from_dict(state.settings["config"])
    wanted = wanted_config(saved, config, changes)
    check_resume(out, state, saved, wanted)
    _check_settings(wanted)
    for name in discarded_steps(state, saved, wanted):
        _discard_step(out, state, name)
    state.settings["config"] = wanted.to_dict()
    state.save()
    return state


def _discard_step(out: Path, state: TrainState, name: str) -> None:
    if name == EMBEDDINGS_STEP:
        files = [out / EMBEDDINGS_CACHE]
    else:
        step_files = StageFiles.of(out, name)
        files = [p for p in (step_files.final, step_files.last, step_files.best) if p]
    for path in files:
        path.unlink(missing_ok=True)
    del state.steps[name]


def preparation_report(
    dataset: Dataset,
    preparation: Preparation,
    media: MediaConfig,
    kinds: tuple[str, ...],
    frames: bool,
) -> DatasetReport:
    """The dataset check, from what decoding every clip found."""
    usable = preparation.clips
    return DatasetReport(
        dataset=dataset,
        counts={s: dataset.class_counts(s) for s in SPLITS},
        unreadable=[(c.path, reason) for c, reason in preparation.failures],
        no_audio=[c.clip.path for c in usable if kinds and not c.has_audio],
        no_video=[c.clip.path for c in usable if frames and not c.has_video],
        total_seconds=sum(c.segments for c in usable) * media.segment_seconds,
    )


def segment_probabilities(
    heads: dict[str, tuple[Path, list[str]]], embeddings, n_classes: int, kind: int
) -> dict[str, np.ndarray]:
    """Each head's answer for every segment row; NaN rows where a clip lacks its inputs."""
    import keras

    result = {}
    for head, (path, inputs) in heads.items():
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
        probs = np.full((len(embeddings.clip_index), n_classes), np.nan, np.float32)
        mask = embeddings.available(inputs)
        if mask.any():
            probs[mask] = model.predict_on_batch(
                {n: embeddings.values[n][kind][mask] for n in inputs}
            )
        result[head] = probs
    return result


def _clip_answers(
    segment_probs: dict[str, np.ndarray], rows: np.ndarray
) -> dict[str, np.ndarray | None]:
    """One clip's branch probabilities, as :class:`~avsc_core.inference.Predictor` gives
    them: a branch whose head cannot run on the clip is ``None``, fused falls back."""
    segments: dict[str, np.ndarray | None] = {}
    for branch in BRANCHES:
        probs = segment_probs.get(branch)
        clip_rows = None if probs is None else probs[rows]
        segments[branch] = None if clip_rows is None or np.isnan(clip_rows).any() else clip_rows
    return {b: clip_probabilities(p) for b, p in with_fallback(segments).items()}


def training_metrics(
    segment_probs: dict[str, np.ndarray],
    embeddings,
    clips: Sequence[PreparedClip],
    classes: Sequence[str],
    temperatures: dict[str, float],
) -> dict[str, Any]:
    """Clip-level metrics of each branch on the validation and test splits, scored like
    ``avsc evaluate`` scores them (:func:`~avsc_core.evaluation.metrics.score_clips`):
    calibrated with ``temperatures``, and before calibration."""
    from avsc_core.train.calibrate import scale_segments

    scaled = scale_segments(segment_probs, temperatures)
    lookup = {c: i for i, c in enumerate(classes)}
    result: dict[str, Any] = {}
    for split in ("val", "test"):
        members = [i for i, c in enumerate(clips) if c.clip.split == split]
        labels = [lookup[clips[i].clip.label] for i in members]
        rows = embeddings.clip_rows(members)
        answers = [_clip_answers(scaled, rows[i]) for i in members]
        raw = [_clip_answers(segment_probs, rows[i]) for i in members]
        result[split] = {"n": len(members),
                         "branches": score_clips(labels, answers, classes, raw)}
    return result


def _write_manifest(
    out: Path,
    state: TrainState,
    dataset: Dataset,
    backbone_files: dict[str, Path],
    head_files: dict[str, tuple[Path, list[str]]],
    metrics: dict[str, Any],
    preparation_failures: list,
    devices: int,
    parts: dict[str, tuple[str, str]],
    trust: dict[str, dict[str, Any]],
) -> None:
    import keras

    config = TrainConfig.from_dict(state.settings["config"])
    backbones = []
    for name, path in backbone_files.items():
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
        modality, feature = parts[name]
        backbones.append(
            {
                "name": name,
                "modality": modality,
                "feature": feature,
                "params": model.count_params(),
                "trainable_params": trainable_params(model),
                **file_entry(out, path),
            }
        )
    manifest = stamped({
        "strategy": config.strategy,
        "preset": config.preset,
        "classes": dataset.classes,
        "fusion": "joint" if config.strategy == "joint" else config.fusion,
        "embedding_type": config.embedding_type,
        "media": state.settings["media"],
        "features": state.settings["features"],
        "training": config.to_dict(),
        "training_devices": devices,
        "backbones": backbones,
        "heads": head_entries(out, head_files),
        "dataset": state.settings["dataset"],
        "skipped_clips": [{"file": str(c.path), "reason": r} for c, r in preparation_failures],
        "metrics": metrics,
        **trust,  # "calibration" and "unfamiliar" (avsc_core.train.calibrate)
        "history": {k: v.history for k, v in state.steps.items()},
    })
    write_manifest(out, manifest)


def is_chief() -> bool:
    """Whether this process writes the bundle: always, except for the non-chief workers of
    a multi-worker run (``TF_CONFIG``: the ``chief`` task, else worker 0, is the chief),
    which train in a folder of their own (:func:`_run_folder`)."""
    try:
        spec = json.loads(os.environ.get("TF_CONFIG") or "{}")
        task, cluster = spec.get("task") or {}, spec.get("cluster") or {}
    except (ValueError, AttributeError):
        return True
    if not task:
        return True
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type") == "worker" and task.get("index", 0) == 0


def train_model(
    data: str | Path,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    layout: str | None = None,
    media: MediaConfig | None = None,
    features: FeatureConfig | None = None,
    val_fraction: float | None = None,
    test_fraction: float | None = None,
    resume: bool = False,
    changes: Mapping[str, Any] | None = None,
    phases: Sequence[str] = PHASES,
    jobs: int | None = None,
    devices: Sequence[str] | int | None = None,
    cache_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Path:
    """Train a model on the dataset at ``data`` and write its bundle at ``out``.

    ``config.strategy`` chooses two-phase training (Phase I backbones, Phase II fusion
    heads) or joint optimisation (:mod:`avsc_core.train.joint`); both end in the same
    bundle layout. The run holds :class:`~avsc_core.locks.OutputLock` on ``out`` from
    start to end, so a second training into the same folder is refused at once.

    Parameters
    ----------
    config : TrainConfig, optional
        The settings of a new run (the ``paper`` defaults when omitted).
    layout, val_fraction, test_fraction : optional
        How a new run reads and splits the data (``"auto"``, 0.15, 0.15 when omitted).
    resume : bool
        Continue the interrupted run at ``out`` from its last completed epoch, with its
        saved settings (``media`` and ``features`` are then ignored). Settings asked for
        anew, as ``changes`` or as a ``config`` that differs from the saved one, are
        honoured or refused by the rules of :mod:`avsc_core.train.resume`; so are
        ``layout`` and the fractions when given.
    changes : mapping, optional
        With ``resume``: the settings the user gave explicitly, by
        :class:`TrainConfig` field name (``config`` is then ignored).
    phases : sequence of str
        ``("1",)`` stops after Phase I; a later call with ``resume`` and ``phases=("2",)``
        completes it.
    jobs : int, optional
        Processes decoding clips into the cache (all cores when omitted).
    devices : sequence of str or int, optional
        Devices to train on (``"/gpu:0"``...) or a number of GPUs; every visible GPU
        when omitted (:func:`~avsc_core.train.distribute.distribution_strategy`).
    cache_dir : path, optional
        The feature cache folder (:func:`~avsc_core.features.default_cache_dir` when
        omitted).

    Returns
    -------
    Path
        The bundle folder, complete with ``manifest.json`` once Phase II has run.

    Raises
    ------
    AvscError
        Before anything is written for data no model can learn from (fewer than two
        classes, a class without training clips) and for refused changes; before any
        clip is decoded for what the run needs from outside it (ImageNet weights files,
        the devices asked for, room for the feature cache); after decoding but before
        training when a network lacks its input (the message names the ``--backbones``
        that would work).
    """
    out = Path(out)
    check_output_folder(out, "model bundle")
    fractions = {"val_fraction": val_fraction, "test_fraction": test_fraction}
    if not resume:
        config = config or TrainConfig()
        _check_phases(config, phases)
        _check_settings(config)  # before the run folder is created
        split = {name: DEFAULT_FRACTION if value is None else value
                 for name, value in fractions.items()}
        dataset = load_dataset(data, layout or "auto", seed=config.seed, **split)
        check_classes(dataset)
    with _run_folder(out, resume) as work:
        if resume:
            state = _resume(work, config, changes, {"layout": layout, **fractions})
            # A resumed run's precision is the one it chose (its journal's).
            _, distribution = _preflight(TrainConfig.from_dict(state.settings["config"]),
                                         devices, state)
        else:
            _check_new_run_folder(work)
            config, distribution = _preflight(config, devices)
            state = _start(work, config, media or MediaConfig(), features or FeatureConfig(),
                           dataset, split)
        _run(data, work, state, phases, jobs, distribution, cache_dir, progress, cancel)
    return out


@contextlib.contextmanager
def _run_folder(out: Path, resume: bool) -> Iterator[Path]:
    """The folder this process trains in: ``out``, locked, for the chief (a process alone
    is one); for the other workers of a multi-worker run, a temporary folder of their own.

    Every worker keeps a journal and checkpoints (each restores them on ``--resume``),
    but only the chief's are the bundle's: the others' would clash with them in a shared
    ``out``. A worker's folder is removed when it finishes, fails or is cancelled; to
    resume, it starts from a copy of the chief's, so its ``out`` must then be the chief's
    folder (shared).
    """
    if is_chief():
        with OutputLock(out):
            yield out
        return
    remove_stale_worker_folders()
    with tempfile.TemporaryDirectory(prefix=WORKER_PREFIX) as scratch, OutputLock(scratch):
        work = Path(scratch) / (out.name or "model")
        work.mkdir()
        if resume:
            _copy_chief_folder(out, work)
        yield work


def remove_stale_worker_folders(root: Path | None = None,
                                min_age_s: float = STALE_WORKER_AGE_S) -> int:
    """Remove the folders of non-chief workers that were killed (a pre-empted cluster job):
    their copies of the checkpoints would otherwise stay in the temporary folder, run after
    run. A folder is stale when no live process holds its lock; one younger than
    ``min_age_s`` is left alone, since its worker may not have taken the lock yet.
    Returns how many were removed."""
    if locks.fcntl is None:
        return 0  # no advisory locks (Windows): a live worker's folder could not be told
    root = Path(root or tempfile.gettempdir())
    removed = 0
    for folder in root.glob(f"{WORKER_PREFIX}*"):
        try:
            if not folder.is_dir() or time.time() - folder.stat().st_mtime < min_age_s:
                continue
            with OutputLock(folder):
                shutil.rmtree(folder)
        except (OSError, AvscError):
            continue  # a live worker's, or not ours to remove
        removed += 1
    if removed:
        log.info("removed %d folder%s of killed training workers from %s",
                 removed, "s" if removed != 1 else "", root)
    return removed


def _copy_chief_folder(out: Path, work: Path) -> None:
    """Copy the chief's journal, checkpoints and trained files at ``out`` into ``work``."""
    if not (out / JOURNAL).is_file():
        raise AvscError(f"{out}: no interrupted run to resume; a worker other than the chief "
                        "resumes from the chief's journal and checkpoints, so --out must be "
                        "the chief's folder (shared) on every worker")
    for name in RUN_FOLDERS:
        if (out / name).is_dir():
            shutil.copytree(out / name, work / name)


def _preflight(config: TrainConfig, devices: Sequence[str] | int | None,
               state: TrainState | None = None):
    """Resolve what the run needs from outside before any clip is decoded: the devices,
    the precision they decide and the ImageNet weights files (of the networks that the
    journal ``state`` of a resumed run does not list as finished).

    Returns
    -------
    config : TrainConfig
        ``config`` with its precision resolved (``"mixed"`` or ``"float32"``).
    distribution : tf.distribute.Strategy
        The strategy over the devices.

    Raises
    ------
    AvscError
        One line each: devices that are not there, weights files that are nowhere.
    """
    from avsc_core.train.distribute import distribution_strategy, uses_gpu
    from avsc_core.train.precision import resolve_precision

    distribution = distribution_strategy(devices)
    precision = resolve_precision(config.precision, uses_gpu(distribution))
    finished = {name for name, step in state.steps.items() if step.finished} if state else set()
    names = _imagenet_backbones(config, finished)
    if names:
        from avsc_core.models.weights import resolve_imagenet_files

        resolve_imagenet_files(names)
    return dataclasses.replace(config, precision=precision), distribution


def _imagenet_backbones(config: TrainConfig, finished: set[str]) -> list[str]:
    """The visual backbones whose ImageNet weights file the steps not ``finished`` start
    from (a step in progress too: its network is built from them, then checkpointed)."""
    if config.preset == "tiny" or config.visual_weights != "imagenet":
        return []
    if config.strategy == "joint":
        from avsc_core.train.joint import image_model_backbone

        return [] if JOINT_STEP in finished else [image_model_backbone(config.joint_image_model)]
    return [b for b in config.visual_backbones if phase1_step(b) not in finished]


def _run(
    data: str | Path,
    out: Path,
    state: TrainState,
    phases: Sequence[str],
    jobs: int | None,
    distribution,
    cache_dir: str | Path | None,
    progress: ProgressCallback | None,
    cancel: Callable[[], bool] | None,
) -> Path:
    """Decode, check, train (under the ``tf.distribute`` strategy ``distribution``) and
    write the bundle of the run ``state`` describes."""
    config = TrainConfig.from_dict(state.settings["config"])
    _check_phases(config, phases)
    media = MediaConfig.from_dict(state.settings["media"])
    features = FeatureConfig.from_dict(state.settings["features"])
    dataset = Dataset.from_dict(state.settings["dataset"], root=data)
    check_classes(dataset)  # journals of older versions were written without this check
    classes = dataset.classes

    parts = _parts(config)
    joint = config.strategy == "joint"
    kinds, frames = inputs_needed(feature for _, feature in parts.values())
    preparation = prepare_clips(
        dataset.clips,
        media,
        features,
        cache_dir,
        kinds=kinds,
        frames=frames,
        jobs=jobs,
        progress=progress,
        cancel=cancel,
    )
    if progress:
        report = preparation_report(dataset, preparation, media, kinds, frames)
        progress(Progress("check", 1, 1, {"report": report.format()}))
    clips = preparation.clips
    train = [c for c in clips if c.clip.split == "train"]
    val = [c for c in clips if c.clip.split == "val"]
    check_prepared(data, dataset, train, config, parts)

    from avsc_core.train.stage import RunContext

    context = RunContext(out, state, config, tuple(classes), distribution, media, features,
                         progress, cancel)
    if joint:
        from avsc_core.train.joint import train_joint

        backbone_files, head_files = train_joint(context, train, val)
        embeddings = _cached_embeddings(context, backbone_files, clips, parts)
    else:
        trained = _train_two_phase(context, train, val, clips, parts, phases)
        if trained is None:
            return out
        backbone_files, head_files, embeddings = trained
    if not is_chief():
        # Training is the work the workers share (in step); calibration, metrics and the
        # manifest are the chief's alone.
        return out

    from avsc_core.train.calibrate import calibrate

    segment_probs = segment_probabilities(
        head_files, embeddings, len(classes), config.embedding_type
    )
    trust = calibrate(out, segment_probs, embeddings, clips, classes)
    metrics = training_metrics(
        segment_probs, embeddings, clips, classes, trust["calibration"]["temperatures"]
    )
    _write_manifest(
        out,
        state,
        dataset,
        backbone_files,
        head_files,
        metrics,
        preparation.failures,
        distribution.num_replicas_in_sync,
        parts,
        trust,
    )
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    (out / EMBEDDINGS_CACHE).unlink(missing_ok=True)
    return out


def _cached_embeddings(
    context: RunContext,
    backbone_files: dict[str, Path],
    clips: list[PreparedClip],
    parts: dict[str, tuple[str, str]],
):
    """Every segment's embeddings from the trained backbones, computed once per run."""
    from avsc_core.train.phase2 import Embeddings, compute_embeddings

    state, progress, cancel = context.state, context.progress, context.cancel
    cache_file = context.out / EMBEDDINGS_CACHE
    step = state.step(EMBEDDINGS_STEP)
    if step.finished and cache_file.exists():
        return Embeddings.load(cache_file)
    embeddings = compute_embeddings(
        {name: (path, parts[name][1]) for name, path in backbone_files.items()},
        clips, progress, cancel,
    )
    embeddings.save(cache_file)
    step.finished = True
    state.save()
    return embeddings


def _parts(config: TrainConfig) -> dict[str, tuple[str, str]]:
    """``{backbone: (modality, feature)}`` of the model ``config`` trains, from the
    registry (the joint acoustic encoder takes ``config.joint_feature``)."""
    names = (JOINT_AUDIO, JOINT_VISUAL) if config.strategy == "joint" else config.backbones
    entries = [backbone_entry(name) for name in names]
    return {e.name: (e.modality, e.feature_in(config.joint_feature)) for e in entries}


def _check_settings(config: TrainConfig) -> None:
    """Refuse settings that cannot work, so that they fail before any decoding.

    Raises
    ------
    AvscError
        A weights folder without the needed file, more stages than the image model has.
    """
    if config.strategy == "joint":
        from avsc_core.train.joint import joint_visual_weights

        joint_visual_weights(config)
        return
    from avsc_core.train.phase1 import visual_weights_argument

    for name in config.visual_backbones:
        visual_weights_argument(config, name)


def _train_two_phase(
    context: RunContext,
    train: list[PreparedClip],
    val: list[PreparedClip],
    clips: list[PreparedClip],
    parts: dict[str, tuple[str, str]],
    phases: Sequence[str],
):
    """Phase I and Phase II: backbone files, head files and the embeddings the heads were
    trained on; ``None`` when ``phases`` stops after Phase I."""
    from avsc_core.train.phase1 import train_backbone

    config, state = context.config, context.state
    backbone_files = {}
    for name in config.backbones:
        if "1" in phases or state.step(phase1_step(name)).finished:
            backbone_files[name] = train_backbone(context, name, train, val)
    if "2" not in phases:
        return None
    missing = [b for b in config.backbones if b not in backbone_files]
    if missing:
        raise AvscError(f"{context.out}: Phase I is not finished for {', '.join(missing)}")

    from avsc_core.train.phase2 import head_inputs, train_head

    embeddings = _cached_embeddings(context, backbone_files, clips, parts)
    head_files = {}
    for head in HEADS:
        inputs = head_inputs(head, embeddings.backbones())
        if not inputs:
            continue
        path = train_head(context, head, inputs, embeddings, clips)
        if path is not None:
            head_files[head] = (path, inputs)
    return backbone_files, head_files, embeddings
