"""Training a model bundle end to end: prepare, train (two-phase or joint), metrics, manifest.

The bundle folder doubles as the run's working folder: ``training/state.json`` (the
resume journal), ``training/checkpoints/`` and ``training/embeddings.npz`` live there
until the manifest is written, which is the last step and marks the bundle complete.
"""

from __future__ import annotations

import datetime
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avsc_core import __version__
from avsc_core.atomic import write_json
from avsc_core.bundle.manifest import FORMAT, MANIFEST, SCHEMA_VERSION, file_entry
from avsc_core.config import FeatureConfig, MediaConfig
from avsc_core.datasets import Dataset, load_dataset
from avsc_core.datasets.check import DatasetReport
from avsc_core.datasets.types import SPLITS
from avsc_core.errors import AvscError
from avsc_core.evaluation import branch_metrics
from avsc_core.models import trainable_params
from avsc_core.models.presets import backbone_spec
from avsc_core.progress import Progress, ProgressCallback
from avsc_core.train.prepare import Preparation, PreparedClip, prepare_clips
from avsc_core.train.settings import TrainConfig
from avsc_core.train.state import TrainState

PHASES = ("1", "2")


def _start_or_resume(
    data: str | Path,
    out: Path,
    config: TrainConfig,
    media: MediaConfig,
    features: FeatureConfig,
    layout: str,
    val_fraction: float,
    test_fraction: float,
    resume: bool,
) -> TrainState:
    state_path = out / "training" / "state.json"
    if (out / MANIFEST).exists():
        raise AvscError(f"{out}: a trained model is already there; choose another --out")
    if state_path.exists():
        if not resume:
            raise AvscError(
                f"{out}: holds an interrupted training run; add --resume to continue it "
                "or choose another --out"
            )
        return TrainState.load(state_path)
    if resume:
        raise AvscError(f"{out}: no interrupted training run to resume")
    if out.exists() and any(out.iterdir()):
        raise AvscError(f"{out}: folder exists and is not empty; choose another --out")
    dataset = load_dataset(data, layout, val_fraction, test_fraction, config.seed)
    state = TrainState(
        state_path,
        {
            "config": config.to_dict(),
            "media": media.to_dict(),
            "features": features.to_dict(),
            "dataset": dataset.to_dict(),
        },
    )
    state.save()
    return state


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


def _clip_metrics(
    probs_by_row: np.ndarray,
    clip_index: np.ndarray,
    clips: Sequence[PreparedClip],
    classes: Sequence[str],
    split: str,
) -> tuple[np.ndarray, np.ndarray]:
    lookup = {c: i for i, c in enumerate(classes)}
    labels, probs = [], []
    for i, clip in enumerate(clips):
        if clip.clip.split != split:
            continue
        rows = probs_by_row[clip_index == i]
        rows = rows[~np.isnan(rows[:, 0])]
        if len(rows):
            labels.append(lookup[clip.clip.label])
            probs.append(rows.mean(axis=0))
    return np.array(labels, int), np.array(probs).reshape(-1, len(classes))


def _head_metrics(
    heads: dict[str, tuple[Path, list[str]]],
    embeddings,
    clips: Sequence[PreparedClip],
    classes: Sequence[str],
    config: TrainConfig,
) -> dict[str, Any]:
    """Clip-level metrics of each branch on the validation and test splits."""
    import keras

    kind = config.embedding_type
    branch_probs: dict[str, np.ndarray] = {}
    for head, (path, inputs) in heads.items():
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
        probs = np.full((len(embeddings.clip_index), len(classes)), np.nan, np.float32)
        mask = embeddings.available(inputs)
        if mask.any():
            probs[mask] = model.predict_on_batch(
                {n: embeddings.values[n][kind][mask] for n in inputs}
            )
        branch_probs[head] = probs
    if "fused" not in branch_probs:
        branch_probs["fused"] = branch_probs.get("audio", branch_probs.get("visual"))
    result: dict[str, Any] = {}
    for split in ("val", "test"):
        entry: dict[str, Any] = {"branches": {}}
        for branch in ("audio", "visual", "fused"):
            if branch_probs.get(branch) is None:
                entry["branches"][branch] = None
                continue
            labels, probs = _clip_metrics(
                branch_probs[branch], embeddings.clip_index, clips, classes, split
            )
            entry["branches"][branch] = (
                branch_metrics(labels, probs, classes) if len(labels) else None
            )
            entry["n"] = max(entry.get("n", 0), len(labels))
        result[split] = entry
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
    heads = {
        head: {"inputs": inputs, **file_entry(out, path)}
        for head, (path, inputs) in head_files.items()
    }
    manifest = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "avsc_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
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
        "heads": heads,
        "dataset": state.settings["dataset"],
        "skipped_clips": [{"file": str(c.path), "reason": r} for c, r in preparation_failures],
        "metrics": metrics,
        "history": {k: v.history for k, v in state.steps.items()},
    }
    write_json(out / MANIFEST, manifest)


