"""``--precision mixed|float32``: float16 computation where it pays, float32 bundles always."""

from __future__ import annotations

import dataclasses
import json
import logging

import keras
import numpy as np
import pytest

from avsc_core.cli.main import main
from avsc_core.errors import AvscError
from avsc_core.models import build_backbone
from avsc_core.train import TrainConfig
from avsc_core.train.precision import float32_copy, precision_policy, resolve_precision
from avsc_core.train.resume import check_resume, wanted_config
from avsc_core.train.state import StepState, TrainState, phase1_step


def test_auto_is_mixed_on_a_gpu_and_float32_on_a_cpu(caplog):
    assert resolve_precision("auto", gpu=True) == "mixed"
    assert resolve_precision("auto", gpu=False) == "float32"
    assert resolve_precision("float32", gpu=True) == "float32"
    with caplog.at_level(logging.WARNING):
        assert resolve_precision("mixed", gpu=False) == "mixed"
    assert "--precision mixed on a CPU" in caplog.text


def test_a_mixed_network_is_saved_as_a_float32_one_with_its_weights(tmp_path):
    with precision_policy("mixed"):
        net = build_backbone("vis-inc", "tiny", 3)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    assert net.get_layer("emb1").dtype_policy.name == "mixed_float16"
    assert net.get_layer("probs").compute_dtype == "float32"  # softmax, hence the loss
    copy = float32_copy(net)
    copy.save(tmp_path / "vis.keras")
    loaded = keras.saving.load_model(tmp_path / "vis.keras", safe_mode=True)
    assert {layer.dtype_policy.name for layer in loaded.layers} == {"float32"}
    for mine, theirs in zip(net.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    frames = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded(frames)), np.asarray(net(frames)), atol=1e-2)
    assert float32_copy(loaded) is loaded


def test_mixed_precision_trains_on_a_cpu_and_the_bundle_classifies(
        tiny_dataset, tmp_path, capsys, caplog):
    out = tmp_path / "model"
    with caplog.at_level(logging.WARNING):
        code = main(["train", str(tiny_dataset), "--out", str(out), "--preset", "tiny",
                     "--backbones", "aud-mel,vis-inc", "--phase1-epochs", "1",
                     "--phase2-epochs", "1", "--precision", "mixed"])
    assert code == 0, capsys.readouterr().err
    assert "--precision mixed on a CPU" in caplog.text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["training"]["precision"] == "mixed"
    for entry in [*manifest["backbones"], *manifest["heads"].values()]:
        model = keras.saving.load_model(out / entry["file"], safe_mode=True)
        assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    capsys.readouterr()
    clip = min((tiny_dataset / "tram").glob("*.mp4"))
    assert main(["classify", "--model", str(out), str(clip), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    for branch in ("audio", "visual", "fused"):
        assert sum(answer["clip"]["branches"][branch].values()) == pytest.approx(1, abs=1e-5)


def _state(tmp_path, config: TrainConfig, started: bool) -> TrainState:
    steps = {phase1_step("aud-mel"): StepState(epochs_done=1 if started else 0)}
    return TrainState(tmp_path / "state.json", {"config": config.to_dict()}, steps)


def test_resume_keeps_the_chosen_precision_and_refuses_another_once_trained(tmp_path):
    saved = TrainConfig.for_preset("tiny", backbones=("aud-mel",), precision="mixed")
    # The app asks for its preset's config: "auto" keeps what the run chose.
    app = dataclasses.replace(saved, precision="auto")
    assert wanted_config(saved, app, None).precision == "mixed"
    wanted = wanted_config(saved, None, {"precision": "float32"})
    check_resume(tmp_path, _state(tmp_path, saved, started=False), saved, wanted)
    with pytest.raises(AvscError, match="--precision float32: this run has mixed"):
        check_resume(tmp_path, _state(tmp_path, saved, started=True), saved, wanted)
