"""Faster inference without other answers: LayerNorm folding, networks side by side,
decoding ahead of the networks, segments of several files in one batch, the GPU choice."""

from __future__ import annotations

import shutil
import threading
import time
from types import SimpleNamespace

import keras
import numpy as np
import pytest
from conftest import convnext_like, write_media

from avsc_core.backbones import modality_of
from avsc_core.bundle import load_bundle
from avsc_core.errors import AvscError
from avsc_core.export import FP32_TOLERANCE, export_model
from avsc_core.export.convert import to_tflite
from avsc_core.export.graph import backbone_graph, fold_plan, prepared_for_export
from avsc_core.inference import decoding
from avsc_core.inference import device as device_module
from avsc_core.inference import pipeline as pipeline_module
from avsc_core.inference import predictor as predictor_module
from avsc_core.inference.backbones import OUTPUTS
from avsc_core.inference.classify import plan_for
from avsc_core.inference.decoding import DecodeAhead
from avsc_core.inference.inputs import iter_input_batches
from avsc_core.inference.predictor import Predictor, choose_runtime, runtime_device
from avsc_core.inference.runtime import TFLiteNetwork
from avsc_core.label import label_folder
from avsc_core.label import run as label_run
from avsc_core.media import probe

# --- the LayerNorm fold ------------------------------------------------------------------


def outputs(model: keras.Model, x: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(o) for o in keras.Model(
        model.input, [model.get_layer(n).output for n in OUTPUTS])(x)]


def test_layer_norm_and_layer_scale_fold_exactly():
    model = convnext_like()
    norms, scales = fold_plan(model)
    # The blocks' and the downsampling LayerNorm; not the stem's (read by a padded 7x7
    # convolution and a residual) nor the final one (the last layer of its model).
    assert norms == {"s0b0_pw1": "s0b0_ln", "s1b0_pw1": "s1b0_ln", "down_conv": "down_ln"}
    assert scales == {"s0b0_scale": "s0b0_pw2", "s1b0_scale": "s1b0_pw2"}
    copy = prepared_for_export(model, fold_gamma=True)
    inner = copy.get_layer("convnext_like")
    for name in ("s0b0_ln", "s1b0_ln"):
        assert not inner.get_layer(name).weights  # normalise only
    assert not inner.get_layer("down").get_layer("down_ln").weights
    assert inner.get_layer("stem").get_layer("stem_ln").weights  # kept
    assert not any(type(layer).__name__ == "LayerScale" for layer in inner.layers)
    assert isinstance(inner.get_layer("s0b0_dw"), keras.layers.DepthwiseConv2D)
    x = np.random.default_rng(1).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    for before, after in zip(outputs(model, x), outputs(copy, x)):
        np.testing.assert_allclose(after, before, atol=1e-5, rtol=1e-5)
    # By default only the shifts (and the layer scales) fold: gamma stays in the LayerNorm.
    shifts = prepared_for_export(model)
    assert [w.name for w in shifts.get_layer("convnext_like").get_layer("s0b0_ln").weights] == [
        "gamma"]
    for before, after in zip(outputs(model, x), outputs(shifts, x)):
        np.testing.assert_allclose(after, before, atol=1e-5, rtol=1e-5)


def test_pointwise_layers_as_1x1_convolutions_give_the_same_answers():
    """The int8 ONNX exports' form: ConvNeXt's Dense layers on images become 1x1 Conv2D
    (after the folds), the head's Dense layers on pooled vectors stay Dense."""
    model = convnext_like(seed=4)
    copy = prepared_for_export(model, pointwise_as_conv=True)
    inner = copy.get_layer("convnext_like")
    for name in ("s0b0_pw1", "s0b0_pw2", "s1b0_pw1", "s1b0_pw2"):
        layer = inner.get_layer(name)
        assert type(layer) is keras.layers.Conv2D and layer.kernel_size == (1, 1)
    assert all(type(copy.get_layer(name)) is keras.layers.Dense for name in ("emb1", "emb2"))
    x = np.random.default_rng(5).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    for before, after in zip(outputs(model, x), outputs(copy, x)):
        np.testing.assert_allclose(after, before, atol=1e-5, rtol=1e-5)


