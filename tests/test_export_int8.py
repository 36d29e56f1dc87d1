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


def test_without_openvino_onnx_runtime_runs_it_after_every_other_export(
        int8_bundle, clip_batches, monkeypatch, caplog):
    with_openvino = Predictor(int8_bundle, runtime="onnx-int8")
    monkeypatch.setattr(runtime_module, "openvino_available", lambda: False)
    assert runtime_module.auto_order()[-1] == "onnx-int8"  # slower than fp32 there
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


@pytest.mark.parametrize(("openvino_computes", "off", "refused"), [
    ("bf16", "backbones", False),  # bf16's rounding of the unquantised backbones
    ("f32", "backbones", True),  # computed in fp32: a difference is a conversion fault
    ("bf16", "heads", True),  # the heads are computed in fp32 everywhere
])
def test_an_int8_export_refuses_only_networks_computed_in_fp32(
        openvino_computes, off, refused, trained_tiny_model, tiny_dataset, tmp_path,
        monkeypatch, capsys):
    """An int8 export's unquantised backbones run in OpenVINO's bf16 where the CPU has it:
    they are checked against Keras, not refused, as in a bf16 export; computed in fp32,
    and the heads always, they must match as an fp32 export's networks do."""
    from avsc_core.export import write as write_module

    compare = write_module._compare

    def off_by(expected, got):  # "emb2": a backbone's outputs
        diff = compare(expected, got)
        return ({k: v + 0.01 for k, v in diff.items()}
                if ("emb2" in diff) == (off == "backbones") else diff)

    monkeypatch.setattr(write_module, "_compare", off_by)
    monkeypatch.setattr(write_module, "openvino_precision", lambda: openvino_computes)
    root = tmp_path / "int8"
    shutil.copytree(trained_tiny_model, root)
    code = main(["export", "--model", str(root), "--format", "onnx", "--precision", "int8",
                 "--calibration", str(tiny_dataset), "--calibration-files", "2"])
    if refused:
        assert code == 1 and "not exported" in capsys.readouterr().err
        assert "onnx-int8" not in load_bundle(root).exports
    else:
        assert code == 0
        check = load_bundle(root).exports["onnx-int8"]["backbones"]["aud-mel"]["check"]
        assert check["max_abs_diff"]["probs"] > write_module.FP32_TOLERANCE  # recorded
    if off == "backbones" and refused:  # and in an fp32 export, wherever it runs
        shutil.copytree(trained_tiny_model, tmp_path / "fp32")
        assert main(["export", "--model", str(tmp_path / "fp32"), "--format", "onnx"]) == 1


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
    (OpenVINO's faster int8 kernels), its 7x7 depthwise convolutions stay in float, and
    the graph gives the Keras model's answers."""
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
    assert len(convs) == 6  # stem, downsampling, two blocks' two pointwise each
    grouped = [n for n in graph.node if n.op_type == "Conv" and n not in convs]
    assert len(grouped) == 2 and all(  # the two blocks' 7x7 depthwise, in float
        a.i > 1 for n in grouped for a in n.attribute if a.name == "group")
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
    assert rounded and all(readers.get(n.output[0], set()) - set(FLOAT_ONLY_OPS)
                           for n in rounded)
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
    kept_erfs = {n.output[0] for n in kept.node if n.op_type == "Erf"}
    assert len(kept_erfs) == 2
    assert {n.op_type for n in kept.node if set(n.input) & kept_erfs} == {"Sub"}
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


def _erfc_gelu_graph(constant_first: bool = False, extra_outputs: tuple[str, ...] = (),
                     neg_read_elsewhere: bool = False):
    """A hand-made graph of tf2onnx's erfc-form GELU, ``y = 0.5 x (1 - erf(-x c))``."""
    from onnx import TensorProto, helper, numpy_helper

    mul_inputs = ["c", "neg"] if constant_first else ["neg", "c"]
    nodes = [helper.make_node("Neg", ["x"], ["neg"]),
             helper.make_node("Mul", mul_inputs, ["scaled"]),
             helper.make_node("Erf", ["scaled"], ["erf"]),
             helper.make_node("Sub", ["one", "erf"], ["erfc"]),
             helper.make_node("Mul", ["x", "half"], ["half_x"]),
             helper.make_node("Mul", ["half_x", "erfc"], ["y"])]
    outputs = ["y", *extra_outputs]
    if neg_read_elsewhere:
        nodes.append(helper.make_node("Add", ["neg", "x"], ["zero"]))
        outputs.append("zero")
    values = {"c": np.array(2 ** -0.5, np.float32), "one": np.ones((1, 1), np.float32),
              "half": np.array(0.5, np.float32)}
    graph = helper.make_graph(
        nodes, "gelu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [2, 3]) for name in outputs],
        [numpy_helper.from_array(v, k) for k, v in values.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize(("case", "rewritten"), [
    ({}, 1),
    ({"constant_first": True}, 1),
    ({"neg_read_elsewhere": True}, 1),  # the Neg stays for its other reader
    ({"extra_outputs": ("scaled",)}, 0),  # its value would change sign
    ({"extra_outputs": ("erf",)}, 0),
])
def test_canonical_gelu_rewrites_only_what_nothing_else_reads(case, rewritten):
    import onnx
    import onnxruntime

    from avsc_core.export.convert import canonical_gelu

    model = _erfc_gelu_graph(**case)
    before = model.SerializeToString()
    assert canonical_gelu(model) == rewritten
    onnx.checker.check_model(model)
    if not rewritten:
        assert model.SerializeToString() == before
        return
    x = np.linspace(-3, 3, 6, dtype=np.float32).reshape(2, 3)

    def run(serialized: bytes) -> list[np.ndarray]:
        return onnxruntime.InferenceSession(
            serialized, providers=["CPUExecutionProvider"]).run(None, {"x": x})

    for want, got in zip(run(before), run(model.SerializeToString())):
        np.testing.assert_allclose(got, want, atol=1e-6)
    ops = [n.op_type for n in model.graph.node]
    assert "Div" in ops and "Sub" not in ops
    assert ("Neg" in ops) == bool(case.get("neg_read_elsewhere"))
    read = {name for n in model.graph.node for name in n.input}
    assert all(i.name in read for i in model.graph.initializer)
    assert canonical_gelu(model) == 0  # a second pass finds nothing left to do
