"""The training wizard's form <-> TrainConfig mapping, without Qt."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from app.train_form import (
    LAYOUT_CHOICES,
    SPLIT_NOTE,
    RunOptions,
    TrainForm,
    config_to_form,
    default_form,
    form_to_config,
    saved_form,
    saved_settings,
    split_problem,
    with_preset,
    with_strategy,
)
from avsc_core.datasets import LAYOUTS
from avsc_core.train import ALL_BACKBONES, TrainConfig
from avsc_core.train.settings import JOINT_BATCH, parse_devices
from avsc_core.train.state import DEFAULT_FRACTION

REPO = Path(__file__).resolve().parents[1]
WHERE = RunOptions(data="data", out="models/m", layout="folders", resume=True, jobs=3)
# The advanced settings, most of them away from the presets' defaults.
ADVANCED = {"visual_epochs": 4, "patience": 3, "audio_lr": 5e-4, "visual_lr": 2e-5,
            "lr_schedule": "cosine", "warmup_fraction": 0.1, "precision": "mixed",
            "joint_feature": "cqt", "joint_image_model": "inception_v3",
            "joint_visual_stages": 5, "joint_freeze_visual": True}


def test_the_form_loads_neither_qt_nor_tensorflow():
    code = ("import sys, app.train_form\n"
            "print(sorted({m.split('.')[0] for m in sys.modules}\n"
            "             & {'PySide6', 'pyqtgraph', 'tensorflow', 'keras'}))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_the_first_form_is_the_tiny_preset_with_every_backbone():
    form = default_form()
    config, options = form_to_config(form)
    assert config == TrainConfig.for_preset("tiny")
    assert form.backbones == ALL_BACKBONES and form.fusion == "f4"
    assert form.strategy == "two-phase" and form.visual_weights == "none"
    assert options == RunOptions(data="", out="", layout="auto", resume=False)


def test_layouts_and_split_defaults_come_from_the_core():
    assert LAYOUT_CHOICES == ("auto", *LAYOUTS)
    assert f"({DEFAULT_FRACTION:.0%} each by default)" in SPLIT_NOTE
    form = default_form()
    assert form.val_fraction == form.test_fraction == DEFAULT_FRACTION


def test_split_shares_travel_as_run_options_and_impossible_ones_are_refused():
    form = dataclasses.replace(default_form(), val_fraction=0.2, test_fraction=0.1)
    _, options = form_to_config(form)
    assert (options.val_fraction, options.test_fraction) == (0.2, 0.1)
    assert "val_fraction" not in saved_settings(form)  # they belong to a dataset
    assert split_problem(0.2, 0.1) is None
    assert split_problem(0.5, 0.5) == "val and test fractions leave nothing to train on (0.5 + 0.5)"
    with pytest.raises(ValueError, match="^split: val and test fractions leave nothing"):
        form_to_config(dataclasses.replace(form, val_fraction=0.5, test_fraction=0.5))


@pytest.mark.parametrize("config", [
    TrainConfig.for_preset("tiny", backbones=("aud-mel", "vis-inc"), phase1_epochs=2,
                           phase2_epochs=3, batch_size=4, fusion="f2"),
    TrainConfig.for_preset("paper"),
    TrainConfig.for_preset("paper", visual_weights="/weights/inception.h5",
                           backbones=("vis-inc",)),
    TrainConfig.for_preset("tiny", strategy="joint", joint_epochs=4),
    TrainConfig.for_preset("paper", strategy="joint", joint_epochs=7, batch_size=2),
    TrainConfig.for_preset("tiny", **ADVANCED),
    TrainConfig.for_preset("paper", strategy="joint", **ADVANCED),
    TrainConfig.for_preset("paper", lr_schedule="constant", warmup_fraction=0.0,
                           patience=0, precision="float32", visual_epochs=0),
])
def test_a_config_the_form_can_show_comes_back_unchanged(config):
    form = config_to_form(config, WHERE)
    assert (form.data, form.out, form.layout, form.resume, form.jobs) == (
        "data", "models/m", "folders", True, 3)
    assert form_to_config(form) == (config, WHERE)
    # Every field of the form went across: none kept a value of its own.
    for field in dataclasses.fields(TrainForm):
        source = config if hasattr(config, field.name) else WHERE
        assert getattr(form, field.name) == getattr(source, field.name), field.name


def test_every_form_field_is_a_setting_or_a_run_option_and_a_cli_option():
    from avsc_core.cli.main import build_parser

    settings = {f.name for f in dataclasses.fields(TrainConfig)}
    options = {f.name for f in dataclasses.fields(RunOptions)}
    form = {f.name for f in dataclasses.fields(TrainForm)}
    assert not settings & options
    assert form == (form & settings) | options
    # What the wizard sets, `avsc train` sets too, under the same name.
    commands = next(a for a in build_parser()._actions if a.dest == "command")
    train = {action.dest for action in commands.choices["train"]._actions}
    assert form <= train, form - train


def test_the_wizard_offers_every_training_setting_and_maps_it_by_name():
    # Every setting `avsc train` has, the wizard has: a run made in the app can be any run.
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= {
        f.name for f in dataclasses.fields(TrainForm)}
    form = config_to_form(TrainConfig.for_preset("tiny", mixup_alpha=0.25, seed=7))
    assert (form.mixup_alpha, form.seed) == (0.25, 7)
    config, _ = form_to_config(dataclasses.replace(form, mixup_alpha=0.0, seed=11,
                                                   fusion_lr=2e-3))
    assert (config.mixup_alpha, config.seed, config.fusion_lr) == (0.0, 11, 2e-3)
    assert saved_form(saved_settings(form)) == dataclasses.replace(form, data="", out="")


def test_the_joint_settings_map_both_ways():
    form = dataclasses.replace(config_to_form(TrainConfig.for_preset("paper")),
                               strategy="joint", joint_epochs=5, batch_size=6)
    config, _ = form_to_config(form)
    assert (config.strategy, config.joint_epochs, config.batch_size) == ("joint", 5, 6)
    # Settings the form does not show keep the preset's defaults (the joint encoders).
    paper = TrainConfig.for_preset("paper", strategy="joint")
    assert (config.joint_feature, config.joint_image_model, config.joint_freeze_visual) == (
        paper.joint_feature, paper.joint_image_model, paper.joint_freeze_visual)
    assert config_to_form(config) == dataclasses.replace(form, data="", out="")


def test_the_form_greys_out_what_the_strategy_ignores():
    two_phase = with_preset(default_form(), "paper")
    joint = with_strategy(two_phase, "joint")
    for name in ("fusion", "backbones", "phase1_epochs", "visual_epochs", "phase2_epochs",
                 "fusion_lr"):
        assert not two_phase.unused(name) and joint.unused(name)
    for name in ("joint_epochs", "joint_feature", "joint_image_model", "joint_visual_stages",
                 "joint_freeze_visual", "joint_branch_weight"):
        assert two_phase.unused(name) and not joint.unused(name)
    for name in ("preset", "strategy", "batch_size", "visual_weights", "out", "patience",
                 "audio_lr", "visual_lr", "lr_schedule", "warmup_fraction", "precision",
                 "jobs", "mixup_alpha", "seed"):
        assert not two_phase.unused(name) and not joint.unused(name)
    # A constant rate has no warm-up.
    assert dataclasses.replace(joint, lr_schedule="constant").unused("warmup_fraction")


def test_choosing_a_strategy_keeps_a_joint_batch_small():
    paper = with_preset(default_form(), "paper")
    assert paper.batch_size == 32
    joint = with_strategy(paper, "joint")
    assert joint.batch_size == JOINT_BATCH  # a joint item is a segment with all its frames
    assert with_strategy(dataclasses.replace(joint, batch_size=2), "joint").batch_size == 2
    assert with_strategy(joint, "two-phase").batch_size == JOINT_BATCH  # the user's value


def test_choosing_a_preset_applies_its_defaults_but_for_the_choice_of_networks():
    form = dataclasses.replace(default_form(), backbones=("aud-mel",), fusion="f1",
                               phase1_epochs=3, out="m", resume=True, jobs=2, **ADVANCED)
    paper = with_preset(form, "paper")
    defaults = config_to_form(TrainConfig.for_preset("paper"))
    for name in ("phase1_epochs", "phase2_epochs", "joint_epochs", "batch_size",
                 "visual_weights", *ADVANCED):
        assert getattr(paper, name) == getattr(defaults, name), name
    assert (paper.preset, paper.backbones, paper.fusion, paper.out, paper.resume,
            paper.jobs) == ("paper", ("aud-mel",), "f1", "m", True, 2)
    # The tiny preset's recipe: constant rates, no early stopping, every epoch trained.
    tiny = with_preset(paper, "tiny")
    assert (tiny.lr_schedule, tiny.patience, tiny.visual_epochs, tiny.audio_lr) == (
        "constant", 0, 0, TrainConfig.for_preset("tiny").audio_lr)
    joint = with_preset(with_strategy(form, "joint"), "paper")
    assert joint.batch_size == TrainConfig.for_preset("paper", strategy="joint").batch_size


def test_resume_and_the_folder_travel_as_run_options():
    form = dataclasses.replace(default_form(), data="  /data/set ", out=" /models/run ",
                               layout="tau2021", resume=True)
    _, options = form_to_config(form)
    assert options == RunOptions("/data/set", "/models/run", "tau2021", True)
    assert config_to_form(TrainConfig.for_preset("tiny"), options).resume
    assert not config_to_form(TrainConfig.for_preset("tiny")).resume


def test_blank_weights_mean_none_and_bad_settings_are_refused():
    form = dataclasses.replace(default_form(), preset="paper", visual_weights="  ")
    assert form_to_config(form)[0].visual_weights == "none"
    with pytest.raises(ValueError, match="backbones"):
        form_to_config(dataclasses.replace(default_form(), backbones=()))
    with pytest.raises(ValueError, match="preset"):
        form_to_config(dataclasses.replace(default_form(), preset="huge"))


def test_gpus_are_read_as_avsc_train_devices_reads_them():
    assert parse_devices(" 2 ") == 2 and parse_devices("") is None
    assert parse_devices("/gpu:0, /gpu:1") == ["/gpu:0", "/gpu:1"]
    for bad in ("0", "gpu0"):
        with pytest.raises(ValueError):
            parse_devices(bad)
    form = dataclasses.replace(default_form(), devices=" 2 ")
    assert form_to_config(form)[1].devices == "2"
    with pytest.raises(ValueError, match="GPUs 'gpu0'"):
        form_to_config(dataclasses.replace(default_form(), devices="gpu0"))
    assert saved_form(saved_settings(form)).devices == "2"


def test_the_last_settings_fill_the_form_unless_unreadable():
    config = TrainConfig.for_preset("paper", strategy="joint", joint_epochs=3)
    assert form_to_config(saved_form(config.to_dict()))[0] == config
    for saved in ({}, {"preset": "huge"}, {"phase1_epochs": "ten"}):
        assert saved_form(saved) == default_form()


def test_the_advanced_settings_and_the_decoding_processes_are_remembered():
    form = dataclasses.replace(with_preset(default_form(), "paper"), data="/d", out="/m",
                               resume=True, jobs=3, **ADVANCED)
    saved = saved_settings(form)
    assert saved["jobs"] == 3 and "data" not in saved and "out" not in saved
    assert saved_form(saved) == dataclasses.replace(form, data="", out="", resume=False)
    # A damaged number of processes is dropped, not the settings.
    assert saved_form({**saved, "jobs": -1}).jobs == 0
    assert saved_form({**saved, "jobs": "4"}).patience == ADVANCED["patience"]


def test_settings_saved_before_the_wizard_offered_a_setting_take_its_presets_default():
    paper = TrainConfig.for_preset("paper")
    old = {"preset": "paper", "strategy": "two-phase", "fusion": "f2",
           "backbones": ["aud-mel", "vis-inc"], "phase1_epochs": 40, "phase2_epochs": 20,
           "joint_epochs": 30, "batch_size": 16, "visual_weights": "imagenet"}
    form = saved_form(old)
    assert (form.fusion, form.backbones, form.phase1_epochs, form.batch_size) == (
        "f2", ("aud-mel", "vis-inc"), 40, 16)
    # Not the behaviour of the runs of that version (LEGACY_SETTINGS): the preset's recipe.
    assert (form.visual_epochs, form.lr_schedule, form.patience, form.precision) == (
        paper.visual_epochs, paper.lr_schedule, paper.patience, paper.precision)
    assert form.jobs == 0
