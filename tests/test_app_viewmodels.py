"""The app's Qt-free parts: what the views show, settings, ETA, worker processes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from app.evaluation import clips_in_cell
from app.jobs import JobProcess
from app.model_info import NO_MODEL_HTML, model_html
from app.preview import display_size, iter_previews
from app.results import facts, result_view, timeline
from app.settings import MAX_RECENT, AppSettings
from app.timing import EtaEstimator, format_seconds
from app.training import TrainingReport, interrupted_run, sample_job
from avsc_core.progress import Progress

CLASSES = ["park", "tram"]


def segment(start, fused, audio, visual, backbones):
    def probs(p):
        return None if p is None else {"park": p, "tram": 1 - p}

    return {"start": start, "end": start + 10.0,
            "backbones": {name: probs(p) for name, p in backbones.items()},
            "branches": {"fused": probs(fused), "audio": probs(audio), "visual": probs(visual)}}


def result(segments, has_audio=True, has_video=True):
    mean = {b: None if segments[0]["branches"][b] is None else {
        c: float(np.mean([s["branches"][b][c] for s in segments])) for c in CLASSES}
        for b in ("fused", "audio", "visual")}
    label = max(mean["fused"], key=mean["fused"].get)
    return {"file": "x.mp4", "duration": 10.0 * len(segments), "has_audio": has_audio,
            "has_video": has_video, "classes": CLASSES, "segments": segments,
            "clip": {"label": label, "confidence": mean["fused"][label], "branches": mean},
            "warnings": []}


def test_missing_audio_is_shown_as_missing_not_as_zeros():
    data = result([segment(0, 0.2, None, 0.2, {"vis-inc": 0.2})], has_audio=False)
    view = result_view(data)
    audio = {b.key: b for b in view.branches}["audio"]
    assert audio.values is None and audio.note == "no audio track"
    assert view.label == "tram" and view.confidence == pytest.approx(0.8)
    assert "pictures only" in view.verdict and "no audio track" in view.verdict
    # The audio backbones did not run either, and say why.
    assert [(b.key, b.values, b.note) for b in view.backbones if b.values is None] == [
        ("aud-*", None, "no audio track")]


def test_verdict_names_the_modality_that_decided():
    data = result([segment(0, 0.7, 0.3, 0.9, {"aud-mel": 0.3, "vis-inc": 0.9})])
    view = result_view(data)
    assert view.label == "park"
    assert view.verdict.startswith("The pictures decided")
    assert "sound: tram (70%)" in view.verdict and "pictures: park (90%)" in view.verdict


def test_clip_view_averages_backbones_and_segment_view_picks_one():
    data = result([segment(0, 0.8, 0.6, 0.9, {"aud-mel": 0.6, "vis-inc": 0.9}),
                   segment(10, 0.2, 0.4, 0.1, {"aud-mel": 0.4, "vis-inc": 0.1})])
    whole = {b.key: b.values for b in result_view(data).backbones}
    assert whole["aud-mel"] == pytest.approx((0.5, 0.5))
    assert whole["vis-inc"] == pytest.approx((0.5, 0.5))
    second = result_view(data, 1)
    assert second.label == "tram" and second.scope.startswith("segment 2 of 2")
    line = timeline(data)
    assert line.probs.shape == (2, 2) and line.segment_at(14.0) == 1
    assert line.main_classes() == ["park", "tram"]
    assert timeline(result([segment(0, 0.5, None, 0.5, {})], has_audio=False), "audio").probs is None


def test_facts_of_a_file_without_sound(make_media):
    from avsc_core.media import probe

    rows = dict(facts(probe(make_media("silent.mp4", seconds=1.0, audio=False))))
    assert rows["Audio"] == "none (no audio track)"
    assert rows["Video"].startswith("h264, 64x48")
    assert rows["Duration"] == "1.00 s"


def test_preview_shows_only_the_real_part_of_a_short_clip(make_media):
    from avsc_core.config import FeatureConfig, MediaConfig
    from avsc_core.media import probe

    path = make_media("short.mp4", seconds=2.0, fps=10, size=(64, 48))
    info = probe(path)
    [preview] = list(iter_previews(path, info, MediaConfig(), FeatureConfig(), kinds=("mel",)))
    # 2 frames per second over 2 s, not the 20 a padded 10-s segment holds.
    assert list(preview.frame_times) == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0], abs=0.11)
    assert preview.thumbnails.shape[1:] == (90, 120, 3)  # 4:3 like the video
    assert preview.spectrogram_times[-1] <= info.duration + 0.05
    assert preview.spectrograms["mel"].shape[:2] == (2, 128)
    assert display_size(info) == (120, 90)


def test_training_report_follows_batches_epochs_and_resume(tmp_path):
    report = TrainingReport()
    report.update(Progress("prepare", 3, 10, {"file": "a.mp4"}))
    assert report.status.endswith("3/10") and report.fraction == pytest.approx(0.3)
    batch = {"event": "batch", "epoch": 2, "batch": 3, "batches": 4, "metrics": {}, "eta": 75}
    report.update(Progress("phase1:aud-mel", 1, 5, batch))
    assert report.status == "Phase I: aud-mel backbone - epoch 2/5, batch 3/4"
    assert report.fraction == pytest.approx((1 + 0.75) / 5)
    assert format_seconds(report.eta) == "1 min 15 s"
    metrics = {"loss": 0.5, "accuracy": 0.75, "val_loss": 0.6, "val_accuracy": 0.5}
    report.update(Progress("phase1:aud-mel", 2, 5, {"event": "epoch", "epoch": 2,
                                                     "metrics": metrics}))
    curve = report.curves["phase1:aud-mel"]
    assert curve.epochs == [2] and curve.values["val_accuracy"] == [0.5]
    report.update(Progress("prepare", 10, 10, {"skipped": [("bad.mp4", "bad.mp4: no streams")]}))
    assert report.notes == ["skipped bad.mp4: no streams"]

    from avsc_core.train.state import JOURNAL, StepState, TrainState, phase1_step

    out = tmp_path / "model"
    history = [{"epoch": 1, "loss": 1.0, "accuracy": 0.5}, {"epoch": 2, "loss": 0.8}]
    TrainState(out / JOURNAL, {}, {phase1_step("vis-inc"): StepState(history=history)}).save()
    assert interrupted_run(out)
    resumed = TrainingReport()
    resumed.load_history(out)
    assert resumed.curves["phase1:vis-inc"].epochs == [1, 2]
    assert np.isnan(resumed.curves["phase1:vis-inc"].values["accuracy"][1])
    (out / "manifest.json").write_text("{}")
    assert not interrupted_run(out)


def test_eta_counts_only_this_runs_items():
    now = [100.0]
    eta = EtaEstimator(clock=lambda: now[0])
    assert eta.eta(10, 30) is None  # resumed at 10: no rate yet
    now[0] += 20
    assert eta.eta(12, 30) == pytest.approx(20 / 2 * 18)
    assert format_seconds(None) == "-" and format_seconds(3725) == "1 h 02 min"


def test_settings_persist_and_survive_a_damaged_file(tmp_path):
    path = tmp_path / "gui.json"
    settings = AppSettings.load(path)
    for i in range(MAX_RECENT + 2):
        settings.add_recent(tmp_path / f"{i}.mp4")
    settings.model = str(tmp_path / "model")
    settings.remember_folder("open", tmp_path / "0.mp4")
    again = AppSettings.load(path)
    assert again.recent_files[0] == str(tmp_path / f"{MAX_RECENT + 1}.mp4")
    assert len(again.recent_files) == MAX_RECENT
    assert again.model == str(tmp_path / "model")
    assert again.folder("open") == str(tmp_path)
    path.write_text("{not json")
    assert AppSettings.load(path).recent_files == []


def test_model_panel_text(tmp_path):
    manifest = {"classes": ["park", "tram"], "strategy": "two-phase", "preset": "tiny",
                "fusion": "f4", "embedding_type": 2, "heads": {"fused": {}},
                "backbones": [{"name": "aud-mel", "trainable_params": 1234}],
                "training": {"phase1_epochs": 2, "phase2_epochs": 3, "batch_size": 8},
                "metrics": {"test": {"n": 4, "branches": {"fused": {"accuracy": 0.75}}}}}
    text = model_html(tmp_path / "m", manifest)
    assert "park, tram" in text and "aud-mel (1,234 params)" in text
    assert "fused 75% (n=4)" in text
    assert "Make a sample model" in NO_MODEL_HTML


def test_confusion_cell_lists_its_clips():
    evaluation = {"clips": [
        {"file": "park/a.mp4", "label": "park", "predicted": {"fused": "tram", "audio": None}},
        {"file": "park/b.mp4", "label": "park", "predicted": {"fused": "park", "audio": None}},
    ]}
    assert [c["file"] for c in clips_in_cell(evaluation, "fused", "park", "tram")] == [
        "park/a.mp4"]
    assert clips_in_cell(evaluation, "audio", "park", "tram") == []


def test_sample_job_trains_the_tiny_preset_on_the_sample_data(tmp_path):
    job = sample_job(tmp_path / "data", tmp_path / "models", "20240101-000000")
    assert job.config.preset == "tiny" and job.sample is not None
    assert "street_traffic" in job.sample.classes
    assert job.out == str(tmp_path / "models" / "sample-20240101-000000")


def _crash(*, send, cancel):
    import time

    send("progress", Progress("work", 1, 2))
    time.sleep(0.5)  # the queue's feeder thread sends it; a crash then loses nothing sent
    os._exit(3)


def _wait(job: JobProcess, timeout: float = 60.0) -> list:
    import time

    messages, deadline = [], time.monotonic() + timeout
    while not job.finished and time.monotonic() < deadline:
        messages += job.poll()
        time.sleep(0.05)
    return messages


def test_a_worker_that_dies_is_reported_not_lost():
    messages = _wait(JobProcess(_crash, (), "test").start())
    assert [m.kind for m in messages] == ["progress", "error"]
    assert "test process stopped unexpectedly (exit code 3)" in messages[-1].payload


def test_joint_training_curves_plot_the_fused_accuracy():
    from app.training import Curve, stage_title

    curve = Curve()
    curve.add(1, {"loss": 1.2, "fused_accuracy": 0.5, "val_loss": 1.4,
                  "val_fused_accuracy": 0.25, "audio_loss": 0.7})
    assert curve.values["accuracy"] == [0.5]
    assert curve.values["val_accuracy"] == [0.25]
    assert stage_title("joint").startswith("Joint optimisation")


def test_the_verdict_says_why_an_answer_needs_checking():
    from app.results import result_view

    result = {
        "classes": ["park", "tram"], "warnings": [], "has_audio": True, "has_video": True,
        "segments": [{"start": 0.0, "end": 10.0, "backbones": {},
                      "branches": {"fused": {"park": 0.55, "tram": 0.45},
                                   "audio": {"park": 0.2, "tram": 0.8},
                                   "visual": {"park": 0.9, "tram": 0.1}}}],
        "clip": {"label": "park", "confidence": 0.55,
                 "branches": {"fused": {"park": 0.55, "tram": 0.45},
                              "audio": {"park": 0.2, "tram": 0.8},
                              "visual": {"park": 0.9, "tram": 0.1}},
                 "needs_review": ["low confidence", "branches disagree"]},
    }
    view = result_view(result)
    assert view.verdict.endswith("Check this answer: low confidence, branches disagree.")
    assert "Check this answer" not in result_view(result, 0).verdict
