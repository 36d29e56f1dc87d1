"""The training wizard's form without Qt: its values and how they map to a training run.

:class:`TrainForm` holds what the wizard's dataset and settings pages show;
:func:`form_to_config` turns it into the :class:`~avsc_core.train.TrainConfig` and the
:class:`RunOptions` of a training job, :func:`config_to_form` fills it from a config (the
last one used, kept in the app's settings: :func:`saved_settings`, :func:`saved_form`).
:func:`with_preset` and :func:`with_strategy` are what the form does when the user picks
another preset or strategy. The choices it offers come from the core.

The mapping goes by name: a form field is a :class:`~avsc_core.train.TrainConfig` field
or a :class:`RunOptions` field of the same name, so offering one more setting in the
wizard is one more field here (and its widget).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from avsc_core.datasets import LAYOUTS, check_fractions
from avsc_core.errors import AvscError
from avsc_core.train.settings import (
    JOINT_BATCH,
    JOINT_IMAGE_MODELS,
    LR_SCHEDULES,
    PRECISIONS,
    SPECTROGRAMS,
    TrainConfig,
    parse_devices,
)
from avsc_core.train.state import DEFAULT_FRACTION

# "auto" asks load_dataset to detect the layout.
LAYOUT_CHOICES = ("auto", *LAYOUTS)
# The app trains on laptops more often than on GPU machines: the tiny preset comes first.
PRESET_CHOICES = ("tiny", "paper")
WEIGHT_CHOICES = ("imagenet", "none")
SCHEDULE_CHOICES = LR_SCHEDULES
PRECISION_CHOICES = PRECISIONS
JOINT_FEATURE_CHOICES = SPECTROGRAMS
IMAGE_MODEL_CHOICES = JOINT_IMAGE_MODELS
SPLIT_NOTE = (
    "Without a split column or fold files, a share of each class is kept for validation "
    f"and one for the final test ({DEFAULT_FRACTION:.0%} each by default); a split column or "
    "TAU's fold files decide themselves (a missing validation part takes its share of the "
    "training clips)."
)
_JOINT_ONLY = frozenset({"joint_epochs", "joint_feature", "joint_image_model",
                         "joint_visual_stages", "joint_freeze_visual", "joint_branch_weight"})
# The form fields each strategy ignores; the wizard greys them out.
_UNUSED = {
    "two-phase": _JOINT_ONLY,
    "joint": frozenset({"fusion", "backbones", "phase1_epochs", "visual_epochs",
                        "phase2_epochs", "fusion_lr"}),
}
# What a preset change keeps; every other setting takes the new preset's default.
_KEPT_BY_PRESET = ("strategy", "fusion", "backbones")
# The run options the app remembers with the settings (not the dataset or the folder).
_REMEMBERED = ("jobs", "devices")


@dataclass(frozen=True)
class TrainForm:
    """The values of the wizard's form, as the user set them.

    The settings fields are :class:`~avsc_core.train.TrainConfig`'s fields of the same
    names (the rest of a config comes from the preset's defaults); the others are
    :class:`RunOptions`' fields.

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
    jobs : int
        Processes decoding clips into the cache; 0 for one per core.
    devices : str
        The GPUs to train on, as ``avsc train --devices`` takes them (a number, or
        TensorFlow device names separated by commas); blank for every visible GPU.
    val_fraction, test_fraction : float
        The shares of each class kept for validation and test when the data does not
        split itself (``avsc train --val-fraction``, ``--test-fraction``).
    """

    preset: str
    strategy: str
    fusion: str
    backbones: tuple[str, ...]
    phase1_epochs: int
    visual_epochs: int
    phase2_epochs: int
    joint_epochs: int
    batch_size: int
    visual_weights: str
    patience: int
    audio_lr: float
    visual_lr: float
    fusion_lr: float
    lr_schedule: str
    warmup_fraction: float
    precision: str
    joint_feature: str
    joint_image_model: str
    joint_visual_stages: int
    joint_freeze_visual: bool
    joint_branch_weight: float
    mixup_alpha: float
    seed: int
    data: str = ""
    layout: str = "auto"
    out: str = ""
    resume: bool = False
    jobs: int = 0
    devices: str = ""
    val_fraction: float = DEFAULT_FRACTION
    test_fraction: float = DEFAULT_FRACTION

    def unused(self, name: str) -> bool:
        """Whether field ``name`` has no effect with this form's other settings."""
        if name == "warmup_fraction" and self.lr_schedule == "constant":
            return True
        return name in _UNUSED[self.strategy]


@dataclass(frozen=True)
class RunOptions:
    """What a training job needs besides its :class:`~avsc_core.train.TrainConfig`
    (the fields of :class:`~app.training.TrainJob` of the same names)."""

    data: str = ""
    out: str = ""
    layout: str = "auto"
    resume: bool = False
    jobs: int = 0
    devices: str = ""
    val_fraction: float = DEFAULT_FRACTION
    test_fraction: float = DEFAULT_FRACTION


def split_problem(val_fraction: float, test_fraction: float) -> str | None:
    """Why a dataset cannot be split with these shares, or ``None``."""
    try:
        check_fractions(val_fraction, test_fraction)
    except AvscError as exc:
        return str(exc)
    return None


def _names(kind: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(kind))


def _shared(source: Any, kind: type) -> dict[str, Any]:
    """``source``'s fields that ``kind`` has too, by name."""
    names = _names(kind)
    return {f.name: getattr(source, f.name) for f in dataclasses.fields(source)
            if f.name in names}


def form_to_config(form: TrainForm) -> tuple[TrainConfig, RunOptions]:
    """The training settings and job options ``form`` asks for.

    Raises
    ------
    ValueError
        Settings no run can have (no backbone chosen, an unknown preset).
    """
    settings = _shared(form, TrainConfig)
    settings["visual_weights"] = settings["visual_weights"].strip() or "none"
    config = TrainConfig.for_preset(settings.pop("preset"), **settings)
    options = RunOptions(**_shared(form, RunOptions))
    options = dataclasses.replace(options, data=options.data.strip(), out=options.out.strip(),
                                  devices=options.devices.strip())
    try:
        parse_devices(options.devices)
    except ValueError as exc:
        raise ValueError(f"GPUs {options.devices!r}: {exc}") from None
    problem = split_problem(options.val_fraction, options.test_fraction)
    if problem:
        raise ValueError(f"split: {problem}")
    return config, options


def config_to_form(config: TrainConfig, options: RunOptions | None = None) -> TrainForm:
    """The form showing ``config`` (and ``options``, else no dataset and no folder yet)."""
    return TrainForm(**_shared(config, TrainForm), **_shared(options or RunOptions(), TrainForm))


def default_form() -> TrainForm:
    """The form of a first training: the first preset's defaults."""
    return config_to_form(TrainConfig.for_preset(PRESET_CHOICES[0]))


def saved_settings(form: TrainForm) -> dict[str, Any]:
    """What the app remembers of ``form`` (``AppSettings.training``): its config, and the
    run options that belong to the machine rather than to one run.

    Raises
    ------
    ValueError
        As :func:`form_to_config`.
    """
    config, options = form_to_config(form)
    return {**config.to_dict(), **{name: getattr(options, name) for name in _REMEMBERED}}


def saved_form(saved: Mapping[str, Any]) -> TrainForm:
    """The form of the last training started in the app (:func:`saved_settings`); the
    defaults when there is none, or when another version wrote it. A setting it lacks (it
    was saved before the wizard offered it) takes its preset's default."""
    if not saved:
        return default_form()
    try:
        saved = dict(saved)
        defaults = TrainConfig.for_preset(saved.get("preset", PRESET_CHOICES[0]),
                                          strategy=saved.get("strategy"))
        config = TrainConfig.from_dict({**defaults.to_dict(), **saved})
    except (TypeError, ValueError):
        return default_form()
    fallback = RunOptions()
    remembered = {}
    for name in _REMEMBERED:
        value, default = saved.get(name), getattr(fallback, name)
        fits = type(value) is type(default) and (not isinstance(value, int) or value >= 0)
        remembered[name] = value if fits else default
    return config_to_form(config, RunOptions(**remembered))


def with_preset(form: TrainForm, preset: str) -> TrainForm:
    """``form`` after choosing ``preset``: its defaults, but for the strategy, the fusion
    and the backbones chosen (and the dataset, the folder and the run options)."""
    defaults = TrainConfig.for_preset(preset, strategy=form.strategy)
    kept = {name: getattr(form, name) for name in _KEPT_BY_PRESET}
    return dataclasses.replace(
        config_to_form(defaults, RunOptions(**_shared(form, RunOptions))), **kept)


def with_strategy(form: TrainForm, strategy: str) -> TrainForm:
    """``form`` after choosing ``strategy``; a joint batch is at most ``JOINT_BATCH``
    segments, since each brings all its frames."""
    batch = min(form.batch_size, JOINT_BATCH) if strategy == "joint" else form.batch_size
    return dataclasses.replace(form, strategy=strategy, batch_size=batch)