def test_a_layer_norm_read_by_two_layers_is_left_alone():
    inputs = keras.Input((6,))
    x = keras.layers.LayerNormalization(name="ln")(inputs)
    model = keras.Model(inputs, keras.layers.Add()([keras.layers.Dense(3, name="a")(x),
                                                    keras.layers.Dense(3, name="b")(x)]))
    assert fold_plan(model) == ({}, {})
    assert prepared_for_export(model) is model


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_folded_export_gives_the_keras_answers(precision, tmp_path):
    """The exported (folded) network against the unfolded Keras model, as ``avsc export``
    checks it: fp32 within the export tolerance, int8 with the same labels."""
    model = convnext_like(seed=2)
    inputs = backbone_graph(model, batch=4, saved_model=tmp_path / "sm")
    path = tmp_path / "net.tflite"
    path.write_bytes(to_tflite(tmp_path / "sm", precision))
    network = TFLiteNetwork(path, inputs, batch_size=4, threads=1)
    x = np.random.default_rng(3).uniform(0, 255, (7, 32, 32, 3)).astype(np.float32)
    got = network(x)
    expected = dict(zip(OUTPUTS, outputs(model, x)))
    if precision == "fp32":
        for name in OUTPUTS:
            np.testing.assert_allclose(got[name], expected[name], atol=FP32_TOLERANCE)
        assert np.max(np.abs(got["probs"] - expected["probs"])) < 1e-5
    else:
        assert np.max(np.abs(got["probs"] - expected["probs"])) < 0.05


# --- networks side by side ------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported_tiny(trained_tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("fast") / "model"
    shutil.copytree(trained_tiny_model, root)
    export_model(root, "tflite", "fp32")
    return load_bundle(root)


@pytest.fixture(scope="module")
def tiny_inputs(exported_tiny, tiny_dataset, tau_street_videos):
    """Network inputs of two tiny clips and a real TAU street video."""
    plan = plan_for(Predictor(exported_tiny, runtime="keras"))
    clips = [tiny_dataset / "park" / "park-0.mp4", tiny_dataset / "tram" / "tram-1.mp4",
             tau_street_videos[0]]
    return [b for clip in clips for b in iter_input_batches(clip, plan, probe(clip))]


def same_predictions(a, b, atol: float) -> None:
    assert set(a.backbones) == set(b.backbones)
    for name in a.backbones:
        np.testing.assert_allclose(a.backbones[name], b.backbones[name], atol=atol)
    for branch, probs in a.branches.items():
        if probs is None:
            assert b.branches[branch] is None
        else:
            np.testing.assert_allclose(probs, b.branches[branch], atol=atol)
    if a.unfamiliar is not None:
        np.testing.assert_allclose(a.unfamiliar, b.unfamiliar, atol=atol)


def test_networks_side_by_side_give_the_answers_of_one_after_the_other(exported_tiny,
                                                                      tiny_inputs):
    in_turn = Predictor(exported_tiny, lanes=1, threads=2)
    side_by_side = Predictor(exported_tiny, lanes=2, threads=2)
    three = Predictor(exported_tiny, lanes=3, threads=3)  # uneven shares of the frames
    assert (in_turn.lanes, side_by_side.lanes, side_by_side.threads) == (1, 2, 1)
    assert "2 lanes of 1 thread side by side" in side_by_side.describe()
    for batch in tiny_inputs:
        expected = in_turn.predict(batch.features, batch.frames)
        same_predictions(expected, side_by_side.predict(batch.features, batch.frames),
                         atol=1e-6)
        same_predictions(expected, three.predict(batch.features, batch.frames), atol=1e-6)
    assert side_by_side._split["vis-inc"] and three._split["vis-inc"]
    # Shorter segments (fewer frames each), several of them: the same answers too.
    size = exported_tiny.media.frame_size
    frames = np.random.default_rng(4).integers(0, 256, (3, 7, size, size, 3), np.uint8)
    same_predictions(in_turn.predict(None, frames), side_by_side.predict(None, frames),
                     atol=1e-6)
    same_predictions(in_turn.predict(None, frames), three.predict(None, frames), atol=1e-6)
    # An audio-only or video-only batch runs what it can, side by side or not.
    batch = tiny_inputs[0]
    only_audio = side_by_side.predict(batch.features, None)
    assert set(only_audio.backbones) == {"aud-mel"} and only_audio.branches["visual"] is None


