"""Adapting a model bundle: new heads learnt from the files a person reviewed.

In order, with nothing written before every check has passed:

1. The reviewed files (:mod:`avsc_core.adapt.reviewed`) are split per class, seeded, into
   files to learn from and ``holdout`` files held out, by the rule of
   :func:`avsc_core.datasets.assign_splits` (a class of two files or more keeps one and
   holds one out).
2. Every file is decoded into the feature cache and run once through the model's
   backbones, which stay as they are (:func:`avsc_core.train.phase2.compute_embeddings`).
3. New heads are trained on the kept files' embeddings as Phase II trains them
   (:func:`avsc_core.train.phase2.train_head`: the model's fusion, mixup, its Phase II
   epochs unless ``epochs`` is given): the ``audio``, ``visual`` and ``fused`` heads of a
   two-phase model; the classifier (``fused``) of a joint one, whose ``audio`` and
   ``visual`` heads are its encoders' own last layer and are kept. The held-out files
   play no part, not even in choosing the best epoch (the training figures choose it). A
   head that no kept file has the inputs of is kept too.
4. The temperatures and the unfamiliarity score are fitted again
   (:func:`avsc_core.train.calibrate.calibrate`): the temperatures on the held-out
   files, the class means on the kept ones, which are now the data the heads know. Where
   there are too few held-out files, the manifest says why nothing was fitted.
5. The held-out files are scored as ``avsc evaluate`` scores clips
   (:func:`avsc_core.train.run.training_metrics`), with the old heads and temperatures
   (``before``) and the new ones (``after``). The new temperatures were fitted on these
   very files, so ``after``'s log loss flatters it; its ``uncalibrated`` figures do not.
6. The bundle is written into a temporary folder beside ``out`` (the backbones copied,
   the new heads, a manifest with every checksum and an ``adapted`` record), then renamed
   into place: ``out`` is complete or absent. The model adapted is only read.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avsc_core.adapt import HOLDOUT
from avsc_core.adapt.reviewed import Reviewed, check_reviewed, read_reviewed
from avsc_core.atomic import current_umask
from avsc_core.backbones import FUSED, inputs_needed
from avsc_core.bundle import MANIFEST, Bundle, load_bundle
from avsc_core.bundle.manifest import (
    head_entries,
    now,
    sha256,
    stamped,
    write_manifest,
)
from avsc_core.datasets import Clip, assign_splits
from avsc_core.errors import AvscError
from avsc_core.features.prepare import PreparedClip, prepare_clips
from avsc_core.inference.calibration import temperatures
from avsc_core.locks import OutputLock
from avsc_core.outputs import check_output_folder
from avsc_core.progress import ProgressCallback
from avsc_core.train.settings import TrainConfig
from avsc_core.train.state import JOURNAL, TrainState

if TYPE_CHECKING:
    import keras

    from avsc_core.train.phase2 import Embeddings

# The split of the held-out files: the one calibration fits on and the metrics score.
HELD_OUT = "val"
# Their split while the heads train: one train_head does not validate on.
UNSEEN = "test"
LEARNT = "train"

HeadFiles = dict[str, tuple[Path, list[str]]]


@dataclass(frozen=True)
class AdaptSummary:
    """What :func:`adapt_model` did.

    Attributes
    ----------
    out : Path
        The new bundle.
    files, holdout : int
        Reviewed files used (those that could be read), and how many were held out.
    heads : tuple of str
        The heads trained anew; the model's other heads were copied.
    before, after : dict or None
        Per-branch metrics of the held-out files
        (:func:`~avsc_core.evaluation.metrics.score_clips`) with the old model and with
        the new one; ``None`` when no file was held out.
    unlearnt : tuple of str
        Classes of the model that no kept file has: the new heads hardly ever answer them.
    skipped : tuple of (str, str)
        Reviewed files that could not be read, and why.
    """

    out: Path
    files: int
    holdout: int
    heads: tuple[str, ...]
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    unlearnt: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]


def adapt_model(
    model: str | Path,
    labels_csv: str | Path,
    out: str | Path,
    folder: str | Path | None = None,
    holdout: float = HOLDOUT,
    epochs: int | None = None,
    seed: int = 0,
    *,
    jobs: int | None = None,
    cache_dir: str | Path | None = None,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
) -> AdaptSummary:
    """Write at ``out`` a copy of ``model`` whose heads learnt from a reviewed labels CSV.

    See the module docstring for the steps. TensorFlow loads only once the inputs have
    passed their checks.

    Parameters
    ----------
    model : str or Path
        The bundle to adapt; it is only read.
    labels_csv : str or Path
        A labels CSV whose ``reviewed_label`` a person filled in for the files checked.
    out : str or Path
        The new bundle: a new or empty folder.
    folder : str or Path, optional
        Where the CSV's files are (by default the folder its parameters file records,
        else the CSV's own).
    holdout : float
        Share of each class's reviewed files held out to score the model before and after.
    epochs : int, optional
        Epochs of each new head (the model's Phase II epochs when omitted).
    seed : int
        Seeds the held-out choice, the heads' initial weights, shuffling and mixup.
    jobs, cache_dir : optional
        Decoding processes and the feature cache folder, as for training.

    Returns
    -------
    AdaptSummary

    Raises
    ------
    AvscError
        Bad options; an unreadable model or CSV; no reviewed row; reviewed classes the
        model does not know; missing files; an ``out`` that is not empty or is inside
        ``model``; no kept file that any head can learn from.
    """
    model, out = Path(model), Path(out)
    _check_options(holdout, epochs, seed)
    bundle = load_bundle(model)
    _check_out(out, model)
    reviewed = read_reviewed(labels_csv, folder)
    check_reviewed(reviewed, bundle.classes)
    config = _config(bundle, epochs, seed)
    clips = _split(reviewed, holdout, seed)
    with OutputLock(out):
        work = _work_folder(out)
        try:
            summary = _adapt(bundle, reviewed, clips, config, work, out, jobs, cache_dir,
                             progress, cancel)
            os.replace(work, out)  # an empty ``out`` is replaced, a non-empty one refused
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    return summary


def _check_options(holdout: float, epochs: int | None, seed: int) -> None:
    if not 0 <= holdout < 1:
        raise AvscError(f"--holdout must be at least 0 and below 1, got {holdout}")
    if epochs is not None and epochs < 1:
        raise AvscError(f"--epochs must be at least 1, got {epochs}")
    if seed < 0:
        raise AvscError(f"--seed must be at least 0, got {seed}")


def _check_out(out: Path, model: Path) -> None:
    check_output_folder(out, "model bundle")
    resolved = out.resolve()
    if model.resolve() in (resolved, *resolved.parents):
        raise AvscError(f"{out}: is inside the model {model}, which adapt never changes; "
                        "choose another --out")
    if out.is_dir() and any(out.iterdir()):
        raise AvscError(f"{out}: folder exists and is not empty; choose another --out")


def _config(bundle: Bundle, epochs: int | None, seed: int) -> TrainConfig:
    """The model's training settings, with the epochs and seed of this adaptation."""
    try:
        config = TrainConfig.from_dict(bundle.manifest.get("training", {}))
    except (TypeError, ValueError) as exc:
        raise AvscError(f"{bundle.root}: manifest 'training' settings are invalid: {exc}") from None
    return dataclasses.replace(config, seed=seed,
                               phase2_epochs=epochs or config.phase2_epochs)


def _split(reviewed: Reviewed, holdout: float, seed: int) -> list[Clip]:
    """One clip per reviewed file, in ``train`` or held out in :data:`HELD_OUT`."""
    splits = assign_splits([f.label for f in reviewed.files], [f.file for f in reviewed.files],
                           val_fraction=holdout, test_fraction=0.0, seed=seed)
    return [Clip.from_media(f.path, f.label, split, f.file)
            for f, split in zip(reviewed.files, splits)]


def _work_folder(out: Path) -> Path:
    """A new folder beside ``out``, named as the atomic writes name their temporary files."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    # mkdtemp makes it private; a bundle gets the mode a plain mkdir gives, for a team.
    os.chmod(work, 0o777 & ~current_umask())
    return work


def _adapt(
    bundle: Bundle,
    reviewed: Reviewed,
    clips: list[Clip],
    config: TrainConfig,
    work: Path,
    out: Path,
    jobs: int | None,
    cache_dir: str | Path | None,
    progress: ProgressCallback | None,
    cancel: Callable[[], bool] | None,
) -> AdaptSummary:
    """Train the heads and write the whole new bundle into ``work``."""
    from avsc_core.train.calibrate import calibrate
    from avsc_core.train.phase2 import compute_embeddings
    from avsc_core.train.run import segment_probabilities

    features = {name: bundle.backbone_feature(name) for name in bundle.backbone_names}
    kinds, frames = inputs_needed(features.values())
    preparation = prepare_clips(clips, bundle.media, bundle.features, cache_dir, kinds=kinds,
                                frames=frames, jobs=jobs,
                                progress=progress, cancel=cancel)
    prepared = preparation.clips
    if not any(c.clip.split == LEARNT for c in prepared):
        raise AvscError(f"{reviewed.csv}: none of the reviewed files to learn from could be "
                        f"read ({preparation.failures[0][1]})")
    backbones = {name: (bundle.root / bundle.backbone_entry(name)["file"], feature)
                 for name, feature in features.items()}
    embeddings = compute_embeddings(backbones, prepared, progress, cancel)
    trained, state = _train_heads(bundle, config, embeddings, prepared, work, progress, cancel)
    if not trained:
        raise AvscError(f"{reviewed.csv}: no reviewed file to learn from has what the model's "
                        f"heads take ({_head_inputs(bundle)})")
    heads = {name: trained.get(name) or (_copy(bundle.root, work, entry["file"]), entry["inputs"])
             for name, entry in bundle.manifest["heads"].items()}
    n_classes, kind = len(bundle.classes), config.embedding_type
    after_probs = segment_probabilities(heads, embeddings, n_classes, kind)
    trust = calibrate(work, after_probs, embeddings, prepared, bundle.classes)
    before_probs = segment_probabilities(_model_heads(bundle), embeddings, n_classes, kind)
    held = sum(c.clip.split == HELD_OUT for c in prepared)
    learnt = {c.clip.label for c in prepared if c.clip.split == LEARNT}
    summary = AdaptSummary(
        out=out,
        files=len(prepared),
        holdout=held,
        heads=tuple(trained),
        before=_held_out_metrics(before_probs, embeddings, prepared, bundle.classes,
                                 temperatures(bundle.manifest)),
        after=_held_out_metrics(after_probs, embeddings, prepared, bundle.classes,
                                trust["calibration"]["temperatures"]),
        unlearnt=tuple(c for c in bundle.classes if c not in learnt),
        skipped=tuple((str(c.path), reason) for c, reason in preparation.failures),
    )
    for entry in bundle.manifest["backbones"]:
        _copy(bundle.root, work, entry["file"])
    shutil.rmtree(work / JOURNAL.parent)  # the heads' journal and checkpoints
    history = {name: step.history for name, step in state.steps.items()}
    write_manifest(work, _manifest(bundle, work, heads, trust, history,
                                   _adapted_record(bundle, reviewed, config, summary)))
    return summary


def _retrained(bundle: Bundle) -> dict[str, list[str]]:
    """The heads trained anew, with the backbones each takes."""
    heads = {name: list(entry["inputs"]) for name, entry in bundle.manifest["heads"].items()}
    if bundle.strategy == "joint":
        # Its audio and visual heads are copies of its encoders' last layer.
        return {name: inputs for name, inputs in heads.items() if name == FUSED}
    return heads


def _head_inputs(bundle: Bundle) -> str:
    return "; ".join(f"{name}: {' + '.join(inputs)}" for name, inputs in _retrained(bundle).items())


def _joint_classifier(config: TrainConfig, n_classes: int) -> Callable[[dict[str, int]], keras.Model]:
    """A joint model's classifier, as joint optimisation builds it, for ``train_head``."""
    from avsc_core.models.joint import build_scene_classifier
    from avsc_core.train.joint import joint_net_config

    net = joint_net_config(config)
    return lambda dims: build_scene_classifier(dims, n_classes, net.head_dropout, net.l2)


def _train_heads(
    bundle: Bundle,
    config: TrainConfig,
    embeddings: Embeddings,
    prepared: list[PreparedClip],
    work: Path,
    progress: ProgressCallback | None,
    cancel: Callable[[], bool] | None,
) -> tuple[HeadFiles, TrainState]:
    """The heads :func:`_retrained` names, trained on the kept files; and their journal."""
    from avsc_core.train.distribute import distribution_strategy
    from avsc_core.train.phase2 import train_head
    from avsc_core.train.stage import RunContext

    # train_head chooses the best epoch on "val": the held-out files must not choose it.
    training = [_in_split(c, UNSEEN) if c.clip.split == HELD_OUT else c for c in prepared]
    state = TrainState(work / JOURNAL, {"config": config.to_dict()})
    context = RunContext(work, state, config, tuple(bundle.classes), distribution_strategy(),
                         bundle.media, bundle.features, progress, cancel)
    build = _joint_classifier(config, len(bundle.classes)) if bundle.strategy == "joint" else None
    trained: HeadFiles = {}
    for head, inputs in _retrained(bundle).items():
        path = train_head(context, head, inputs, embeddings, training, build=build)
        if path is not None:
            trained[head] = (path, inputs)
    return trained, state


def _in_split(prepared: PreparedClip, split: str) -> PreparedClip:
    return dataclasses.replace(prepared, clip=dataclasses.replace(prepared.clip, split=split))


def _copy(root: Path, work: Path, relative: str) -> Path:
    """Copy the bundle file ``relative`` of ``root`` to the same place in ``work``."""
    target = work / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / relative, target)
    return target