def train_model(
    data: str | Path,
    out: str | Path,
    config: TrainConfig,
    *,
    layout: str = "auto",
    media: MediaConfig | None = None,
    features: FeatureConfig | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    resume: bool = False,
    phases: Sequence[str] = PHASES,
    jobs: int = 1,
    devices: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Path:
    """Train a model on the dataset at ``data`` and write its bundle at ``out``.

    ``config.strategy`` chooses two-phase training (Phase I backbones, Phase II fusion
    heads) or joint optimisation (:mod:`avsc_core.train.joint`); both end in the same
    bundle layout.

    With ``resume``, an interrupted run at ``out`` continues from its last completed
    epoch with its own saved settings (``config``, ``media``, ``features`` are then
    ignored). ``phases=("1",)`` stops after Phase I; a later call with ``resume`` and
    ``phases=("2",)`` completes it.

    Returns
    -------
    Path
        The bundle folder, complete with ``manifest.json`` once Phase II has run.
    """
    out = Path(out)
    if config.strategy == "joint" and tuple(phases) != PHASES:
        raise AvscError("--phase applies to two-phase training; joint optimisation has one phase")
    if not resume:
        _check_settings(config)  # before the run folder is created
    state = _start_or_resume(
        data,
        out,
        config,
        media or MediaConfig(),
        features or FeatureConfig(),
        layout,
        val_fraction,
        test_fraction,
        resume,
    )
    config = TrainConfig.from_dict(state.settings["config"])
    media = MediaConfig.from_dict(state.settings["media"])
    features = FeatureConfig.from_dict(state.settings["features"])
    dataset = Dataset.from_dict(state.settings["dataset"], root=data)
    classes = dataset.classes

    parts = _check_settings(config)
    joint = config.strategy == "joint"
    kinds = tuple(dict.fromkeys(f for m, f in parts.values() if m == "audio"))
    frames = any(m == "visual" for m, _ in parts.values())
    preparation = prepare_clips(
        dataset.clips,
        media,
        features,
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
    if not train:
        raise AvscError(f"{data}: no readable training clips")

    from avsc_core.train.distribute import distribution_strategy

    distribution = distribution_strategy(devices)
    if joint:
        from avsc_core.train.joint import train_joint

        backbone_files, head_files = train_joint(
            train, val, classes, config, media, features, out, state, distribution,
            progress, cancel,
        )
        embeddings = _cached_embeddings(out, state, backbone_files, clips, parts, progress,
                                        cancel)
    else:
        trained = _train_two_phase(
            train, val, clips, classes, config, media, features, out, state, distribution,
            parts, phases, progress, cancel,
        )
        if trained is None:
            return out
        backbone_files, head_files, embeddings = trained

    metrics = _head_metrics(head_files, embeddings, clips, classes, config)
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
    )
    shutil.rmtree(out / "training" / "checkpoints", ignore_errors=True)
    (out / EMBEDDINGS_CACHE).unlink(missing_ok=True)
    return out


EMBEDDINGS_CACHE = Path("training") / "embeddings.npz"


def _cached_embeddings(
    out: Path,
    state: TrainState,
    backbone_files: dict[str, Path],
    clips: list[PreparedClip],
    parts: dict[str, tuple[str, str]],
    progress: ProgressCallback | None,
    cancel: Callable[[], bool] | None,
):
    """Every segment's embeddings from the trained backbones, computed once per run."""
    from avsc_core.train.phase2 import Embeddings, compute_embeddings

    cache_file = out / EMBEDDINGS_CACHE
    step = state.step("phase2:embeddings")
    if step.finished and cache_file.exists():
        return Embeddings.load(cache_file)
    embeddings = compute_embeddings(
        backbone_files, clips, progress, cancel, {n: f for n, (_, f) in parts.items()}
    )
    embeddings.save(cache_file)
    step.finished = True
    state.save()
    return embeddings


def _check_settings(config: TrainConfig) -> dict[str, tuple[str, str]]:
    """``{backbone: (modality, feature)}`` of the model ``config`` trains.

    Raises
    ------
    AvscError
        Settings that cannot work (a weights folder without the needed file, more stages
        than the image model has), so that they fail before any decoding.
    """
    from avsc_core.train.phase1 import visual_weights_argument

    if config.strategy == "joint":
        from avsc_core.train.joint import joint_parts, joint_visual_weights

        joint_visual_weights(config)
        return joint_parts(config)
    for name in config.visual_backbones:
        visual_weights_argument(config, name)
    return {b: (backbone_spec(b).modality, backbone_spec(b).feature) for b in config.backbones}


def _train_two_phase(
    train: list[PreparedClip],
    val: list[PreparedClip],
    clips: list[PreparedClip],
    classes: list[str],
    config: TrainConfig,
    media: MediaConfig,
    features: FeatureConfig,
    out: Path,
    state: TrainState,
    distribution,
    parts: dict[str, tuple[str, str]],
    phases: Sequence[str],
    progress: ProgressCallback | None,
    cancel: Callable[[], bool] | None,
):
    """Phase I and Phase II: backbone files, head files and the embeddings the heads were
    trained on; ``None`` when ``phases`` stops after Phase I."""
    from avsc_core.train.phase1 import train_backbone

    backbone_files = {}
    for name in config.backbones:
        if "1" in phases or state.step(f"phase1/{name}").finished:
            backbone_files[name] = train_backbone(
                name,
                train,
                val,
                classes,
                config,
                media,
                features,
                out,
                state,
                distribution,
                progress,
                cancel,
            )
    if "2" not in phases:
        return None
    missing = [b for b in config.backbones if b not in backbone_files]
    if missing:
        raise AvscError(f"{out}: Phase I is not finished for {', '.join(missing)}")

    from avsc_core.train.phase2 import HEADS, head_inputs, train_head

    embeddings = _cached_embeddings(out, state, backbone_files, clips, parts, progress, cancel)
    head_files = {}
    for head in HEADS:
        inputs = head_inputs(head, embeddings.backbones())
        if not inputs:
            continue
        path = train_head(
            head,
            inputs,
            embeddings,
            clips,
            classes,
            config,
            out,
            state,
            distribution,
            progress,
            cancel,
        )
        if path is not None:
            head_files[head] = (path, inputs)
    return backbone_files, head_files, embeddings
