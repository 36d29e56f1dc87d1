"""Calibrated int8 ONNX exports (``avsc export --format onnx --precision int8 --calibration``).

The graph's ranges come from real decoded clips; OpenVINO runs it (ONNX Runtime when
OpenVINO is missing); the labels stay those of the fp32 model; the manifest says which
clips calibrated it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import keras
import numpy as np
import pytest
from conftest import clip_network_inputs, convnext_like, exported_copy

from avsc_core.bundle import load_bundle
from avsc_core.cli.main import main
from avsc_core.errors import AvscError
from avsc_core.export.quantize import (
    FLOAT_ONLY_OPS,
    calibration_inputs,
    dense_head_nodes,
    pick_files,
)
from avsc_core.inference import runtime as runtime_module
from avsc_core.inference.predictor import Predictor, choose_runtime

CALIBRATION_FILES = 6
INT8_OVERFLOWS = runtime_module.int8_overflows  # the real one, which the fixture hides


@pytest.fixture(autouse=True)
def vnni_cpu(monkeypatch):
    """Every test here runs as on a CPU with VNNI, where auto picks the int8 export (CI's
    CPU may have none); the tests of CPUs without it say so."""
    monkeypatch.setattr(runtime_module, "int8_overflows", lambda: False)


@pytest.fixture(scope="module")
def int8_bundle(trained_tiny_model, tiny_dataset, tmp_path_factory):
    """A private copy of the tiny bundle with a calibrated ONNX int8 export, made by the CLI."""
    return exported_copy(trained_tiny_model, tmp_path_factory.mktemp("int8") / "model",
                         "--format", "onnx", "--precision", "int8",
                         "--calibration", str(tiny_dataset),
                         "--calibration-files", str(CALIBRATION_FILES))


@pytest.fixture(scope="module")
def clip_batches(int8_bundle, tiny_dataset, tau_street_videos):
    """Network inputs of every tiny clip and a real TAU street video."""
    return clip_network_inputs(int8_bundle, [*sorted(tiny_dataset.rglob("*.mp4")),
                                        tau_street_videos[0]])


def test_int8_export_runs_in_openvino_with_the_fp32_labels(int8_bundle, clip_batches):
    int8 = Predictor(int8_bundle)
    assert int8.runtime == "onnx-int8" and int8.engine == "openvino"  # the fastest
    assert "OpenVINO" in int8.describe()
    keras_run = Predictor(int8_bundle, runtime="keras")
    same = total = 0
    for batch in clip_batches:
        expected = keras_run.predict(batch.features, batch.frames).branches["fused"]
        got = int8.predict(batch.features, batch.frames).branches["fused"]
        assert np.max(np.abs(expected - got)) < 0.1
        same += int(np.sum(expected.argmax(-1) == got.argmax(-1)))
        total += len(expected)
    assert same == total


def test_the_manifest_records_the_calibration_clips(int8_bundle, tiny_dataset, capsys):
    entry = int8_bundle.exports["onnx-int8"]
    record = entry["calibration"]
    expected = [p.name for p in pick_files(list(tiny_dataset.rglob("*.mp4")),
                                           CALIBRATION_FILES)]
    assert record["files"] == expected and record["skipped"] == 0
    assert set(record["segments"]) == {"vis-inc"}  # the visual backbones are quantised
    assert all(n >= CALIBRATION_FILES for n in record["segments"].values())
    precisions = {name: e["precision"] for name, e in entry["backbones"].items()}
    assert precisions == {"aud-mel": "fp32", "vis-inc": "int8"}
    assert entry["heads"]["fused"]["precision"] == "fp32"  # heads stay fp32
    assert main(["info", "--model", str(int8_bundle.root)]) == 0
    info = capsys.readouterr().out
    assert f"calibrated on {CALIBRATION_FILES} files ({', '.join(expected[:3])} and" in info


def test_lanes_split_the_frames_in_openvino_with_the_same_answers(int8_bundle, clip_batches):
    in_turn = Predictor(int8_bundle, lanes=1, threads=2)
    side_by_side = Predictor(int8_bundle, lanes=2, threads=2)
    assert side_by_side.lanes == 2 and "frames split" in side_by_side.describe()
    for batch in clip_batches[-2:]:
        a = in_turn.predict(batch.features, batch.frames)
        b = side_by_side.predict(batch.features, batch.frames)
        for name in a.backbones:
            np.testing.assert_allclose(a.backbones[name], b.backbones[name], atol=1e-5)
    assert side_by_side._split["vis-inc"]


def test_without_openvino_onnx_runtime_runs_it_after_tflite_int8(int8_bundle, clip_batches,
                                                                monkeypatch, caplog):
    with_openvino = Predictor(int8_bundle, runtime="onnx-int8")
    monkeypatch.setattr(runtime_module, "openvino_available", lambda: False)
    order = runtime_module.auto_order()
    assert order.index("tflite-int8") < order.index("onnx-int8")
    with caplog.at_level("WARNING"):
        fallback = Predictor(int8_bundle, runtime="onnx-int8")
    assert fallback.engine == "onnxruntime" and "ONNX Runtime" in fallback.describe()
    assert "pip install openvino" in caplog.text  # it runs, but no faster than fp32
    for batch in clip_batches[:2]:
        a = with_openvino.predict(batch.features, batch.frames).branches["fused"]
        b = fallback.predict(batch.features, batch.frames).branches["fused"]
        assert np.array_equal(a.argmax(-1), b.argmax(-1))
        assert np.max(np.abs(a - b)) < 0.05  # the same graph; int8 kernels round alike


def test_cli_refuses_int8_onnx_without_usable_calibration(trained_tiny_model, tmp_path,
                                                         capsys):
    root = tmp_path / "model"
    shutil.copytree(trained_tiny_model, root)
    base = ["export", "--model", str(root), "--format", "onnx", "--precision", "int8"]
    assert main(base) == 2  # a usage error: --calibration is needed there
    err = capsys.readouterr().err.strip()
    assert "--calibration" in err and "\n" not in err
    assert main([*base, "--calibration", str(tmp_path / "nowhere")]) == 1
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([*base, "--calibration", str(tmp_path / "empty")]) == 1
    assert "no media files there" in capsys.readouterr().err
    assert not (root / "exports").exists()  # nothing half-written


def test_undecodable_calibration_files_are_skipped_then_refused(trained_tiny_model,
                                                               tiny_dataset, tmp_path):
    bundle = load_bundle(trained_tiny_model)
    folder = tmp_path / "clips"
    folder.mkdir()
    broken = folder / "0-broken.mp4"  # sorts first: it is among the files picked
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 500)
    clips = []
    for clip in sorted(tiny_dataset.rglob("*.mp4"))[:3]:
        clips.append(folder / clip.name)
        shutil.copy(clip, clips[-1])
    calibration = calibration_inputs(bundle, [broken, clips[0], clips[0]], count=2)
    # A file named twice counts once; the broken one is skipped, not fatal.
    assert calibration.skipped == (str(broken),) and calibration.files == (str(clips[0]),)
    assert all(calibration.inputs.values())
    # A skipped pick is replaced by the next unused file: still `count` files in the end.
    calibration = calibration_inputs(bundle, [broken, *clips], count=3)
    assert calibration.files == tuple(map(str, clips)) and calibration.skipped == (str(broken),)
    with pytest.raises(AvscError, match="no calibration frames"):
        calibration_inputs(bundle, [broken])
    with pytest.raises(AvscError, match="at least 1 file"):
        calibration_inputs(bundle, clips, count=0)


def test_calibration_is_refused_where_nothing_is_calibrated(trained_tiny_model, tiny_dataset,
                                                             capsys):
    assert main(["export", "--model", str(trained_tiny_model), "--format", "tflite",
                 "--precision", "int8", "--calibration", str(tiny_dataset)]) == 2
    assert "is not calibrated" in capsys.readouterr().err


def test_bf16_rounding_of_an_int8_exports_fp32_backbones_is_not_refused(
        trained_tiny_model, tiny_dataset, tmp_path, monkeypatch, capsys):
    """OpenVINO computes an int8 export's unquantised backbones in bf16 where the CPU has
    it, further from Keras than an fp32 export may be: they are checked, not refused (as
    in a bf16 export); its fp32 heads, and an fp32 export, still are."""
    from avsc_core.export import write as write_module

    compare = write_module._compare

    def bf16_like(expected, got):  # a backbone's outputs, as bf16 would round them
        diff = compare(expected, got)
        return {k: v + 0.01 for k, v in diff.items()} if "emb2" in diff else diff

    monkeypatch.setattr(write_module, "_compare", bf16_like)
    int8 = exported_copy(trained_tiny_model, tmp_path / "int8", "--format", "onnx",
                         "--precision", "int8", "--calibration", str(tiny_dataset),
                         "--calibration-files", "2")
    assert int8.exports["onnx-int8"]["backbones"]["aud-mel"]["check"]["max_abs_diff"][
        "probs"] > write_module.FP32_TOLERANCE
    shutil.copytree(trained_tiny_model, tmp_path / "fp32")
    assert main(["export", "--model", str(tmp_path / "fp32"), "--format", "onnx"]) == 1
    assert "not exported" in capsys.readouterr().err


def test_a_gpu_runs_the_fp32_onnx_export_not_the_calibrated_one(int8_bundle, monkeypatch):
    from avsc_core.inference import predictor as predictor_module
    from avsc_core.inference.predictor import choose_runtime, runtime_device

    monkeypatch.delenv("AVSC_DEVICE", raising=False)
    monkeypatch.setattr(predictor_module, "gpu_visible", lambda: True)
    monkeypatch.setattr(predictor_module, "onnx_cuda", lambda: True)
    # With only the int8 ONNX export, the GPU cannot take it: it stays on the CPU.
    assert runtime_device(int8_bundle, "onnx-int8") == "cpu"
    both = SimpleNamespace(exports={"onnx-int8": {"format": "onnx", "precision": "int8"},
                                    "onnx-fp32": {"format": "onnx", "precision": "fp32"}},
                           backbone_names=[], head_names=[], root=int8_bundle.root)
    monkeypatch.setattr(predictor_module, "_complete", lambda bundle, export: True)
    assert choose_runtime(both) == "onnx-fp32"
    assert choose_runtime(both, "onnx") == "onnx-fp32"
    assert choose_runtime(both, "onnx", device="cpu") == "onnx-int8"
    # An int8-only bundle on a machine whose TensorFlow sees the GPU: Keras there.
    monkeypatch.setattr(predictor_module, "tensorflow_gpus", lambda: ("/physical_device:GPU:0",))
    assert choose_runtime(int8_bundle) == "keras"


def test_the_dense_head_after_pooling_stays_fp32(int8_bundle):
    import onnx

    entry = int8_bundle.exports["onnx-int8"]["backbones"]["vis-inc"]
    model = onnx.load(str(int8_bundle.export_file(entry)))
    graph, head = model.graph, dense_head_nodes(model.SerializeToString())
    assert head
    quantised_inputs = {i for n in graph.node if n.op_type == "DequantizeLinear"
                        for i in n.output}
    by_name = {n.name: n for n in graph.node}
    for name in head:  # fed straight, not through a DequantizeLinear
        assert not set(by_name[name].input) & quantised_inputs
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert convs and all(set(n.input) & quantised_inputs for n in convs)


def test_convnext_pointwise_layers_run_as_int8_convolutions(tmp_path):
    """A ConvNeXt's Dense layers on images reach the int8 graph as quantised 1x1 Conv
    (OpenVINO's faster int8 kernels), with the Keras model's answers."""
    import onnx

    from avsc_core.export.convert import to_onnx
    from avsc_core.export.graph import backbone_graph
    from avsc_core.export.quantize import quantize_onnx
    from avsc_core.inference.backbones import OUTPUTS

    model = convnext_like(seed=2)
    inputs = backbone_graph(model, None, tmp_path / "sm", pointwise_as_conv=True)
    rng = np.random.default_rng(0)
    samples = [rng.uniform(0, 255, (4, 32, 32, 3)).astype(np.float32) for _ in range(4)]
    path = tmp_path / "int8.onnx"
    path.write_bytes(quantize_onnx(to_onnx(tmp_path / "sm"), inputs, samples))
    graph = onnx.load(str(path)).graph
    quantised = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    convs = [n for n in graph.node if n.op_type == "Conv" and set(n.input) & quantised]
    assert len(convs) >= 6  # stem, downsampling, two blocks' 7x7 and two pointwise each
    assert not any(n.op_type == "MatMul" and set(n.input) & quantised for n in graph.node)
    network = runtime_module.open_network("onnx", path, {"inputs": inputs, "batch": 4},
                                          threads=1, exact=True)
    x = samples[0]
    expected = keras.Model(model.input, [model.get_layer(n).output for n in OUTPUTS])(x)
    got = network(x)
    probs = np.asarray(expected[-1])
    assert np.max(np.abs(got["probs"] - probs)) < 0.05
    assert np.array_equal(got["probs"].argmax(-1), probs.argmax(-1))
    # Only int8 layers read int8-rounded activations: LayerNorm, GELU and the residual
    # additions read the convolutions' float outputs.
    readers: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, set()).add(node.op_type)
    weights = {i.name for i in graph.initializer}
    rounded = [n for n in graph.node if n.op_type == "DequantizeLinear"
               and n.input[0] not in weights]
    assert rounded and all(readers[n.output[0]] - set(FLOAT_ONLY_OPS) for n in rounded)
    conv_readers = set().union(*(readers.get(n.output[0], set()) for n in convs))
    assert {"ReduceMean", "Div", "Add"} <= conv_readers  # LayerNorm, GELU, residual


def test_convnext_gelu_reaches_onnx_in_the_form_engines_fuse(tmp_path):
    """TensorFlow's exact GELU, 0.5 x erfc(-x / sqrt 2), is written as 0.5 x (1 + erf(x /
    sqrt 2)), which OpenVINO and ONNX Runtime compute as one GELU, with Keras's answers."""
    import onnx

    from avsc_core.export.convert import to_onnx
    from avsc_core.export.graph import backbone_graph
    from avsc_core.inference.backbones import OUTPUTS

    model = convnext_like(seed=3)
    inputs = backbone_graph(model, 4, tmp_path / "sm")
    path = tmp_path / "fp32.onnx"
    path.write_bytes(to_onnx(tmp_path / "sm"))
    graph = onnx.load(str(path)).graph
    producer = {o: n for n in graph.node for o in n.output}
    erfs = [n for n in graph.node if n.op_type == "Erf"]
    assert len(erfs) == 2  # one GELU a block
    assert all(producer[n.input[0]].op_type == "Div" for n in erfs)
    assert {n.op_type for n in graph.node if set(n.input) & {e.output[0] for e in erfs}} == {
        "Add"}
    assert not any(n.op_type == "Neg" and n.output[0] in producer[e.input[0]].input
                   for e in erfs for n in graph.node)
    read = {name for n in graph.node for name in n.input}
    assert all(i.name in read for i in graph.initializer)  # ONNX Runtime warns of others
    # The bf16 export keeps TensorFlow's form (slower fused in OpenVINO without bf16).
    kept = onnx.load_from_string(to_onnx(tmp_path / "sm", gelu_op=False)).graph
    assert [n.op_type for n in kept.node if n.op_type in ("Erf", "Sub")].count("Erf") == 2
    assert not any(n.op_type == "Div" for n in kept.node)
    x = np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    expected = keras.Model(model.input, [model.get_layer(n).output for n in OUTPUTS])(x)
    for engine in ("openvino", "onnxruntime"):
        got = runtime_module.open_network("onnx", path, {"inputs": inputs, "batch": 4},
                                          threads=1, engine=engine, exact=True)(x)
        for name, want in zip(OUTPUTS, expected):
            np.testing.assert_allclose(got[name], np.asarray(want), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("machine", "flags", "cap", "overflows"), [
    ("x86_64", ("sse4_2", "avx", "avx2", "fma"), "", True),  # AVX2 only
    ("x86_64", ("avx2", "avx512f", "avx512_vnni"), "", False),
    ("AMD64", ("avx2", "avx_vnni"), "", False),
    ("x86_64", ("avx2", "avx512f", "avx512_vnni"), "ONEDNN_MAX_CPU_ISA=AVX2", True),
    ("x86_64", ("avx2", "avx512f", "avx512_vnni"), "DNNL_MAX_CPU_ISA=avx512_core", True),
    ("x86_64", ("avx2", "avx512f", "avx512_vnni"), "ONEDNN_MAX_CPU_ISA=AVX2_VNNI", True),
    ("x86_64", ("avx2", "avx_vnni"), "ONEDNN_MAX_CPU_ISA=AVX2_VNNI", False),
    ("aarch64", ("asimd",), "", False),  # Arm: no vpmaddubsw
])
def test_which_cpus_overflow_on_the_int8_weights(machine, flags, cap, overflows, monkeypatch):
    from avsc_core.inference import device as device_module

    monkeypatch.setattr(runtime_module.platform, "machine", lambda: machine)
    monkeypatch.setattr(device_module, "cpu_info",
                        lambda: device_module.CpuInfo("test CPU", 2, flags))
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(name, raising=False)
    if cap:
        monkeypatch.setenv(*cap.split("="))
    INT8_OVERFLOWS.cache_clear()
    try:
        assert INT8_OVERFLOWS() is overflows
    finally:
        INT8_OVERFLOWS.cache_clear()


