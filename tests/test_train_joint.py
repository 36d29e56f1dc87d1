"""Joint optimisation (Chen et al. 2022): networks, the training run, and its bundle in use."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from avsc_core.errors import AvscError
from avsc_core.inference.backbones import backbone_runner, run_visual_backbone
from avsc_core.inference.classify import classify_file
from avsc_core.models.joint import (
    JointNetConfig,
    branch_head,
    build_acoustic_encoder,
    build_joint_model,
    build_visual_encoder,
    image_model_bottom,
)
from avsc_core.progress import Cancelled
from avsc_core.train import TrainConfig, train_model
from avsc_core.train.joint import TwoRateAdam
from avsc_core.train.state import TrainState


@pytest.mark.parametrize(
    ("image_model", "stages", "channels"),
    [("convnext_tiny", 2, 192), ("convnext_tiny", 4, 768), ("inception_v3", 3, 288)],
)
def test_the_image_model_is_cut_after_the_chosen_stage(image_model, stages, channels):
    bottom = image_model_bottom(image_model, stages)
    assert bottom.output.shape[-1] == channels
    most = {"convnext_tiny": 4, "inception_v3": 11}[image_model]
    if stages < most:  # only the kept layers are in the model
        assert bottom.count_params() < image_model_bottom(image_model, most).count_params()


def test_stage_counts_outside_the_image_model_are_refused():
    with pytest.raises(ValueError, match="stages 1 to 4"):
        JointNetConfig(image_model="convnext_tiny", visual_stages=5)


def test_the_acoustic_encoder_convolves_over_time_with_bins_as_channels():
    encoder = build_acoustic_encoder(JointNetConfig.tiny(), (128, 305, 6), n_classes=3)
    first = encoder.get_layer("s0_c0_conv")
    assert first.kernel.shape == (3, 128 * 6, 16)  # (time taps, bins x channels, filters)
    probs = encoder(np.random.default_rng(0).normal(size=(2, 128, 305, 6)).astype("float32"))
    np.testing.assert_allclose(np.sum(probs, axis=-1), 1.0, rtol=1e-5)


def test_bundle_heads_give_the_training_models_branch_answers():
    """What a bundle's ``audio``/``visual``/``fused`` heads compute from the saved encoders is
    what the training model computed, so training metrics and inference agree."""
    config = JointNetConfig.tiny()
    audio = build_acoustic_encoder(config, (128, 305, 6), 3)
    visual = build_visual_encoder(config, 3)
    model, classifier = build_joint_model(audio, visual, 4, 3, config)
    rng = np.random.default_rng(1)
    spec = rng.normal(size=(2, 128, 305, 6)).astype("float32")
    frames = rng.integers(0, 255, (2, 4, 224, 224, 3)).astype("float32")
    out = model({"spectrogram": spec, "frames": frames}, training=False)

    visual_out = run_visual_backbone(backbone_runner(visual), frames)
    audio_out = backbone_runner(audio)(spec)
    from_heads = {
        "visual": branch_head(visual, "joint-vis").predict_on_batch(
            {"joint-vis": visual_out["emb1"]}),
        "audio": branch_head(audio, "joint-aud").predict_on_batch({"joint-aud": audio_out["emb1"]}),
        "fused": classifier.predict_on_batch(
            {"joint-aud": audio_out["emb1"], "joint-vis": visual_out["emb1"]}),
    }
    for name, probs in from_heads.items():
        np.testing.assert_allclose(probs, np.asarray(out[name]), atol=1e-5, err_msg=name)


def test_two_rate_adam_scales_the_step_of_the_chosen_variables_only():
    slow = keras.Variable(np.zeros(4, "float32"))
    fast = keras.Variable(np.zeros(4, "float32"))
    optimizer = TwoRateAdam(1e-2, [slow], scale=0.1)
    grads = [keras.ops.ones(4), keras.ops.ones(4)]
    optimizer.apply(grads, [slow, fast])
    # Adam's first step moves every weight by about the learning rate.
    np.testing.assert_allclose(np.asarray(fast), -1e-2, rtol=1e-3)
    np.testing.assert_allclose(np.asarray(slow), -1e-3, rtol=1e-3)


@pytest.fixture(scope="module")
def joint_model(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("joint") / "model"
    config = TrainConfig.for_preset("tiny", strategy="joint", joint_epochs=3, batch_size=4)
    return train_model(tiny_dataset, out, config)


def test_a_joint_bundle_holds_both_encoders_and_three_heads(joint_model):
    manifest = json.loads((joint_model / "manifest.json").read_text())
    assert manifest["strategy"] == "joint"
    assert manifest["embedding_type"] == 1
    assert [(b["name"], b["modality"], b["feature"]) for b in manifest["backbones"]] == [
        ("joint-aud", "audio", "mel"), ("joint-vis", "visual", "frames")]
    assert manifest["heads"]["fused"]["inputs"] == ["joint-aud", "joint-vis"]
    assert manifest["heads"]["audio"]["inputs"] == ["joint-aud"]
    assert [h["epoch"] for h in manifest["history"]["joint"]] == [1, 2, 3]
    assert manifest["metrics"]["test"]["branches"]["fused"]["accuracy"] is not None
    assert not (joint_model / "training" / "checkpoints").exists()


def test_a_joint_model_classifies_videos_and_sound_only_files(joint_model, tiny_dataset,
                                                             make_media):
    video = next((tiny_dataset / "park").glob("*.mp4"))
    result = classify_file(video, joint_model)
    assert set(result.segments[0].backbones) == {"joint-aud", "joint-vis"}
    assert all(result.clip["branches"][b] is not None for b in ("audio", "visual", "fused"))

    sound = make_media("tone.wav", seconds=2.0, tone_hz=300.0, video=False)
    audio_only = classify_file(sound, joint_model)
    assert audio_only.clip["branches"]["visual"] is None
    assert audio_only.clip["branches"]["fused"] == audio_only.clip["branches"]["audio"]
    assert any("no video stream" in w for w in audio_only.warnings)


def test_a_joint_model_exports_with_the_same_answers(joint_model, tiny_dataset):
    from avsc_core.bundle import load_bundle
    from avsc_core.export import export_model
    from avsc_core.inference.predictor import Predictor

    export_model(joint_model, "tflite", "fp32")
    video = next((tiny_dataset / "tram").glob("*.mp4"))
    bundle = load_bundle(joint_model)
    keras_result = classify_file(video, Predictor(bundle, runtime="keras"))
    export_result = classify_file(video, Predictor(bundle, runtime="tflite"))
    for branch in ("audio", "visual", "fused"):
        np.testing.assert_allclose(export_result.clip_probs[branch],
                                   keras_result.clip_probs[branch], atol=1e-4)


def test_joint_training_resumes_after_cancel_without_repeating_epochs(tiny_dataset, tmp_path):
    config = TrainConfig.for_preset("tiny", strategy="joint", joint_epochs=3, batch_size=4)
    out = tmp_path / "model"
    seen: list[int] = []

    def progress(event):
        if event.stage == "joint" and event.info.get("event") == "epoch":
            seen.append(event.done)

    with pytest.raises(Cancelled):
        train_model(tiny_dataset, out, config, progress=progress, cancel=lambda: len(seen) >= 1)
    assert TrainState.load(out / "training" / "state.json").steps["joint"].epochs_done == 1
    seen.clear()
    train_model(tiny_dataset, out, config, resume=True, progress=progress)
    assert seen == [2, 3]
    assert (out / "manifest.json").exists()


def test_joint_settings_that_cannot_work_fail_before_anything_is_written(tiny_dataset, tmp_path):
    out = tmp_path / "model"
    config = TrainConfig.for_preset("tiny", strategy="joint", joint_visual_stages=7)
    with pytest.raises(AvscError, match="visual-stages"):
        train_model(tiny_dataset, out, config)
    assert not out.exists()
    with pytest.raises(AvscError, match="one phase"):
        train_model(tiny_dataset, out, TrainConfig.for_preset("tiny", strategy="joint"),
                    phases=("1",))


def test_freezing_keeps_the_image_layers_out_of_training():
    from avsc_core.train.joint import _build, joint_net_config

    def trainable(freeze: bool) -> tuple[int, int]:
        config = TrainConfig.for_preset("tiny", strategy="joint", joint_freeze_visual=freeze)
        model, _, visual, _ = _build(config, joint_net_config(config), 3, (128, 305, 6), 4)
        image = visual.get_layer("tiny_cnn_bottom")
        return len(image.trainable_weights), len(model.trainable_weights)

    (image_free, all_free), (image_frozen, all_frozen) = trainable(False), trainable(True)
    assert image_free > 0 and image_frozen == 0
    assert all_frozen == all_free - image_free


def test_the_evaluation_report_plots_a_joint_models_training(joint_model, tiny_dataset, tmp_path):
    from avsc_core.cli.main import main

    report = tmp_path / "report"
    assert main(["evaluate", "--model", str(joint_model), str(tiny_dataset),
                 "--report", str(report)]) == 0
    assert (report / "training-curves.png").stat().st_size > 0
    assert (report / "confusion-fused.png").exists()
