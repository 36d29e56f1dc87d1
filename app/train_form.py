"""The training wizard's form without Qt: its values and how they map to a training run.

:class:`TrainForm` holds what the wizard's dataset and settings pages show;
:func:`form_to_config` turns it into the :class:`~avsc_core.train.TrainConfig` and the
:class:`RunOptions` of a training job, :func:`config_to_form` fills it from a config (the
last one used, kept in the app's settings). :func:`with_preset` and :func:`with_strategy`
are what the form does when the user picks another preset or strategy. The choices it
offers come from the core.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from avsc_core.datasets import LAYOUTS
from avsc_core.train.settings import JOINT_BATCH, TrainConfig
from avsc_core.train.state import DEFAULT_FRACTION

# "auto" asks load_dataset to detect the layout.
LAYOUT_CHOICES = ("auto", *LAYOUTS)
# The app trains on laptops more often than on GPU machines: the tiny preset comes first.
PRESET_CHOICES = ("tiny", "paper")
WEIGHT_CHOICES = ("imagenet", "none")
SPLIT_NOTE = (
    f"Without a split column or fold files, {DEFAULT_FRACTION:.0%} of each class is kept "
    f"for validation and {DEFAULT_FRACTION:.0%} for the final test."
)
# The form fields each strategy ignores; the wizard greys them out.
_UNUSED = {
    "two-phase": frozenset({"joint_epochs"}),
    "joint": frozenset({"fusion", "backbones", "phase1_epochs", "phase2_epochs"}),
}


@dataclass(frozen=True)
class TrainForm:
    """The values of the wizard's form, as the user set them.

    The settings fields are :class:`~avsc_core.train.TrainConfig`'s fields of the same
    names; the rest of a config comes from the preset's defaults.

    Attributes
    ----------
    visual_weights : str
        As typed: a blank means ``"none"``.
    data, layout : str
        The dataset and how to read it (:data:`LAYOUT_CHOICES`).
    out : str
        The bundle folder to write.
    resume : bool
        Continue the interrupted run at ``out`` instead of starting one.
    """

    preset: str
    strategy: str
    fusion: str
    backbones: tuple[str, ...]
    phase1_epochs: int
    phase2_epochs: int
    joint_epochs: int
    batch_size: int
    visual_weights: str
    data: str = ""
    layout: str = "auto"
    out: str = ""
    resume: bool = False

    def unused(self, name: str) -> bool:
        """Whether field ``name`` has no effect under this form's strategy."""
        return name in _UNUSED[self.strategy]


@dataclass(frozen=True)
class RunOptions:
    """What a training job needs besides its :class:`~avsc_core.train.TrainConfig`
    (the fields of :class:`~app.training.TrainJob` of the same names)."""

    data: str
    out: str
    layout: str
    resume: bool


def form_to_config(form: TrainForm) -> tuple[TrainConfig, RunOptions]:
    """The training settings and job options ``form`` asks for.

    Raises
    ------
    ValueError
        Settings no run can have (no backbone chosen, an unknown preset).
    """
    config = TrainConfig.for_preset(
        form.preset,
        strategy=form.strategy,
        fusion=form.fusion,
        backbones=form.backbones,
        phase1_epochs=form.phase1_epochs,
        phase2_epochs=form.phase2_epochs,
        joint_epochs=form.joint_epochs,
        batch_size=form.batch_size,
        visual_weights=form.visual_weights.strip() or "none",
    )
    options = RunOptions(form.data.strip(), form.out.strip(), form.layout, form.resume)
    return config, options


def config_to_form(config: TrainConfig, options: RunOptions | None = None) -> TrainForm:
    """The form showing ``config`` (and ``options``, else no dataset and no folder yet)."""
    where = {} if options is None else dataclasses.asdict(options)
    return TrainForm(
        preset=config.preset,
        strategy=config.strategy,
        fusion=config.fusion,
        backbones=config.backbones,
        phase1_epochs=config.phase1_epochs,
        phase2_epochs=config.phase2_epochs,
        joint_epochs=config.joint_epochs,
        batch_size=config.batch_size,
        visual_weights=config.visual_weights,
        **where,
    )


def default_form() -> TrainForm:
    """The form of a first training: the first preset's defaults."""
    return config_to_form(TrainConfig.for_preset(PRESET_CHOICES[0]))


def saved_form(saved: Mapping[str, Any]) -> TrainForm:
    """The form of the last training started in the app (``AppSettings.training``); the
    defaults when there is none, or when another version wrote it."""
    if not saved:
        return default_form()
    try:
        return config_to_form(TrainConfig.from_dict(dict(saved)))
    except (TypeError, ValueError):
        return default_form()


def with_preset(form: TrainForm, preset: str) -> TrainForm:
    """``form`` after choosing ``preset``: its epochs, batch size and weights, the rest kept."""
    defaults = TrainConfig.for_preset(preset, strategy=form.strategy)
    return dataclasses.replace(
        form,
        preset=preset,
        phase1_epochs=defaults.phase1_epochs,
        phase2_epochs=defaults.phase2_epochs,
        joint_epochs=defaults.joint_epochs,
        batch_size=defaults.batch_size,
        visual_weights=defaults.visual_weights,
    )


def with_strategy(form: TrainForm, strategy: str) -> TrainForm:
    """``form`` after choosing ``strategy``; a joint batch is at most ``JOINT_BATCH``
    segments, since each brings all its frames."""
    batch = min(form.batch_size, JOINT_BATCH) if strategy == "joint" else form.batch_size
    return dataclasses.replace(form, strategy=strategy, batch_size=batch)

