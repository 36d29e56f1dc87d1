"""The resume journal of a training run, and the names of its steps.

``<bundle>/training/state.json`` records what is finished: each Phase I backbone's
completed epochs, best epoch and history, and the same for each Phase II head (or for
joint optimisation). It is rewritten atomically after every epoch, next to a checkpoint
of that epoch, so a run killed at any moment resumes from its last completed epoch.

A step is named ``<phase>:<model>`` (:func:`phase1_step`, :func:`phase2_step`) or
:data:`JOINT_STEP`; the trainers report their progress under the same names, and the
bundle's ``history`` keeps them. Journals written before this spelling named Phase I
steps ``phase1/<backbone>``: :class:`TrainState` renames them as it reads them.

:func:`read_journal` is how anyone watching a run (the app) reads the journal.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avsc_core.atomic import write_json
from avsc_core.backbones import BRANCHES
from avsc_core.bundle.manifest import MANIFEST
from avsc_core.errors import AvscError

STATE_VERSION = 1
# Where a run folder keeps its journal.
JOURNAL = Path("training") / "state.json"
# Where it keeps the per-epoch checkpoints of its steps (removed once the bundle is written).
CHECKPOINTS = Path("training") / "checkpoints"
# The share of each class a new run holds out for validation, and for testing, when the
# data does not split itself; the journal records the fractions a run was started with.
# Defined here rather than in run.py so that the app reads it without loading TensorFlow.
DEFAULT_FRACTION = 0.15

PHASE1 = "phase1"
PHASE2 = "phase2"
JOINT_STEP = "joint"
# The Phase II heads, in the order they are trained: one per branch of the answer.
HEADS = BRANCHES
_SEPARATOR = ":"
# How journals before the common spelling separated Phase I steps' parts.
_OLD_PHASE1_PREFIX = f"{PHASE1}/"


def phase1_step(backbone: str) -> str:
    """The step that trains Phase I backbone ``backbone``: ``phase1:<backbone>``."""
    return f"{PHASE1}{_SEPARATOR}{backbone}"


def phase2_step(part: str) -> str:
    """The Phase II step ``part`` (a head, or ``embeddings``): ``phase2:<part>``."""
    return f"{PHASE2}{_SEPARATOR}{part}"


EMBEDDINGS_STEP = phase2_step("embeddings")


def step_parts(step: str) -> tuple[str, str]:
    """``(phase, model)`` of a step name: ``("phase1", "aud-mel")``; ``("joint", "")``."""
    phase, _, model = step.partition(_SEPARATOR)
    return phase, model


def canonical_step(name: str) -> str:
    """``name`` in today's spelling: ``phase1/<backbone>`` becomes ``phase1:<backbone>``."""
    if name.startswith(_OLD_PHASE1_PREFIX):
        return phase1_step(name.removeprefix(_OLD_PHASE1_PREFIX))
    return name


@dataclass(frozen=True)
class StageFiles:
    """Where a stage keeps its work in the run folder.

    Attributes
    ----------
    last, best : Path
        The checkpoint of the last completed epoch (weights and optimizer state) and the
        weights of the best epoch so far.
    final : Path or None
        Where the trained network is saved; ``None`` when the trainer saves its parts
        itself (joint optimisation).
    products : tuple of Path
        The files a finished stage has left; with all of them there it is skipped.
    """

    last: Path
    best: Path
    final: Path | None
    products: tuple[Path, ...]

    @classmethod
    def of(cls, out: Path, step: str) -> StageFiles:
        """The files of journal step ``step``, named as every version has named them:
        ``phase1:<backbone>`` saves ``backbones/<backbone>.keras``, ``phase2:<head>``
        ``heads/<head>.keras`` (checkpoints ``head-<head>.*``), and :data:`JOINT_STEP` has
        ``joint.last.npz`` and ``joint.best.npz``, no products until the trainer names them."""
        checkpoints = out / CHECKPOINTS
        if step == JOINT_STEP:
            return cls(checkpoints / "joint.last.npz", checkpoints / "joint.best.npz", None, ())
        phase, model = step_parts(step)
        folder, prefix = (out / "backbones", "") if phase == PHASE1 else (out / "heads", "head-")
        final = folder / f"{model}.keras"
        return cls(checkpoints / f"{prefix}{model}.last.npz",
                   checkpoints / f"{prefix}{model}.best.npz", final, (final,))

    def with_products(self, products: tuple[Path, ...]) -> StageFiles:
        return dataclasses.replace(self, products=tuple(products))