def test_the_int8_export_is_passed_over_on_a_cpu_without_vnni(int8_bundle, monkeypatch,
                                                              caplog):
    monkeypatch.setattr(runtime_module, "int8_overflows", lambda: True)
    with caplog.at_level("WARNING"):
        assert choose_runtime(int8_bundle) != "onnx-int8"
    assert "runs the networks, not the onnx-int8 export: without VNNI" in caplog.text
    assert Predictor(int8_bundle).describe().endswith(
        "; not the onnx-int8 export, whose int8 layers overflow on a CPU without VNNI")
    assert choose_runtime(int8_bundle, "onnx") == "onnx-int8"  # the only ONNX export
    caplog.clear()
    with caplog.at_level("WARNING"):
        asked = Predictor(int8_bundle, runtime="onnx-int8")  # asked for by name: it runs
    assert asked.runtime == "onnx-int8" and "labels may differ" in caplog.text


def test_onednn_capped_below_vnni_labels_with_another_runtime(int8_bundle, tiny_dataset):
    """oneDNN limited to AVX2 (``ONEDNN_MAX_CPU_ISA``), as on a CPU without VNNI: auto
    does not run the int8 export, whose layers would overflow there."""
    clip = min(tiny_dataset.rglob("*.mp4"))
    command = [sys.executable, "-m", "avsc_core", "classify", "--model",
               str(int8_bundle.root), str(clip), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2",
                               "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["runtime"] != "onnx-int8"
    assert "not the onnx-int8 export: without VNNI" in done.stderr
