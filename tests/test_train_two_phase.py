"""Two-phase training end to end on a tiny dataset, and the bundle it writes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avsc_core.bundle import BundleError, load_bundle
from avsc_core.errors import AvscError
from avsc_core.evaluation.evaluate import evaluate_model
from avsc_core.progress import Cancelled
from avsc_core.train import TrainConfig, train_model
from avsc_core.train.state import TrainState


def test_bundle_has_a_valid_manifest_and_all_heads(trained_tiny_model):
    manifest = json.loads((trained_tiny_model / "manifest.json").read_text())
    assert manifest["strategy"] == "two-phase" and manifest["fusion"] == "f4"
    assert manifest["classes"] == ["park", "tram"]
    assert [b["name"] for b in manifest["backbones"]] == ["aud-mel", "vis-inc"]
    assert set(manifest["heads"]) == {"audio", "visual", "fused"}
    assert manifest["heads"]["fused"]["inputs"] == ["aud-mel", "vis-inc"]
    assert manifest["features"]["n_bins"] == 128 and manifest["media"]["sample_rate"] == 32000
    assert len(manifest["history"]["phase1:aud-mel"]) == 2
    # Checkpoints are working files: gone once the bundle is complete.
    assert not (trained_tiny_model / "training" / "checkpoints").exists()
    load_bundle(trained_tiny_model).verify()


def test_evaluate_follows_the_contract_and_matches_training_metrics(
    trained_tiny_model, tiny_dataset
):
    result = evaluate_model(trained_tiny_model, tiny_dataset, split="test")
    assert set(result["branches"]) == {"audio", "visual", "fused"}
    assert result["classes"] == ["park", "tram"]
    manifest = json.loads((trained_tiny_model / "manifest.json").read_text())
    recorded = manifest["metrics"]["test"]
    assert result["n"] == recorded["n"] > 0
    assert len(result["clips"]) == result["n"]
    for row in result["clips"]:
        assert row["label"] in ("park", "tram") and row["predicted"]["fused"] in ("park", "tram")
    for branch in ("audio", "visual", "fused"):
        metrics = result["branches"][branch]
        assert set(metrics) == {"accuracy", "log_loss", "per_class_accuracy", "confusion", "ece",
                                "uncalibrated"}
        assert np.sum(metrics["confusion"]) == result["n"]
        # The same models through the inference path give the training-time numbers.
        assert metrics["log_loss"] == pytest.approx(
            recorded["branches"][branch]["log_loss"], rel=1e-4
        )


def test_evaluate_uses_the_recorded_split(trained_tiny_model, tiny_dataset):
    manifest = json.loads((trained_tiny_model / "manifest.json").read_text())
    test_files = {c["audio"] for c in manifest["dataset"]["clips"] if c["split"] == "test"}
    everything = evaluate_model(trained_tiny_model, tiny_dataset, split="all")
    assert evaluate_model(trained_tiny_model, tiny_dataset)["n"] == len(test_files)
    assert everything["n"] == 10


def test_tampered_model_file_is_refused(trained_tiny_model, tmp_path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(trained_tiny_model, copy)
    target = copy / "backbones" / "aud-mel.keras"
    target.write_bytes(target.read_bytes()[:-10])
    with pytest.raises(BundleError, match="aud-mel.keras is corrupt"):
        load_bundle(copy)


def test_unknown_manifest_version_is_refused(trained_tiny_model, tmp_path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(trained_tiny_model, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["schema_version"] = 99
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="version 99 is not supported"):
        load_bundle(copy)


def test_existing_output_is_not_overwritten(trained_tiny_model, tiny_dataset):
    with pytest.raises(AvscError, match="already there"):
        train_model(tiny_dataset, trained_tiny_model, TrainConfig.for_preset("tiny"))


def test_cancel_then_resume_loses_no_finished_epoch(tiny_dataset, tmp_path):
    config = TrainConfig.for_preset(
        "tiny", phase1_epochs=3, phase2_epochs=2, backbones=("aud-gam",), batch_size=4
    )
    out = tmp_path / "model"
    epochs_seen: list[int] = []

    def progress(event):
        if event.info.get("event") == "epoch" and event.stage == "phase1:aud-gam":
            epochs_seen.append(event.done)

    # Stop during the second epoch.
    with pytest.raises(Cancelled):
        train_model(
            tiny_dataset, out, config, progress=progress, cancel=lambda: len(epochs_seen) >= 1
        )
    state = TrainState.load(out / "training" / "state.json")
    assert state.steps["phase1:aud-gam"].epochs_done == 1
    assert (out / "training" / "checkpoints" / "aud-gam.last.npz").exists()
    with pytest.raises(AvscError, match="--resume"):
        train_model(tiny_dataset, out, config)

    epochs_seen.clear()
    train_model(tiny_dataset, out, config, resume=True, progress=progress)
    assert epochs_seen == [2, 3]  # epoch 1 was not trained again
    manifest = json.loads((out / "manifest.json").read_text())
    assert [h["epoch"] for h in manifest["history"]["phase1:aud-gam"]] == [1, 2, 3]
    assert manifest["heads"].keys() == {"audio"}
