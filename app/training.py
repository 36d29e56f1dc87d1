"""Training from the app, without Qt: the job description and the live training report.

:class:`TrainJob` says what the training process must do (optionally make the sample
data first); :class:`TrainingReport` turns the process's progress events into the
curves, the current step and the time left that the wizard shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avsc_core.bundle.history import epoch_metric
from avsc_core.progress import Progress
from avsc_core.train import TrainConfig
from avsc_core.train.state import (
    DEFAULT_FRACTION,
    EMBEDDINGS_STEP,
    JOINT_STEP,
    PHASE1,
    PHASE2,
    read_journal,
    step_parts,
)

# The sample model: five synthetic scenes (street_traffic among them, to try on real
# street videos), small enough to make and train in a few minutes on a laptop CPU.
SAMPLE_CLASSES = ("bus", "park", "shopping_mall", "street_pedestrian", "street_traffic")
SAMPLE_PER_CLASS = 8
SAMPLE_SECONDS = 6.0
SAMPLE_BACKBONES = ("aud-mel", "vis-inc")

STAGE_TITLES = {
    "sample-data": "Making the sample data",
    "prepare": "Decoding clips and computing features",
    EMBEDDINGS_STEP: "Phase II: computing embeddings",
    JOINT_STEP: "Joint optimisation: acoustic encoder, image layers and classifier",
    "evaluate": "Scoring the test clips",
}


@dataclass(frozen=True)
class SampleSpec:
    """Synthetic data to generate before training (``avsc sample-data``)."""

    out: str
    classes: tuple[str, ...] = SAMPLE_CLASSES
    per_class: int = SAMPLE_PER_CLASS
    seconds: float = SAMPLE_SECONDS
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"classes": list(self.classes), "per_class": self.per_class,
                "seconds": self.seconds, "seed": self.seed}


@dataclass(frozen=True)
class TrainJob:
    """Everything the training process needs.

    Attributes
    ----------
    data : str
        Dataset folder, CSV file or TAU 2021 root.
    out : str
        The bundle folder to write (also the run's working folder, for resume).
    config : TrainConfig
    layout : str
    resume : bool
        Continue the interrupted run at ``out``.
    sample : SampleSpec or None
        Generate this synthetic dataset at ``data`` first.
    cache_dir : str or None
        The feature cache folder (the app setting; the default folder when None).
    jobs : int
        Processes decoding clips into the cache; 0 for one per core.
    devices : str
        The GPUs to train on, as ``avsc train --devices`` takes them; blank for every
        visible GPU.
    val_fraction, test_fraction : float
        How a new run splits data that does not split itself (a resumed run keeps the
        split it drew).
    """

    data: str
    out: str
    config: TrainConfig
    layout: str = "auto"
    resume: bool = False
    sample: SampleSpec | None = None
    cache_dir: str | None = None
    jobs: int = 0
    devices: str = ""
    val_fraction: float = DEFAULT_FRACTION
    test_fraction: float = DEFAULT_FRACTION


def sample_job(data_dir: Path, models_dir: Path, stamp: str,
               cache_dir: str | None = None) -> TrainJob:
    """The "Make a sample model" job: sample data in ``data_dir``, model in ``models_dir``."""
    config = TrainConfig.for_preset("tiny", backbones=SAMPLE_BACKBONES)
    return TrainJob(
        data=str(data_dir), out=str(models_dir / f"sample-{stamp}"), config=config,
        layout="folders", sample=SampleSpec(str(data_dir)), cache_dir=cache_dir,
    )


def stage_title(stage: str) -> str:
    """A stage name as a user reads it: ``phase1:aud-mel`` -> ``Phase I: aud-mel``."""
    if stage in STAGE_TITLES:
        return STAGE_TITLES[stage]
    phase, model = step_parts(stage)
    if phase == PHASE1:
        return f"Phase I: {model} backbone"
    if phase == PHASE2:
        return f"Phase II: {model} fusion head"
    return stage


METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


@dataclass
class Curve:
    """Per-epoch metrics of one model being trained (a backbone or a fusion head)."""

    epochs: list[int] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METRICS})

    def add(self, epoch: int, metrics: dict[str, float]) -> None:
        if epoch in self.epochs:
            # A resumed run repeats an epoch that was cut short: keep the new numbers.
            index = self.epochs.index(epoch)
            for name in METRICS:
                self.values[name][index] = _metric(metrics, name)
            return
        self.epochs.append(epoch)
        for name in METRICS:
            self.values[name].append(_metric(metrics, name))


def _metric(metrics: dict[str, float], name: str) -> float:
    validation = name.startswith("val_")
    value = epoch_metric(metrics, name.removeprefix("val_"), validation)
    return math.nan if value is None else value


@dataclass
class TrainingReport:
    """What the training page shows, updated from progress events.

    Attributes
    ----------
    curves : dict
        Stage (``phase1:<backbone>``, ``phase2:<head>``) -> :class:`Curve`, in the order
        the stages started.
    stage : str or None
        The stage running now.
    status : str
        One line: the step, epoch and batch.
    fraction : float
        How far the current stage is, 0..1.
    eta : float or None
        Seconds left in the current stage, as the trainer estimates.
    notes : list of str
        Things to tell the user (skipped files).
    """

    curves: dict[str, Curve] = field(default_factory=dict)
    stage: str | None = None
    status: str = "Starting the training process (loading TensorFlow)..."
    fraction: float = 0.0
    eta: float | None = None
    notes: list[str] = field(default_factory=list)

    def update(self, event: Progress) -> None:
        info = event.info or {}
        self.stage = event.stage
        title = stage_title(event.stage)
        for path, reason in info.get("skipped", []):
            note = f"skipped {reason}" if str(path) in reason else f"skipped {path}: {reason}"
            if note not in self.notes:
                self.notes.append(note)
        kind = info.get("event")
        if kind in ("batch", "epoch"):
            total = event.total or 0
            epoch = int(info.get("epoch", event.done))
            if kind == "epoch":
                self.curves.setdefault(event.stage, Curve()).add(epoch, info.get("metrics", {}))
                self.fraction = event.done / total if total else 0.0
                self.status = f"{title} - epoch {epoch}/{total} done"
            else:
                batches = info.get("batches") or 0
                batch = int(info.get("batch", 0))
                within = batch / batches if batches else 0.0
                self.fraction = (epoch - 1 + within) / total if total else 0.0
                self.status = f"{title} - epoch {epoch}/{total}, batch {batch}/{batches or '?'}"
            self.eta = info.get("eta")
            self.curves.setdefault(event.stage, Curve())
        else:
            total = event.total
            self.fraction = event.done / total if total else 0.0
            count = f" - {event.done}/{total}" if total else ""
            self.status = f"{title}{count}"
            self.eta = None

    def load_history(self, out: str | Path) -> None:
        """Curves of the epochs an interrupted run at ``out`` already finished."""
        journal = read_journal(out)
        if journal is None:
            return
        # Journal steps and progress stages share their names (avsc_core.train.state).
        for name, step in journal.steps.items():
            for entry in step.history:
                self.curves.setdefault(name, Curve()).add(int(entry["epoch"]), entry)


def interrupted_run(out: str | Path) -> bool:
    """Whether ``out`` holds a training run that can be resumed."""
    journal = read_journal(out)
    return journal is not None and journal.interrupted
