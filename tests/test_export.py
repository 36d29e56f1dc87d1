"""``avsc export``: optimised copies of a bundle's networks, and Predictor running them.

The answers must not change: an fp32 export gives the Keras probabilities to 1e-3 on real
clips, int8 gives the same labels. Exports are recorded in the manifest with checksums.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from avsc_core.bundle import BundleError, load_bundle
from avsc_core.cli.main import main
from avsc_core.errors import AvscError
from avsc_core.export import export_model
from avsc_core.features import file_features, file_frames
from avsc_core.inference.predictor import Predictor

TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def exported(trained_tiny_model, tmp_path_factory):
    """A private copy of the tiny bundle with a TFLite fp32 export (the fixture is shared)."""
    root = tmp_path_factory.mktemp("export") / "model"
    shutil.copytree(trained_tiny_model, root)
    result = export_model(root, "tflite", "fp32")
    return root, result


@pytest.fixture(scope="module")
def real_inputs(exported, tau_audio_files, tau_street_videos):
    """Network inputs of a real TAU audio clip and a real TAU street video."""
    bundle = load_bundle(exported[0])
    kinds = Predictor(bundle, runtime="keras").needs()[0]
    audio = tau_audio_files[0]
    video = tau_street_videos[0]
    return [
        (file_features(audio, kinds, bundle.media, bundle.features), None),
        (file_features(video, kinds, bundle.media, bundle.features),
         file_frames(video, bundle.media)),
    ]


def max_difference(a, b) -> float:
    """Largest absolute difference over every backbone and branch of two predictions."""
    diffs = [np.max(np.abs(a.backbones[k] - b.backbones[k])) for k in a.backbones]
    diffs += [np.max(np.abs(a.branches[k] - b.branches[k]))
              for k in a.branches if a.branches[k] is not None]
    assert set(a.backbones) == set(b.backbones)
    assert {k for k, v in a.branches.items() if v is None} == {
        k for k, v in b.branches.items() if v is None}
    return float(max(diffs))


def test_fp32_export_gives_the_keras_answers_on_real_clips(exported, real_inputs):
    root, result = exported
    bundle = load_bundle(root)
    keras_run = Predictor(bundle, runtime="keras")
    auto = Predictor(bundle)
    assert auto.runtime == "tflite-fp32"  # used without being asked
    for features, frames in real_inputs:
        expected = keras_run.predict(features, frames)
        got = auto.predict(features, frames)
        assert max_difference(expected, got) <= TOLERANCE
        assert got.branches["fused"].shape == (1, len(bundle.classes))
    assert result.max_abs_diff <= TOLERANCE


def test_export_is_recorded_with_checksums_inside_the_bundle(exported):
    root = exported[0]
    manifest = json.loads((root / "manifest.json").read_text())
    entry = manifest["exports"]["tflite-fp32"]
    assert entry["format"] == "tflite" and entry["precision"] == "fp32"
    assert set(entry["backbones"]) == {"aud-mel", "vis-inc"}
    assert set(entry["heads"]) == set(manifest["heads"])
    for network in [*entry["backbones"].values(), *entry["heads"].values()]:
        path = root / network["file"]
        assert path.is_file() and root in path.resolve().parents
        assert len(network["sha256"]) == 64
    # Fusion heads take dict inputs named like "aud-mel": the export maps them.
    assert entry["heads"]["fused"]["inputs"] == {"aud-mel": "aud_mel", "vis-inc": "vis_inc"}
    assert load_bundle(root).exports["tflite-fp32"] == entry


def test_a_changed_export_file_is_refused_by_name(exported, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(exported[0], copy)
    entry = load_bundle(copy).exports["tflite-fp32"]["backbones"]["aud-mel"]
    with open(copy / entry["file"], "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BundleError, match="aud-mel.tflite is corrupt"):
        load_bundle(copy)


def test_a_manifest_pointing_outside_the_bundle_is_refused(exported, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(exported[0], copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["exports"]["tflite-fp32"]["heads"]["fused"]["file"] = "../elsewhere.tflite"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="points outside the bundle"):
        load_bundle(copy)


def test_asking_for_a_missing_runtime_says_how_to_make_it(exported):
    bundle = load_bundle(exported[0])
    with pytest.raises(AvscError, match="no onnx export.*avsc export"):
        Predictor(bundle, runtime="onnx")
    assert Predictor(bundle, runtime="keras").runtime == "keras"
    assert Predictor(bundle, runtime="tflite").runtime == "tflite-fp32"


def test_runtime_option_chooses_what_answers(exported, tiny_dataset, tau_street_videos,
                                             tmp_path, capsys):
    """``--runtime`` of classify, label and evaluate: ``keras`` gives the trained model's own
    answers (those ``avsc info``'s metrics come from) although the bundle has an export."""
    from avsc_core.evaluation.evaluate import evaluate_model

    root = exported[0]
    video = str(tau_street_videos[0])
    answers = {}
    for runtime in ("auto", "keras"):
        assert main(["classify", "--model", str(root), video, "--json",
                     "--runtime", runtime]) == 0
        answers[runtime] = json.loads(capsys.readouterr().out)
    assert (answers["auto"]["runtime"], answers["keras"]["runtime"]) == ("tflite-fp32", "keras")
    assert main(["classify", "--model", str(root), video, "--runtime", "onnx"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no onnx export in this model (exports: tflite-fp32)" in err
    assert main(["classify", "--model", str(root), video, "--runtime", "fastest"]) == 1
    err = capsys.readouterr().err
    assert "unknown runtime 'fastest': auto, keras, a format (tflite, onnx)" in err

    assert main(["info", "--model", str(root)]) == 0
    assert "runtime    tflite-fp32 export on the CPU (XNNPACK" in capsys.readouterr().out
    recorded = json.loads((root / "manifest.json").read_text())["metrics"]["test"]
    evaluated = evaluate_model(root, tiny_dataset, split="test", runtime="keras")
    assert evaluated["runtime"] == "keras"
    for branch in ("audio", "visual", "fused"):
        assert evaluated["branches"][branch]["log_loss"] == pytest.approx(
            recorded["branches"][branch]["log_loss"], abs=1e-6)

    out = tmp_path / "labels.csv"
    assert main(["label", "--model", str(root), str(tiny_dataset), "--recursive",
                 "--out", str(out), "--runtime", "keras"]) == 0
    params = json.loads((tmp_path / "labels.params.json").read_text())
    assert params["runtime"] == "keras"  # recorded with the run's settings
    # Resumed with another runtime: accepted (shards may run on other machines), recorded.
    assert main(["label", "--model", str(root), str(tiny_dataset), "--recursive",
                 "--out", str(out), "--resume"]) == 0
    params = json.loads((tmp_path / "labels.params.json").read_text())
    assert (params["runtime"], params["earlier_runtimes"]) == ("tflite-fp32", ["keras"])


def test_visual_network_runs_any_number_of_frames(exported, real_inputs):
    """The graph has a fixed batch (one segment's frames); other counts are padded."""
    bundle = load_bundle(exported[0])
    runner = Predictor(bundle).backbone("vis-inc")
    frames = real_inputs[1][1][0]
    assert runner.batch_size == len(frames) == bundle.media.frames_per_segment
    whole = runner(frames)
    part = runner(frames[:7])
    for name in ("emb1", "emb2", "probs"):
        np.testing.assert_allclose(part[name], whole[name][:7], atol=1e-6)


def test_cli_export_refuses_what_it_cannot_write(exported, tmp_path, capsys):
    assert main(["export", "--model", str(exported[0]), "--format", "tflite",
                 "--precision", "bf16"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("avsc export: error: --precision bf16:") and "\n" not in err
    assert main(["export", "--model", str(exported[0]), "--format", "onnx",
                 "--precision", "int8"]) == 2
    assert "--calibration FILE_OR_FOLDER" in capsys.readouterr().err  # int8 onnx is calibrated
    assert main(["export", "--model", str(tmp_path / "none"), "--format", "tflite"]) == 1
    assert "model not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "--model", str(exported[0]), "--format", "coreml"])
    assert exit_info.value.code == 2


@pytest.mark.slow
def test_int8_and_onnx_exports_coexist_and_keep_the_labels(exported, real_inputs, tmp_path,
                                                          capsys):
    root = tmp_path / "model"
    shutil.copytree(exported[0], root)
    assert main(["export", "--model", str(root), "--format", "tflite",
                 "--precision", "int8"]) == 0
    assert "exported 5 networks as tflite-int8" in capsys.readouterr().out
    assert main(["export", "--model", str(root), "--format", "onnx"]) == 0
    bundle = load_bundle(root)
    assert set(bundle.exports) == {"tflite-fp32", "tflite-int8", "onnx-fp32"}
    assert Predictor(bundle).runtime == "tflite-int8"  # the fastest one
    fp32 = Predictor(bundle, runtime="tflite-fp32")
    for features, frames in real_inputs:
        reference = fp32.predict(features, frames)
        onnx = Predictor(bundle, runtime="onnx").predict(features, frames)
        assert max_difference(reference, onnx) <= TOLERANCE
        int8 = Predictor(bundle, runtime="tflite-int8").predict(features, frames)
        for branch, probs in reference.branches.items():
            if probs is not None:
                assert np.array_equal(probs.argmax(-1), int8.branches[branch].argmax(-1))
    # Exporting again replaces the earlier copy instead of piling up folders.
    before = sorted(p.name for p in (root / "exports").iterdir())
    export_model(root, "tflite", "int8")
    after = sorted(p.name for p in (root / "exports").iterdir())
    assert len(after) == len(before) == 3
    assert [n for n in after if n.startswith("tflite-int8")] != [
        n for n in before if n.startswith("tflite-int8")]


def test_folders_left_by_a_killed_export_are_cleared_but_live_ones_kept(exported, tmp_path):
    import os
    import subprocess

    from avsc_core.export.write import OWNER, remove_leftovers

    root = tmp_path / "model"
    shutil.copytree(exported[0], root)
    exports = root / "exports"
    dead_pid = subprocess.Popen(["true"])  # once it has exited its pid belongs to no one
    dead_pid.wait()
    killed = exports / ".tflite-int8-1.partial"
    killed.mkdir()
    (killed / OWNER).write_text(str(dead_pid.pid))
    renamed = exports / "onnx-fp32-2"  # killed after the rename, before the manifest
    renamed.mkdir()
    (renamed / OWNER).write_text(str(dead_pid.pid))
    running = exports / ".onnx-fp32-3.partial"  # another export still writing
    running.mkdir()
    (running / OWNER).write_text(str(os.getpid()))

    removed = remove_leftovers(load_bundle(root))
    assert sorted(p.name for p in removed) == [".tflite-int8-1.partial", "onnx-fp32-2"]
    assert running.exists()
    bundle = load_bundle(root)  # the recorded export is untouched and still valid
    assert Predictor(bundle).runtime == "tflite-fp32"
    assert not any((exports / p).exists() for p in (".tflite-int8-1.partial", "onnx-fp32-2"))
    recorded = {(root / e["file"]).parent for e in bundle.exports["tflite-fp32"]["backbones"].values()}
    assert all(not (folder / OWNER).exists() for folder in recorded)
