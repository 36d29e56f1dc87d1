"""The backbone registry (avsc_core.backbones): one entry per backbone, joint encoders
included, and what training reads from it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from avsc_core.backbones import (
    BRANCHES,
    JOINT_AUDIO,
    JOINT_VISUAL,
    REGISTRY,
    TWO_PHASE_BACKBONES,
    backbone_entry,
    modality_of,
)
from avsc_core.config import FEATURE_KINDS
from avsc_core.train.settings import ALL_BACKBONES, TrainConfig


def test_every_backbone_has_one_entry():
    assert TWO_PHASE_BACKBONES == ALL_BACKBONES == (
        "aud-mel", "aud-gam", "aud-cqt", "vis-inc", "vis-conv")
    assert (JOINT_AUDIO, JOINT_VISUAL) == ("joint-aud", "joint-vis")
    assert set(REGISTRY) == {*TWO_PHASE_BACKBONES, JOINT_AUDIO, JOINT_VISUAL}
    for entry in REGISTRY.values():
        assert entry.modality in ("audio", "visual")
        assert entry.feature in (*FEATURE_KINDS, "frames", None)
    assert BRANCHES == ("audio", "visual", "fused")
    with pytest.raises(ValueError, match="unknown backbone"):
        backbone_entry("aud-xyz")


def test_joint_encoders_have_a_modality_and_take_the_runs_spectrogram():
    assert modality_of(JOINT_AUDIO) == "audio" and modality_of(JOINT_VISUAL) == "visual"
    assert backbone_entry(JOINT_AUDIO).feature_in("gam") == "gam"
    assert backbone_entry(JOINT_VISUAL).feature_in("gam") == "frames"
    assert backbone_entry("aud-cqt").feature_in("gam") == "cqt"


def test_builders_agree_with_the_registry():
    from avsc_core.models.presets import BACKBONES

    assert tuple(BACKBONES) == TWO_PHASE_BACKBONES
    for name, spec in BACKBONES.items():
        assert (spec.modality, spec.feature) == (REGISTRY[name].modality, REGISTRY[name].feature)


def test_the_parts_of_a_run_come_from_the_registry():
    """What the manifest records per backbone (modality, feature) is what it always was."""
    from avsc_core.train.run import _parts

    joint = TrainConfig.for_preset("tiny", strategy="joint", joint_feature="cqt")
    assert _parts(joint) == {"joint-aud": ("audio", "cqt"), "joint-vis": ("visual", "frames")}
    two_phase = TrainConfig.for_preset("tiny", backbones=("aud-gam", "vis-conv"))
    assert _parts(two_phase) == {"aud-gam": ("audio", "gam"), "vis-conv": ("visual", "frames")}


def test_reading_the_registry_loads_no_tensorflow():
    code = ("import sys, avsc_core.backbones, avsc_core.train.settings\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras'}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_what_backbones_need_decoded_comes_from_their_features():
    from avsc_core.backbones import inputs_needed

    assert inputs_needed(["mel", "frames", "cqt", "mel"]) == (("mel", "cqt"), True)
    assert inputs_needed(["gam"]) == (("gam",), False)
    assert inputs_needed(["frames"]) == ((), True)
