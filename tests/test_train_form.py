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
    config_to_form,
    default_form,
    form_to_config,
    saved_form,
    with_preset,
    with_strategy,
)
from avsc_core.datasets import LAYOUTS
from avsc_core.train import ALL_BACKBONES, TrainConfig
from avsc_core.train.settings import JOINT_BATCH
from avsc_core.train.state import DEFAULT_FRACTION

REPO = Path(__file__).resolve().parents[1]
WHERE = RunOptions(data="data", out="models/m", layout="folders", resume=True)


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
    assert f"{DEFAULT_FRACTION:.0%} of each class is kept for validation" in SPLIT_NOTE
    assert SPLIT_NOTE.count("15%") == 2


@pytest.mark.parametrize("config", [
    TrainConfig.for_preset("tiny", backbones=("aud-mel", "vis-inc"), phase1_epochs=2,
                           phase2_epochs=3, batch_size=4, fusion="f2"),
    TrainConfig.for_preset("paper"),
    TrainConfig.for_preset("paper", visual_weights="/weights/inception.h5",
                           backbones=("vis-inc",)),
    TrainConfig.for_preset("tiny", strategy="joint", joint_epochs=4),
    TrainConfig.for_preset("paper", strategy="joint", joint_epochs=7, batch_size=2),
])
def test_a_config_the_form_can_show_comes_back_unchanged(config):
    form = config_to_form(config, WHERE)
    assert (form.data, form.out, form.layout, form.resume) == ("data", "models/m", "folders",
                                                                True)
    assert form_to_config(form) == (config, WHERE)


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
    two_phase = default_form()
    joint = with_strategy(two_phase, "joint")
    for name in ("fusion", "backbones", "phase1_epochs", "phase2_epochs"):
        assert not two_phase.unused(name) and joint.unused(name)
    assert two_phase.unused("joint_epochs") and not joint.unused("joint_epochs")
    for name in ("preset", "strategy", "batch_size", "visual_weights", "out"):
        assert not two_phase.unused(name) and not joint.unused(name)


def test_choosing_a_strategy_keeps_a_joint_batch_small():
    paper = with_preset(default_form(), "paper")
    assert paper.batch_size == 32
    joint = with_strategy(paper, "joint")
    assert joint.batch_size == JOINT_BATCH  # a joint item is a segment with all its frames
    assert with_strategy(dataclasses.replace(joint, batch_size=2), "joint").batch_size == 2
    assert with_strategy(joint, "two-phase").batch_size == JOINT_BATCH  # the user's value


def test_choosing_a_preset_applies_its_epochs_batch_and_weights_only():
    form = dataclasses.replace(default_form(), backbones=("aud-mel",), fusion="f1",
                               phase1_epochs=3, out="m", resume=True)
    paper = with_preset(form, "paper")
    defaults = TrainConfig.for_preset("paper")
    assert (paper.phase1_epochs, paper.phase2_epochs, paper.joint_epochs, paper.batch_size,
            paper.visual_weights) == (defaults.phase1_epochs, defaults.phase2_epochs,
                                      defaults.joint_epochs, defaults.batch_size,
                                      defaults.visual_weights)
    assert (paper.preset, paper.backbones, paper.fusion, paper.out, paper.resume) == (
        "paper", ("aud-mel",), "f1", "m", True)
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


def test_the_last_settings_fill_the_form_unless_unreadable():
    config = TrainConfig.for_preset("paper", strategy="joint", joint_epochs=3)
    assert form_to_config(saved_form(config.to_dict()))[0] == config
    for saved in ({}, {"preset": "huge"}, {"phase1_epochs": "ten"}):
        assert saved_form(saved) == default_form()
