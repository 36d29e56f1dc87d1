"""ONNX bf16 exports (``avsc export --format onnx --precision bf16``): the fp32 graph, which
OpenVINO computes in bf16 where the CPU does so natively, with the labels of the fp32 model
and no calibration."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import clip_network_inputs, exported_copy

from avsc_core.cli.main import main
from avsc_core.inference import runtime as runtime_module
from avsc_core.inference.predictor import Predictor


@pytest.fixture(scope="module")
def bf16_bundle(trained_tiny_model, tmp_path_factory):
    """A private copy of the tiny bundle with an ONNX bf16 export, made by the CLI."""
    return exported_copy(trained_tiny_model, tmp_path_factory.mktemp("bf16") / "model",
                         "--format", "onnx", "--precision", "bf16")


@pytest.fixture(scope="module")
def clip_batches(bf16_bundle, tiny_dataset, tau_street_videos):
    """Network inputs of every tiny clip and a real TAU street video."""
    return clip_network_inputs(bf16_bundle, [*sorted(tiny_dataset.rglob("*.mp4")),
                                        tau_street_videos[0]])


def test_bf16_export_runs_in_openvino_with_the_fp32_labels(bf16_bundle, clip_batches):
    entry = bf16_bundle.exports["onnx-bf16"]
    assert {e["precision"] for e in entry["backbones"].values()} == {"bf16"}
    assert "calibration" not in entry  # nothing to calibrate
    bf16 = Predictor(bf16_bundle)
    assert bf16.runtime == "onnx-bf16" and bf16.engine == "openvino"
    precision = "bf16" if runtime_module.openvino_precision() == "bf16" else "fp32"
    assert f"float layers in {precision}" in bf16.describe()
    keras_run = Predictor(bf16_bundle, runtime="keras")
    for batch in clip_batches:
        expected = keras_run.predict(batch.features, batch.frames).branches["fused"]
        got = bf16.predict(batch.features, batch.frames).branches["fused"]
        assert np.array_equal(expected.argmax(-1), got.argmax(-1))
        assert np.max(np.abs(expected - got)) < 0.02  # bf16 rounding, not int8's


def test_lanes_split_the_frames_of_the_bf16_graphs(bf16_bundle, clip_batches):
    in_turn = Predictor(bf16_bundle, lanes=1, threads=2)
    side_by_side = Predictor(bf16_bundle, lanes=2, threads=2)
    for batch in clip_batches[-2:]:
        a = in_turn.predict(batch.features, batch.frames)
        b = side_by_side.predict(batch.features, batch.frames)
        for name in a.backbones:
            np.testing.assert_allclose(a.backbones[name], b.backbones[name], atol=1e-5)
    assert side_by_side._split["vis-inc"]  # the graph takes a lane's share of the frames


def test_bf16_comes_before_tflite_int8_only_where_the_cpu_computes_bf16(monkeypatch):
    monkeypatch.setattr(runtime_module, "openvino_precision", lambda: "bf16")
    native = runtime_module.auto_order()
    assert native.index("onnx-int8") < native.index("onnx-bf16") < native.index("tflite-int8")
    monkeypatch.setattr(runtime_module, "openvino_precision", lambda: "f32")
    emulated = runtime_module.auto_order()
    assert emulated.index("tflite-int8") < emulated.index("onnx-bf16") < emulated.index(
        "tflite-fp32")
    # Without OpenVINO it is the fp32 graph in ONNX Runtime, just before onnx fp32 (and
    # the int8 graph, written for OpenVINO, slower still there).
    monkeypatch.setattr(runtime_module, "openvino_available", lambda: False)
    assert runtime_module.auto_order()[-3:] == ("onnx-bf16", "onnx-fp32", "onnx-int8")


def test_without_openvino_onnx_runtime_runs_it_as_fp32(bf16_bundle, clip_batches, monkeypatch):
    monkeypatch.setattr(runtime_module, "openvino_available", lambda: False)
    fallback = Predictor(bf16_bundle, runtime="onnx-bf16")
    assert fallback.engine == "onnxruntime"
    keras_run = Predictor(bf16_bundle, runtime="keras")
    for batch in clip_batches[:2]:
        expected = keras_run.predict(batch.features, batch.frames).branches["fused"]
        got = fallback.predict(batch.features, batch.frames).branches["fused"]
        np.testing.assert_allclose(got, expected, atol=1e-4)  # the fp32 graph


def test_the_cli_says_when_this_machine_computes_it_in_fp32(trained_tiny_model, tmp_path,
                                                            monkeypatch, capsys):
    root = tmp_path / "model"
    shutil.copytree(trained_tiny_model, root)
    monkeypatch.setattr(runtime_module, "openvino_precision", lambda: "f32")
    assert main(["export", "--model", str(root), "--format", "onnx",
                 "--precision", "bf16"]) == 0
    captured = capsys.readouterr()
    assert "exported" in captured.out and "as onnx-bf16" in captured.out
    assert captured.err.strip().startswith("avsc export: note: this CPU has no native bf16")
    assert captured.err.count("\n") == 1


def test_onednn_capped_below_bf16_computes_in_fp32(bf16_bundle, tiny_dataset, monkeypatch):
    """``ONEDNN_MAX_CPU_ISA=AVX2`` (a CPU without AVX-512, as ``benchmarks/label.py``'s
    ``isa`` emulates it): OpenVINO still lists BF16 but cannot build bf16 layers, so avsc
    asks it for fp32 (it used to stop at the first network on a bf16 CPU)."""
    bf16_cpu = SimpleNamespace(get_property=lambda device, name: ["BF16", "FP32", "INT8"])
    monkeypatch.setattr(runtime_module, "_openvino_core", lambda: bf16_cpu)
    runtime_module.openvino_precision.cache_clear()
    try:
        assert runtime_module.openvino_precision() == "bf16"
        runtime_module.openvino_precision.cache_clear()
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
        assert runtime_module.openvino_precision() == "f32"
    finally:
        monkeypatch.undo()
        runtime_module.openvino_precision.cache_clear()
    clip = min(tiny_dataset.rglob("*.mp4"))
    done = subprocess.run(
        [sys.executable, "-m", "avsc_core", "classify", "--model", str(bf16_bundle.root),
         str(clip), "--runtime", "onnx-bf16", "--json"],
        env={**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["runtime"] == "onnx-bf16"