def _model_heads(bundle: Bundle) -> HeadFiles:
    return {name: (bundle.root / entry["file"], list(entry["inputs"]))
            for name, entry in bundle.manifest["heads"].items()}


def _held_out_metrics(
    segment_probs: dict[str, Any],
    embeddings: Embeddings,
    prepared: list[PreparedClip],
    classes: list[str],
    scales: dict[str, float],
) -> dict[str, Any] | None:
    """Per-branch metrics of the held-out files, calibrated with ``scales``."""
    from avsc_core.train.run import training_metrics

    held_out = training_metrics(segment_probs, embeddings, prepared, classes, scales)[HELD_OUT]
    return held_out["branches"] if held_out["n"] else None


def _adapted_record(
    bundle: Bundle, reviewed: Reviewed, config: TrainConfig, summary: AdaptSummary
) -> dict[str, Any]:
    """``manifest["adapted"]``: what the bundle was adapted from and on, and how it did."""
    return {
        "from": sha256(bundle.root / MANIFEST),
        "model": str(bundle.root.resolve()),
        "labels": str(reviewed.csv.resolve()),
        "folder": str(reviewed.folder.resolve()),
        "files": summary.files,
        "holdout": summary.holdout,
        "heads": list(summary.heads),
        "epochs": config.phase2_epochs,
        "seed": config.seed,
        "before": summary.before,
        "after": summary.after,
        "skipped": [{"file": file, "reason": reason} for file, reason in summary.skipped],
        "created": now(),
    }


def _manifest(
    bundle: Bundle,
    work: Path,
    heads: HeadFiles,
    trust: dict[str, dict[str, Any]],
    history: dict[str, list],
    adapted: dict[str, Any],
) -> dict[str, Any]:
    """The model's manifest with the new heads, calibration, metrics and checksums.

    Its exports are left out: they are copies of the old heads.
    """
    manifest = {key: value for key, value in bundle.manifest.items() if key != "exports"}
    after = adapted["after"]
    manifest.update(stamped({
        # Byte copies of the files load_bundle has just checked: their entries stand.
        "backbones": [dict(entry) for entry in bundle.manifest["backbones"]],
        "heads": head_entries(work, heads),
        # The old metrics scored the old heads; the held-out files score the new ones.
        "metrics": {"holdout": {"n": adapted["holdout"], "branches": after}} if after else {},
        "history": {**bundle.manifest.get("history", {}), **history},
        **trust,  # "calibration" and "unfamiliar", fitted again
        "adapted": adapted,
    }, created=adapted["created"]))
    return manifest
