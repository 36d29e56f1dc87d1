"""The resume journal of a training run.

``<bundle>/training/state.json`` records what is finished: each Phase I backbone's
completed epochs, best epoch and history, and the same for each Phase II head. It is
rewritten atomically after every epoch, next to a checkpoint of that epoch, so a run
killed at any moment resumes from its last completed epoch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avsc_core.atomic import write_json
from avsc_core.errors import AvscError

STATE_VERSION = 1


@dataclass(frozen=True)
class StepFiles:
    """Where a Phase I backbone or a Phase II head keeps its work in the run folder."""

    final: Path
    last: Path
    best: Path

    @classmethod
    def of(cls, workdir: Path, step: str) -> StepFiles:
        """The files of journal step ``step`` (``"phase1/<backbone>"``, ``"phase2:<head>"``)."""
        phase, _, model = step.replace(":", "/", 1).partition("/")
        checkpoints = workdir / "training" / "checkpoints"
        if phase == "phase1":
            folder, prefix = workdir / "backbones", ""
        else:
            folder, prefix = workdir / "heads", "head-"
        return cls(
            folder / f"{model}.keras",
            checkpoints / f"{prefix}{model}.last.npz",
            checkpoints / f"{prefix}{model}.best.npz",
        )


@dataclass
class StepState:
    """Progress of one model being trained (a backbone or a fusion head)."""

    epochs_done: int = 0
    best_epoch: int = -1
    best_score: list[float] | None = None
    finished: bool = False
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def started(self) -> bool:
        """Whether any work of this step is saved (an epoch, or the whole step)."""
        return self.epochs_done > 0 or self.finished


@dataclass
class TrainState:
    """Everything a resumed run needs to know."""

    path: Path
    settings: dict[str, Any]
    steps: dict[str, StepState] = field(default_factory=dict)

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
        if data.get("version") != STATE_VERSION:
            raise AvscError(f"{path}: training journal of an unknown version")
        steps = {k: StepState(**v) for k, v in data.get("steps", {}).items()}
        return cls(path, data.get("settings", {}), steps)
