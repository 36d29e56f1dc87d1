"""What a resumed training run may change, and what it may not (no TensorFlow here).

A resumed run continues with the settings it was started with, kept in its journal. An
option given again with another value is honoured when the work already saved stays valid
under it, and refused otherwise with one line naming the option, both values and what to
do:

- Epochs are totals per step (``visual_epochs`` for the visual backbones when set). A new
  total applies to the steps not finished yet, unless one of them has already trained
  more epochs than that, or a finished step it applies to trained another number (the
  steps of one phase all train alike); a step that stopped early only conflicts with a
  total below the epochs it trained.
- ``backbones`` may change: a dropped backbone's Phase I work is discarded, and Phase II,
  which fuses the backbones, is done again for the new set.
- Options that shape how a step trains (learning rates and their schedule, batch size,
  mixup, initial weights, fusion, the joint encoders, early stopping's patience, the
  precision) may change until a step they shape has started. A precision of ``auto``
  (what the app asks for) keeps the one the run chose.
- ``preset``, ``strategy`` and ``seed`` never change, nor do the layout and the split
  fractions: the split was drawn when the run started and is recorded with it.

Options that shape no step of the run (``fusion`` of a joint run) are recorded as given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from avsc_core.errors import AvscError
from avsc_core.train.settings import TrainConfig
from avsc_core.train.state import (
    HEADS,
    JOINT_STEP,
    PHASE1,
    PHASE2,
    StepState,
    TrainState,
    phase1_step,
    phase2_step,
    step_parts,
)

HEAD_STEPS = tuple(phase2_step(head) for head in HEADS)

# Settings no resumed run may change, and why.
FIXED = {
    "preset": "the preset set the size of every network",
    "strategy": "the strategy decides what is trained",
    "seed": "the seed drew the split and the initial weights",
}
SPLIT_REASON = "the split was drawn when the run started"
# Where an option is also set by another one, the refusal says so.
_ALSO_SET_BY = {
    "phase1_epochs": " (or --epochs: --phase2-epochs alone still sets Phase II)",
    "phase2_epochs": " (or --epochs)",
    "visual_epochs": " (or --epochs and --phase1-epochs, which set it too)",
    "joint_epochs": " (or --epochs)",
}
EPOCH_FIELDS = ("phase1_epochs", "visual_epochs", "phase2_epochs", "joint_epochs")
# Settings that shape every network of a run alike.
_SCHEDULE = ("lr_schedule", "warmup_fraction", "patience")
_EVERY_STEP = ("audio", "visual", "heads")
# The groups of two-phase steps (audio and visual backbones, heads) each setting shapes;
# the joint settings shape no step of a two-phase run.
TWO_PHASE_SHAPING: dict[str, tuple[str, ...]] = {
    "audio_lr": ("audio",),
    "visual_lr": ("visual",),
    "visual_weights": ("visual",),
    "batch_size": _EVERY_STEP,
    "mixup_alpha": _EVERY_STEP,
    "fusion": ("heads",),
    "fusion_lr": ("heads",),
    "precision": ("audio", "visual"),  # the heads always train in float32
    **dict.fromkeys(_SCHEDULE, _EVERY_STEP),
}
# The settings that shape joint optimisation (its one step).
JOINT_SHAPING = frozenset({
    "audio_lr", "visual_lr", "visual_weights", "batch_size", "mixup_alpha", "joint_feature",
    "joint_image_model", "joint_visual_stages", "joint_freeze_visual", "joint_branch_weight",
    "precision", *_SCHEDULE,
})


def wanted_config(
    saved: TrainConfig, config: TrainConfig | None, changes: Mapping[str, Any] | None
) -> TrainConfig:
    """The settings a resumed run is asked for: ``saved`` with ``changes``, else ``config``.

    Raises
    ------
    AvscError
        A change no run can have (an unknown backbone, a negative count).
    """
    if changes:
        try:
            wanted = dataclasses.replace(saved, **changes)
        except ValueError as exc:
            raise AvscError(str(exc)) from exc
    else:
        wanted = config or saved
    if wanted.precision == "auto":
        wanted = dataclasses.replace(wanted, precision=saved.precision)
    if set(wanted.backbones) == set(saved.backbones):
        # The same set in another order trains the same model.
        wanted = dataclasses.replace(wanted, backbones=saved.backbones)
    return wanted


def discarded_steps(state: TrainState, saved: TrainConfig, wanted: TrainConfig) -> list[str]:
    """Journal steps whose work is lost to a change of backbones: the dropped backbones'
    Phase I and all of Phase II (its heads fuse the old set)."""
    if wanted.strategy == "joint" or wanted.backbones == saved.backbones:
        return []
    dropped = [phase1_step(b) for b in saved.backbones if b not in wanted.backbones]
    phase2 = [name for name in state.steps if step_parts(name)[0] == PHASE2]
    return [name for name in dropped + phase2 if name in state.steps]


def check_resume(out: Path, state: TrainState, saved: TrainConfig, wanted: TrainConfig) -> None:
    """Refuse a change of settings that the saved work of the run at ``out`` cannot take.

    Raises
    ------
    AvscError
        One line: the option, this run's value, the given one, why, and what to do.
    """
    gone = set(discarded_steps(state, saved, wanted))
    steps = {name: step for name, step in state.steps.items() if name not in gone}
    for field in dataclasses.fields(TrainConfig):
        old, new = getattr(saved, field.name), getattr(wanted, field.name)
        if old == new:
            continue
        reason = _why_not(field.name, new, wanted, steps)
        if reason:
            raise refusal(out, state, field.name, old, new, reason)


def check_split_options(out: Path, state: TrainState, given: Mapping[str, Any]) -> None:
    """Refuse a layout or split fractions other than the ones the run was started with.

    ``given`` maps ``layout``, ``val_fraction``, ``test_fraction`` to a value, or to
    ``None`` when the caller did not set it.
    """
    recorded = {
        "layout": state.settings.get("dataset", {}).get("layout"),
        **state.settings.get("split", {}),
    }
    for name, value in given.items():
        if value is None or (name == "layout" and value == "auto"):
            continue
        if value != recorded.get(name):
            raise refusal(out, state, name, recorded.get(name), value, SPLIT_REASON)


def option(name: str) -> str:
    """The command-line option of setting ``name`` (a :class:`TrainConfig` field, the
    layout or a split fraction), as messages name it: options are named after them."""
    return "--" + name.replace("_", "-")


def refusal(
    out: Path, state: TrainState, name: str, old: Any, new: Any, reason: str
) -> AvscError:
    """The one-line error of a refused change, with what to do about it."""
    flag = option(name)
    if state.has_work:
        fix = f"resume without {flag}{_ALSO_SET_BY.get(name, '')}, or train into another --out"
    else:
        fix = "nothing is trained yet: run again without --resume to start afresh"
    return AvscError(
        f"{out}: cannot resume with {flag} {_show(new)}: this run has {_show(old)}, and "
        f"{reason}; {fix}"
    )


def _show(value: Any) -> str:
    if value is None:
        return "no record of it"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple | list):
        return ",".join(value)
    return str(value)


def _why_not(
    name: str, new: Any, wanted: TrainConfig, steps: Mapping[str, StepState]
) -> str | None:
    """Why setting ``name`` cannot become ``new`` given the saved ``steps``; ``None`` if it can."""
    if name in FIXED:
        return FIXED[name]
    if name in EPOCH_FIELDS:
        return _epochs_conflict(_present(steps, _epoch_steps(name, wanted)), wanted)
    started = [(n, s) for n, s in _present(steps, _shaped_steps(name, wanted)) if s.started]
    if started:
        return f"{_describe(started[0][0])} has already trained with it"
    return None


def _present(steps: Mapping[str, StepState], names: list[str]) -> list[tuple[str, StepState]]:
    return [(n, steps[n]) for n in names if n in steps]


def _epochs_conflict(steps: list[tuple[str, StepState]], config: TrainConfig) -> str | None:
    for name, step in steps:
        total = _step_epochs(name, config)
        if step.finished and not step.stopped_early and step.epochs_done != total:
            return f"{_describe(name)} finished with {step.epochs_done} epochs"
        if step.epochs_done > total:
            return f"{_describe(name)} has already trained {step.epochs_done} epochs"
    return None


def _step_epochs(step: str, config: TrainConfig) -> int:
    """The total epochs of journal step ``step`` under ``config``."""
    phase, model = step_parts(step)
    if phase == PHASE1:
        return config.backbone_epochs(model)
    return config.joint_epochs if step == JOINT_STEP else config.phase2_epochs


def _epoch_steps(name: str, config: TrainConfig) -> list[str]:
    """The steps whose total epoch field ``name`` sets."""
    if config.strategy == "joint":
        return [JOINT_STEP] if name == "joint_epochs" else []
    if name == "phase1_epochs":
        return [phase1_step(b) for b in config.audio_backbones
                + (config.visual_backbones if not config.visual_epochs else ())]
    if name == "visual_epochs":
        return [phase1_step(b) for b in config.visual_backbones]
    return list(HEAD_STEPS) if name == "phase2_epochs" else []


def _shaped_steps(name: str, config: TrainConfig) -> list[str]:
    """The steps whose training setting ``name`` shapes."""
    if config.strategy == "joint":
        return [JOINT_STEP] if name in JOINT_SHAPING else []
    groups = {
        "audio": [phase1_step(b) for b in config.audio_backbones],
        "visual": [phase1_step(b) for b in config.visual_backbones],
        "heads": list(HEAD_STEPS),
    }
    return [step for group in TWO_PHASE_SHAPING.get(name, ()) for step in groups[group]]


def _describe(step: str) -> str:
    if step == JOINT_STEP:
        return "joint optimisation"
    phase, model = step_parts(step)
    if phase == PHASE1:
        return f"{model} (Phase I)"
    return f"the {model} head (Phase II)"