def test_networks_side_by_side_really_overlap(exported_tiny, monkeypatch):
    """The lanes compute at the same moment: the two halves of the visual network's
    frames, and the audio network beside them."""
    predictor = Predictor(exported_tiny, lanes=2, threads=2)
    running, overlap = [], []
    lock = threading.Lock()

    def slow(what, rows):
        with lock:
            running.append(what)
            overlap.append(len(running))
        time.sleep(0.2)
        with lock:
            running.remove(what)
        return {k: np.zeros((rows, 3), np.float32) for k in OUTPUTS}

    monkeypatch.setattr(predictor_module, "run_frames",
                        lambda runner, x, batch: slow("frames", len(x)))
    monkeypatch.setattr(predictor, "_run_backbone",
                        lambda name, x, visual, *runner: slow(name, len(x)))
    features = {"mel": np.zeros((2, 4, 4, 1), np.float32)}
    n_frames = exported_tiny.media.frames_per_segment
    out = predictor.backbone_outputs(features, np.zeros((2, n_frames, 8, 8, 3), np.uint8))
    assert max(overlap) == 2
    assert predictor._split["vis-inc"] == -(-n_frames // 2)  # half a segment's frames
    assert out["vis-inc"]["probs"].shape == (2, 3) and out["aud-mel"]["probs"].shape == (2, 3)


def test_a_lane_goes_on_to_the_next_call_without_waiting_for_the_others(exported_tiny,
                                                                        monkeypatch):
    """Predictor.submit: a lane through with its share of one file's work starts on the
    next file's while another lane still works on the first; a network that runs whole
    is never called by two lanes at once; each answer is predict's."""
    predictor = Predictor(exported_tiny, lanes=2, threads=2)
    features = {"mel": np.zeros((2, 4, 4, 1), np.float32)}
    media = exported_tiny.media
    frames = np.random.default_rng(5).integers(
        0, 256, (2, media.frames_per_segment, media.frame_size, media.frame_size, 3),
        np.uint8)
    expected = predictor.predict(features, frames)  # also measures each network's cost
    log, running = [], {}
    lock = threading.Lock()
    real_frames, real_backbone = predictor_module.run_frames, predictor._run_backbone

    def timed(what, call):
        with lock:
            running[what] = running.get(what, 0) + 1
            log.append(("start", what, threading.current_thread().name, running[what]))
        # The audio network is the long job: the lane it lands on finishes last.
        time.sleep(0.4 if what == "aud-mel" else 0.05)
        try:
            return call()
        finally:
            with lock:
                running[what] -= 1
                log.append(("end", what, threading.current_thread().name, running[what]))

    monkeypatch.setattr(predictor_module, "run_frames", lambda runner, x, batch: timed(
        "frames", lambda: real_frames(runner, x, batch)))
    monkeypatch.setattr(predictor, "_run_backbone", lambda name, x, visual, *runner: timed(
        name, lambda: real_backbone(name, x, visual, *runner)))
    predictor._cost["aud-mel"] = 10.0  # as measured on a slow audio network
    first = predictor.submit(features, frames)
    second = predictor.submit(features, frames)
    for answer in (first(), second()):
        same_predictions(expected, answer, atol=0)
    starts = [(i, e) for i, e in enumerate(log) if e[0] == "start"]
    mel_lanes = [e[2] for _, e in starts if e[1] == "aud-mel"]
    first_mel_end = next(i for i, e in enumerate(log) if e[:2] == ("end", "aud-mel"))
    # The other lane started both files' frames before the first audio call ended: it
    # did not wait at the end of the first file.
    other = [i for i, e in starts if e[1] == "frames" and e[2] != mel_lanes[0]]
    assert len(other) == 2 and other[1] < first_mel_end
    # The second call's audio went to the lane with less to do, and waited there for
    # the first call's to end.
    assert len(mel_lanes) == 2 and mel_lanes[0] != mel_lanes[1]
    assert max(e[3] for _, e in starts if e[1] == "aud-mel") == 1  # one call at a time
    assert predictor._queued == pytest.approx([0.0, 0.0])  # the work given out is done


ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_vnni avx512_bf16

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
"""
EXTENSIONS = "vector extensions: sse4_2 avx avx2 fma avx512f avx512_vnni avx512_bf16"
INTEL = ("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n"
         "model name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: avx2 amx_int8\n")
ARM = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd sve\nCPU part\t: 0xd40\n"


@pytest.mark.parametrize(("text", "line"), [
    (ZEN4, f"CPU: AMD EPYC (AuthenticAMD family 25 model 17: Zen 4), 2 cores; {EXTENSIONS}"),
    (ZEN4.replace(": 25", ": 26", 1).replace(": 17", ": 2", 1),
     f"CPU: AMD EPYC (AuthenticAMD family 26 model 2: Zen 5), 2 cores; {EXTENSIONS}"),
    # A model number the table does not know: the numbers alone.
    (ZEN4.replace(": 17", ": 250", 1),
     f"CPU: AMD EPYC (AuthenticAMD family 25 model 250), 2 cores; {EXTENSIONS}"),
    (INTEL, ("CPU: Intel(R) Xeon(R) Platinum 8480+ (GenuineIntel family 6 model 143: "
             "Sapphire Rapids), 2 cores; vector extensions: avx2 amx_int8")),
    (ARM, "CPU: 0xd40, 2 cores; vector extensions: asimd sve"),
    ("", "CPU: unknown, 2 cores; vector extensions: none found"),
])
def test_the_cpu_line_tells_generations_apart(text, line):
    # Benchmarks print it first: two hosts both called "AMD EPYC", with the same vector
    # extensions, ran the networks at different speeds.
    assert device_module.parse_cpuinfo(text, 2).line() == line


def test_default_lanes_on_the_cpu(exported_tiny):
    # TFLite: one lane per core (the frames are split); Keras schedules its own work.
    assert Predictor(exported_tiny, threads=2).lanes == 2
    assert Predictor(exported_tiny, threads=1).lanes == 1
    assert Predictor(exported_tiny, runtime="keras", threads=2).lanes == 1
    paper_like = SimpleNamespace(
        backbone_names=["aud-mel", "vis-inc", "vis-conv"],
        backbone_entry=lambda n: {"modality": modality_of(n)},
        exports={"tflite-int8": {"format": "tflite"}, "onnx-fp32": {"format": "onnx"}})
    lanes = predictor_module.default_lanes
    assert lanes(paper_like, "tflite-int8", "cpu", 2) == 2
    assert lanes(paper_like, "tflite-int8", "cpu", 16) == predictor_module.MAX_LANES
    assert lanes(paper_like, "tflite-int8", "cpu", 1) == 1
    assert lanes(paper_like, "onnx-fp32", "cpu", 16) == 2  # whole networks: one per lane
    assert lanes(paper_like, "onnx-fp32", "gpu", 16) == 1


def test_fewer_frames_a_segment_are_not_padded_to_the_exported_batch(exported_tiny,
                                                                      tiny_inputs):
    """Half the frames a second: the visual network is resized to a segment's frames
    instead of padding each call to its exported batch (which costs as much as real
    frames), and gives the answers the exported batch gives on those frames."""
    media = exported_tiny.media
    exported = Predictor(exported_tiny, lanes=1)
    for lanes in (1, 2):
        fitted = Predictor(exported_tiny, lanes=lanes)
        plan = plan_for(fitted, frames_per_second=media.frames_per_second / 2)
        n = plan.media.frames_per_segment
        assert n == media.frames_per_segment // 2 and fitted._visual_batch("vis-inc") == n
        for batch in tiny_inputs:
            frames = batch.frames[:, ::2]
            same_predictions(exported.predict(None, frames), fitted.predict(None, frames),
                             atol=1e-6)
        if lanes == 1:
            assert fitted.backbone("vis-inc").batch_size == n
        else:
            assert fitted._split["vis-inc"] == -(-n // 2)
    # Back to the model's rate: the networks take their exported batch again, as they do
    # for 1-s segments, which come ten to a 10-s file and fill the batch.
    plan_for(fitted)
    assert fitted._visual_batch("vis-inc") is None
    assert fitted.backbone("vis-inc").batch_size == media.frames_per_segment
    plan_for(fitted, segment_seconds=1)
    assert fitted._visual_batch("vis-inc") is None
    # Keras takes any batch as it is.
    keras_predictor = Predictor(exported_tiny, runtime="keras")
    plan_for(keras_predictor, frames_per_second=1)
    assert keras_predictor._visual_batch("vis-inc") is None
    # A graph that keeps its exported batch is padded, as before.
    refusing = Predictor(exported_tiny, lanes=1)
    plan_for(refusing, frames_per_second=media.frames_per_second / 2)
    real_open = refusing._export_network

    def keeps_its_batch(group, name, batch=None):
        if batch is not None:
            raise AvscError("a graph that keeps the batch it was exported with")
        return real_open(group, name)

    refusing._export_network = keeps_its_batch
    frames = tiny_inputs[0].frames[:, ::2]
    same_predictions(exported.predict(None, frames), refusing.predict(None, frames), atol=1e-6)
    assert refusing.backbone("vis-inc").batch_size == media.frames_per_segment


# --- segments of several files in one batch ---------------------------------------------------


def test_batches_of_several_files_give_the_per_file_answers(exported_tiny, tiny_inputs):
    for runtime in ("keras", "tflite-fp32"):
        predictor = Predictor(exported_tiny, runtime=runtime)
        # With an audio-only batch among them: it goes through on its own.
        inputs = [(b.features, b.frames) for b in tiny_inputs]
        inputs.insert(1, (tiny_inputs[0].features, None))
        together = predictor.predict_many(inputs)
        assert len(together) == len(inputs)
        for (features, frames), got in zip(inputs, together):
            same_predictions(predictor.predict(features, frames), got, atol=1e-5)


@pytest.fixture
def label_dir(tiny_dataset, tmp_path):
    """Clips of the tiny data set, a longer one (more than one batch of segments), a
    corrupt file between them, and an audio-only file."""
    root = tmp_path / "clips"
    root.mkdir()
    for name, source in (("a.mp4", "park/park-0"), ("c.mp4", "tram/tram-0"),
                         ("d.mp4", "park/park-1"), ("f.mp4", "tram/tram-2")):
        shutil.copy(tiny_dataset / f"{source}.mp4", root / name)
    (root / "b.mp4").write_bytes(b"no video in here" * 64)
    write_media(root / "e.mp4", seconds=11.0, fps=4, size=(48, 32), tone_hz=2400.0,
                frame_colour=(200, 40, 40))
    write_media(root / "g.m4a", seconds=2.0, video=False, tone_hz=300.0)
    return root


FILES = ["a.mp4", "b.mp4", "c.mp4", "d.mp4", "e.mp4", "f.mp4", "g.m4a"]


def label(folder, predictor, out, **kwargs) -> tuple[list, dict]:
    seen, results = [], {}

    def on_row(row, result):
        seen.append(row)
        results[row.file] = result

    label_folder(folder, predictor, out, on_row=on_row, **kwargs)
    return seen, results


def test_label_batching_across_files_gives_the_per_file_answers(exported_tiny, label_dir,
                                                                tmp_path):
    predictor = Predictor(exported_tiny, runtime="keras")
    assert predictor.batch_segments == 0  # on a CPU: one file's batch at a time
    # 1-s segments: the 11-s file gives two batches of segments, the others two segments.
    rows, per_file = label(label_dir, predictor, tmp_path / "one.csv", segment_seconds=1.0)
    assert len(per_file["e.mp4"].segments) > 8
    calls = []
    predict_many = predictor.predict_many
    predictor.predict_many = lambda inputs: calls.append(len(inputs)) or predict_many(inputs)
    for jobs in (1, 2):
        calls.clear()
        predictor.batch_segments = 5  # what a GPU run does, with fewer segments
        batched_rows, batched = label(label_dir, predictor, tmp_path / f"b{jobs}.csv",
                                      jobs=jobs, segment_seconds=1.0)
        predictor.batch_segments = 0
        assert max(calls) > 1  # batches of several files went through together
        assert sorted(r.file for r in batched_rows) == FILES  # one row per file
        assert {r.file: r.label for r in batched_rows} == {r.file: r.label for r in rows}
        assert batched["b.mp4"] is None and "b.mp4" in {r.file for r in batched_rows
                                                         if r.error}
        for file, result in per_file.items():
            if result is None:
                continue
            got = batched[file]
            assert got.classes == result.classes
            np.testing.assert_array_equal(got.starts, result.starts)
            for branch, probs in result.probs.items():
                if probs is None:
                    assert got.probs[branch] is None
                else:
                    np.testing.assert_allclose(got.probs[branch], probs, atol=1e-5)
            for name, probs in result.backbone_probs.items():
                np.testing.assert_allclose(got.backbone_probs[name], probs, atol=1e-5)


# --- decoding the next file while the networks run --------------------------------------------


def test_decoding_ahead_keeps_the_order_and_one_row_per_file(exported_tiny, label_dir,
                                                             tmp_path, monkeypatch):
    """Decoding the next file ahead, and the next batch handed to the networks' lanes
    before the answer for the one before is taken, give the rows of one file at a time."""
    predictor = Predictor(exported_tiny, threads=2)
    assert predictor.lanes == 2
    monkeypatch.setattr(label_run, "DECODE_AHEAD", False)
    monkeypatch.setattr(pipeline_module, "IN_FLIGHT", 1)
    in_turn, in_turn_results = label(label_dir, predictor, tmp_path / "turn.csv",
                                     segment_seconds=1.0)  # e.mp4: two batches
    monkeypatch.setattr(label_run, "DECODE_AHEAD", True)
    monkeypatch.setattr(pipeline_module, "IN_FLIGHT", 2)
    submitted = []
    submit = predictor.submit
    predictor.submit = lambda *inputs: submitted.append(1) or submit(*inputs)
    ahead, ahead_results = label(label_dir, predictor, tmp_path / "ahead.csv",
                                 segment_seconds=1.0)
    assert len(submitted) == 7  # six files with streams, e.mp4 in two batches
    assert [r.file for r in ahead] == FILES  # rows as they come: in file order
    assert ahead == in_turn  # the same rows, the corrupt file's error among them
    assert ahead[1].error and not ahead[1].label
    assert (tmp_path / "ahead.csv").read_text() == (tmp_path / "turn.csv").read_text()
    for file, result in in_turn_results.items():
        if result is not None:
            np.testing.assert_allclose(ahead_results[file].clip_probs["fused"],
                                       result.clip_probs["fused"], atol=1e-6)


def test_a_batch_failing_in_the_lanes_costs_its_file_only(exported_tiny, label_dir,
                                                          tmp_path):
    """The networks fail on one file while the next file's batch is already in the
    lanes: that file's row says why, every other row is as before, in file order."""
    predictor = Predictor(exported_tiny, threads=2)
    before, _ = label(label_dir, predictor, tmp_path / "before.csv")
    submit, calls = predictor.submit, []

    def failing_second(*inputs):
        calls.append(1)
        pending = submit(*inputs)
        if len(calls) == 2:  # c.mp4's batch (b.mp4 gives none)
            def broken():
                pending()
                raise RuntimeError("lane gave up")
            return predictor_module.Pending(pending.futures, broken)
        return pending

    predictor.submit = failing_second
    rows, results = label(label_dir, predictor, tmp_path / "after.csv")
    assert [r.file for r in rows] == FILES
    c = next(r for r in rows if r.file == "c.mp4")
    assert not c.label and "lane gave up" in c.error and results["c.mp4"] is None
    assert [r for r in rows if r.file != "c.mp4"] == [r for r in before if r.file != "c.mp4"]


def test_decode_ahead_stays_one_file_ahead(exported_tiny, monkeypatch):
    plan = plan_for(Predictor(exported_tiny, runtime="keras"))
    opened: list[int] = []

    def fake_decode(index, path, plan, extractor, batch_size):
        opened.append(index)
        yield ("info", index, None)
        for _ in range(3):
            yield ("batch", index, SimpleNamespace(spans=[None]))
        if index == 2:
            yield ("error", index, "damaged")
        else:
            yield ("done", index, None)

    monkeypatch.setattr(decoding, "decode_file", fake_decode)
    files = [(i, f"file{i}") for i in range(5)]
    events = []
    with DecodeAhead(files, plan, batches_ahead=2) as ahead:
        for event in ahead.events():
            time.sleep(0.02)  # a slow consumer: the thread must wait for it
            assert max(opened) <= event.index + 1  # never more than one file ahead
            events.append((event.kind, event.index))
    kinds = [k for k, i in events if i == 2]
    assert kinds == ["start", "info", "batch", "batch", "batch", "error"]
    assert [i for k, i in events if k == "start"] == [0, 1, 2, 3, 4]
    assert [k for k, i in events if i == 0][-1] == "done"


def test_decode_ahead_stops_when_the_consumer_does(exported_tiny, label_dir):
    plan = plan_for(Predictor(exported_tiny, runtime="keras"))
    files = [(i, label_dir / name) for i, name in enumerate(FILES)]
    ahead = DecodeAhead(files, plan)
    first = next(ahead.events())
    assert (first.kind, first.index) == ("start", 0)
    ahead.close()  # does not hang on a full queue, lets go of the files
    assert not ahead._thread.is_alive()


# --- where the networks run -----------------------------------------------------------------


def fake_bundle(*formats: str):
    exports = {f"{f}-fp32": {"format": f, "precision": "fp32", "backbones": {"aud-mel": {}},
                            "heads": {"fused": {}}}
               for f in formats}
    return SimpleNamespace(exports=exports, backbone_names=["aud-mel"], head_names=["fused"],
                           root="model")


def fake_machine(monkeypatch, gpu: bool, onnx_cuda: bool, tf_gpus: tuple[str, ...]):
    for module in (predictor_module, device_module):
        monkeypatch.setattr(module, "gpu_visible", lambda: gpu, raising=False)
        monkeypatch.setattr(module, "onnx_cuda", lambda: onnx_cuda, raising=False)
        monkeypatch.setattr(module, "tensorflow_gpus", lambda: tf_gpus, raising=False)


def test_a_gpu_takes_onnx_on_cuda_then_keras(monkeypatch, caplog):
    monkeypatch.delenv("AVSC_DEVICE", raising=False)
    bundle = fake_bundle("tflite", "onnx")
    fake_machine(monkeypatch, gpu=True, onnx_cuda=True, tf_gpus=("/physical_device:GPU:0",))
    assert choose_runtime(bundle) == "onnx-fp32"
    assert runtime_device(bundle, "onnx-fp32") == "gpu"
    assert runtime_device(bundle, "tflite-fp32") == "cpu"  # TFLite runs on the CPU only
    assert choose_runtime(bundle, device="cpu") == "tflite-fp32"
    monkeypatch.setenv("AVSC_DEVICE", "cpu")
    assert choose_runtime(bundle) == "tflite-fp32"
    monkeypatch.delenv("AVSC_DEVICE")
    fake_machine(monkeypatch, gpu=True, onnx_cuda=False, tf_gpus=("/physical_device:GPU:0",))
    assert choose_runtime(bundle) == "keras"
    assert runtime_device(bundle, "keras") == "gpu"
    fake_machine(monkeypatch, gpu=True, onnx_cuda=False, tf_gpus=())
    with caplog.at_level("WARNING"):
        assert choose_runtime(bundle) == "tflite-fp32"
    assert "no runtime here can use it" in caplog.text
    with pytest.raises(AvscError, match="--device gpu"):
        choose_runtime(bundle, device="gpu")
    fake_machine(monkeypatch, gpu=False, onnx_cuda=False, tf_gpus=())
    assert choose_runtime(bundle) == "tflite-fp32"
    assert runtime_device(bundle, "keras") == "cpu"


def test_on_a_gpu_label_gathers_segments_of_several_files(exported_tiny, monkeypatch,
                                                          caplog):
    fake_machine(monkeypatch, gpu=True, onnx_cuda=False, tf_gpus=("/physical_device:GPU:0",))
    with caplog.at_level("INFO", logger="avsc_core.inference.predictor"):
        predictor = Predictor(exported_tiny)
    assert (predictor.runtime, predictor.device) == ("keras", "gpu")
    assert predictor.batch_segments == predictor_module.GPU_BATCH_SEGMENTS
    assert predictor.lanes == 1 and predictor.batch["visual"] > 20
    assert "networks: Keras on TensorFlow's GPU /physical_device:GPU:0" in caplog.text


def test_a_graph_that_mixes_its_batch_is_not_resized(tmp_path):
    """A graph whose shapes hold the batch elsewhere than in front cannot be split."""
    import tensorflow as tf

    from avsc_core.export.graph import _write
    from avsc_core.inference.runtime import open_network

    inputs = keras.Input((3,), name="frames")
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    weights = tf.constant(np.ones((12, 8), np.float32))

    def serve(x):
        whole = tf.matmul(tf.reshape(x, (1, 12)), weights)  # the batch as one row
        return {"probs": tf.reshape(whole, (4, 2))}

    _write(model, serve, [("frames", (4, 3))], tmp_path / "sm")
    path = tmp_path / "mixed.tflite"
    path.write_bytes(to_tflite(tmp_path / "sm", "fp32"))
    entry = {"inputs": {"frames": "frames"}, "batch": 4}
    assert open_network("tflite", path, entry, threads=1)(np.ones((4, 3)))["probs"].shape == (4, 2)
    with pytest.raises(AvscError, match="cannot be loaded by TFLite"):
        open_network("tflite", path, entry, threads=1, batch=2)
