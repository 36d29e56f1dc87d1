"""Phase I and Phase II as separate runs, and type-1 fusion (f1), end to end through the CLI."""

from __future__ import annotations

import json

import numpy as np

from avsc_core.cli.main import main
from avsc_core.inference.classify import classify_file


def test_phase_1_then_phase_2_resume_gives_a_complete_bundle(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "model"
    common = [str(tiny_dataset), "--out", str(out), "--preset", "tiny", "--backbones",
              "aud-mel,vis-inc", "--epochs", "1", "--jobs", "1"]
    assert main(["train", *common, "--phase", "1"]) == 0
    assert "Phase I finished" in capsys.readouterr().out
    assert not (out / "manifest.json").exists()
    journal = json.loads((out / "training" / "state.json").read_text())
    assert {"phase1:aud-mel", "phase1:vis-inc"} <= set(journal["steps"])

    assert main(["train", *common, "--phase", "2"]) == 2  # Phase II needs --resume
    assert "--resume" in capsys.readouterr().err
    assert main(["train", *common, "--phase", "2", "--resume"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["heads"]) == {"audio", "visual", "fused"}
    # Phase I was not trained again: one epoch each, as the first run left them.
    assert [len(manifest["history"][f"phase1:{b}"]) for b in ("aud-mel", "vis-inc")] == [1, 1]


def test_type_1_fusion_trains_and_classifies(tiny_dataset, tmp_path):
    out = tmp_path / "f1"
    assert main(["train", str(tiny_dataset), "--out", str(out), "--preset", "tiny",
                 "--backbones", "aud-mel,vis-inc", "--fusion", "f1", "--epochs", "1",
                 "--jobs", "1"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fusion"] == "f1" and manifest["embedding_type"] == 1
    result = classify_file(tiny_dataset / "park" / "park-0.mp4", out)
    fused = result.probs["fused"]
    assert fused is not None and np.allclose(fused.sum(axis=1), 1.0, atol=1e-6)
    assert result.label in ("park", "tram")