@dataclass
class StepState:
    """Progress of one model being trained (a backbone or a fusion head).

    ``stopped_early`` says early stopping ended it before its epochs were done (so a
    larger total of epochs would not have trained it longer).
    """

    epochs_done: int = 0
    best_epoch: int = -1
    best_score: list[float] | None = None
    finished: bool = False
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False

    def restart(self) -> None:
        """Forget the step's progress: it trains from its first epoch."""
        self.epochs_done, self.best_epoch, self.best_score = 0, -1, None
        self.history, self.stopped_early = [], False

    @property
    def started(self) -> bool:
        """Whether any work of this step is saved (an epoch, or the whole step)."""
        return self.epochs_done > 0 or self.finished


@dataclass
class TrainState:
    """Everything a resumed run needs to know.

    Step names are kept in today's spelling (:func:`canonical_step`), however the steps
    were given: an interrupted run from before the common spelling resumes, and its
    journal is rewritten with the new names at its next save.
    """

    path: Path
    settings: dict[str, Any]
    steps: dict[str, StepState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.steps = {canonical_step(name): step for name, step in self.steps.items()}

    def step(self, name: str) -> StepState:
        return self.steps.setdefault(name, StepState())

    @property
    def has_work(self) -> bool:
        """Whether any step has saved work; a run without any can be started afresh."""
        return any(step.started for step in self.steps.values())

    def save(self) -> None:
        write_json(
            self.path,
            {
                "version": STATE_VERSION,
                "settings": self.settings,
                "steps": {k: vars(v) for k, v in self.steps.items()},
            },
        )

    @classmethod
    def load(cls, path: Path) -> TrainState:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AvscError(f"{path}: cannot read the training journal ({exc})") from exc
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise AvscError(f"{path}: training journal of an unknown version")
        try:
            steps = {k: StepState(**v) for k, v in data.get("steps", {}).items()}
        except (AttributeError, TypeError) as exc:
            raise AvscError(f"{path}: damaged training journal ({exc})") from exc
        return cls(path, data.get("settings", {}), steps)


@dataclass(frozen=True)
class StepSummary:
    """What the journal says of one step.

    Attributes
    ----------
    epochs_done : int
        Epochs completed (and checkpointed).
    finished : bool
        The step is done; a resumed run skips it.
    history : tuple of dict
        One entry per completed epoch: ``epoch`` and its metrics (``loss``,
        ``accuracy``, ``val_loss``, ...; see :func:`~avsc_core.bundle.history.epoch_metric`).
    """

    epochs_done: int
    finished: bool
    history: tuple[Mapping[str, float], ...]


@dataclass(frozen=True)
class JournalSummary:
    """What the training journal of a run folder says, for someone watching the run.

    Attributes
    ----------
    steps : mapping
        Step name (:func:`phase1_step`, :func:`phase2_step`, :data:`JOINT_STEP`, in
        today's spelling) -> :class:`StepSummary`, in the order the steps started.
    interrupted : bool
        The folder holds a run that did not write its bundle yet, which
        ``train_model(..., resume=True)`` continues.
    """

    steps: Mapping[str, StepSummary]
    interrupted: bool


def read_journal(out: str | Path) -> JournalSummary | None:
    """The journal of the training run in folder ``out``.

    Returns
    -------
    JournalSummary or None
        ``None`` when ``out`` holds no journal this version can read (none, a damaged
        one, one of another version); a run started there reports why.
    """
    out = Path(out)
    try:
        state = TrainState.load(out / JOURNAL)
    except AvscError:
        return None
    steps = {
        name: StepSummary(step.epochs_done, step.finished, tuple(step.history))
        for name, step in state.steps.items()
    }
    return JournalSummary(steps, interrupted=not (out / MANIFEST).exists())
