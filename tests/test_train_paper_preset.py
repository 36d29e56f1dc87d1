"""The paper preset through the real training path, on a CPU."""

from __future__ import annotations

import json

import pytest

from avsc_core.train import TrainConfig, train_model


@pytest.mark.slow
def test_paper_audio_backbone_trains_one_epoch_on_tiny_clips(tiny_dataset, tmp_path):
    config = TrainConfig.for_preset(
        "paper", phase1_epochs=1, phase2_epochs=1, backbones=("aud-mel",), batch_size=4
    )
    out = train_model(tiny_dataset, tmp_path / "paper", config)
    manifest = json.loads((out / "manifest.json").read_text())
    (backbone,) = manifest["backbones"]
    # About 12 M trainable parameters per audio network, as in the paper.
    assert 11_000_000 < backbone["trainable_params"] < 13_000_000
    assert manifest["preset"] == "paper"
    assert manifest["history"]["phase1:aud-mel"][0]["loss"] > 0
