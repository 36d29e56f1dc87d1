"""Calibration: ECE, temperatures fitted at training and applied everywhere, challenge scoring."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from avsc_core.bundle import load_bundle
from avsc_core.bundle.manifest import BundleError
from avsc_core.cli.main import main
from avsc_core.evaluation.calibration import (
    expected_calibration_error,
    fit_temperature,
    reliability,
)
from avsc_core.evaluation.evaluate import evaluate_model
from avsc_core.inference.calibration import apply_temperature
from avsc_core.inference.classify import classify_file, load_predictor

BRANCHES = ("audio", "visual", "fused")


# --------------------------------------------------------------------------- numbers


def test_ece_of_a_hand_made_example():
    # Two answers at 0.9 (one right: accuracy 0.5) and two at 0.6 (both right): each half
    # of the answers is 0.4 off its accuracy.
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.6, 0.4]])
    labels = np.array([0, 1, 1, 0])
    assert expected_calibration_error(labels, probs) == pytest.approx(0.4)
    # Eight right out of ten answers at 0.8: calibrated.
    probs = np.tile([0.8, 0.2], (10, 1))
    assert expected_calibration_error(np.array([0] * 8 + [1] * 2), probs) == pytest.approx(0.0)


def test_reliability_bins_are_15_equal_width_and_closed_on_the_right():
    bins = reliability(np.array([0.0, 1 / 15, 0.8, 0.81, 1.0]), np.array([1, 1, 0, 1, 1]))
    assert len(bins.counts) == 15 and bins.edges[1] == pytest.approx(1 / 15)
    assert bins.counts[0] == 2  # 0 and 1/15 both in (0, 1/15], the first bin taking 0
    assert bins.counts[11] == 1 and bins.counts[12] == 1 and bins.counts[14] == 1
    assert bins.accuracy[11] == 0.0 and bins.confidence[12] == pytest.approx(0.81)
    assert np.isnan(bins.accuracy[5])


def test_temperature_scaling_keeps_the_ranking_and_sums_to_one():
    probs = np.array([[0.7, 0.2, 0.1], [0.05, 0.9, 0.05]], np.float32)
    assert apply_temperature(probs, 1.0) is probs  # uncalibrated answers stay identical
    for t in (0.5, 2.0):
        scaled = apply_temperature(probs, t)
        assert np.allclose(scaled.sum(axis=1), 1.0)
        assert (scaled.argmax(axis=1) == probs.argmax(axis=1)).all()
    assert apply_temperature(probs, 2.0).max() < probs.max() < apply_temperature(probs, 0.5).max()


def _clips(rng, n: int, sharpness: float, accuracy: float) -> tuple[list[int], list[np.ndarray]]:
    labels, clips = [], []
    for _ in range(n):
        y = int(rng.integers(3))
        guess = y if rng.random() < accuracy else (y + 1) % 3
        logits = rng.normal(0, 0.3, (2, 3))
        logits[:, guess] += sharpness
        p = np.exp(logits)
        labels.append(y)
        clips.append(p / p.sum(axis=1, keepdims=True))
    return labels, clips


@pytest.mark.parametrize("sharpness, expect", [(8.0, "soften"), (0.5, "sharpen")])
def test_fitted_temperature_lowers_the_log_loss_it_is_fitted_on(sharpness, expect):
    labels, clips = _clips(np.random.default_rng(1), 60, sharpness, 0.85)
    fit = fit_temperature(labels, clips)
    assert fit.skipped is None and fit.clips == 60
    assert fit.log_loss_after < fit.log_loss_before
    assert (fit.temperature > 1) if expect == "soften" else (fit.temperature < 1)


def test_too_few_classes_keep_temperature_one_and_say_why():
    fit = fit_temperature([2, 2], [np.array([[0.1, 0.1, 0.8]])] * 2)
    assert fit.temperature == 1.0 and "at least 2 classes" in fit.skipped
    assert fit.to_dict() == {"clips": 2, "skipped": fit.skipped}


# --------------------------------------------------------------------------- bundles


def test_training_records_temperatures_and_the_unfamiliarity_score(trained_tiny_model):
    manifest = json.loads((trained_tiny_model / "manifest.json").read_text())
    calibration = manifest["calibration"]
    assert calibration["method"] == "temperature" and calibration["split"] == "val"
    assert set(calibration["temperatures"]) == set(BRANCHES)
    assert all(t > 0 for t in calibration["temperatures"].values())
    for fit in calibration["fit"].values():
        assert fit["clips"] > 0
        if "skipped" not in fit:
            assert fit["log_loss_after"] <= fit["log_loss_before"]
    unfamiliar = manifest["unfamiliar"]
    assert unfamiliar["quantile"] == 0.95 and unfamiliar["threshold"] > 0
    assert set(unfamiliar["backbones"]) == {"aud-mel", "vis-inc"}
    for entry in unfamiliar["backbones"].values():
        stats = np.load(trained_tiny_model / entry["file"])
        assert stats.shape[0] == 3 and len(entry["sha256"]) == 64  # 2 class means + spread
    metrics = manifest["metrics"]["test"]["branches"]["fused"]
    assert {"ece", "uncalibrated"} <= set(metrics)


def test_calibration_does_not_raise_the_validation_log_loss(trained_tiny_model, tiny_dataset):
    result = evaluate_model(trained_tiny_model, tiny_dataset, split="val")
    recorded = json.loads((trained_tiny_model / "manifest.json").read_text())["metrics"]["val"]
    for branch in BRANCHES:
        metrics = result["branches"][branch]
        assert metrics["log_loss"] <= metrics["uncalibrated"]["log_loss"] + 1e-9
        # Training measured the same numbers through its own path.
        assert metrics["log_loss"] == pytest.approx(
            recorded["branches"][branch]["log_loss"], rel=1e-4)
        assert metrics["ece"] == pytest.approx(recorded["branches"][branch]["ece"], abs=1e-6)


@pytest.fixture
def uncalibrated_copy(trained_tiny_model, tmp_path):
    """The tiny bundle as written before calibration existed."""
    old = tmp_path / "old-model"
    shutil.copytree(trained_tiny_model, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["calibration"], manifest["unfamiliar"]
    for split in manifest["metrics"].values():
        for metrics in split["branches"].values():
            metrics.pop("ece"), metrics.pop("uncalibrated")
    (old / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(old / "familiarity")
    return old


def test_a_bundle_without_calibration_loads_and_gives_its_old_answers(
    trained_tiny_model, uncalibrated_copy, make_media
):
    load_bundle(uncalibrated_copy).verify()
    video = make_media("scene.mp4", seconds=3.0, fps=4, tone_hz=300.0)
    old = classify_file(video, uncalibrated_copy)
    new = classify_file(video, trained_tiny_model)
    temperatures = load_predictor(trained_tiny_model).temperatures
    for branch in BRANCHES:
        # The old bundle answers with the heads' own probabilities; the new one scales them.
        expected = apply_temperature(old.probs[branch], temperatures[branch])
        np.testing.assert_allclose(new.probs[branch], expected, atol=1e-6)
    assert old.label == new.label
    clip = old.to_dict()["clip"]
    assert clip["unfamiliar"] is None and clip["unfamiliar_score"] is None
    assert "unfamiliar" not in clip["needs_review"]
    assert old.to_dict()["segments"][0]["unfamiliar_score"] is None


def test_evaluate_without_calibration_reports_ece_only(uncalibrated_copy, tiny_dataset):
    result = evaluate_model(uncalibrated_copy, tiny_dataset)
    for metrics in result["branches"].values():
        assert "ece" in metrics and "uncalibrated" not in metrics
    assert all("confidence_uncalibrated" not in row for row in result["clips"])


def test_a_changed_statistics_file_is_refused(trained_tiny_model, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(trained_tiny_model, copy)
    stats = next((copy / "familiarity").glob("*.npy"))
    np.save(stats, np.zeros((3, 4), np.float32))
    with pytest.raises(BundleError, match="checksum"):
        load_bundle(copy)


# --------------------------------------------------------------------------- evaluate


def test_evaluate_reports_calibration_and_draws_reliability_diagrams(
    trained_tiny_model, tiny_dataset, tmp_path, capsys
):
    out, report = tmp_path / "metrics.json", tmp_path / "report"
    assert main(["evaluate", "--model", str(trained_tiny_model), str(tiny_dataset),
                 "--json", str(out), "--report", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "ECE" in printed and "uncalibrated log loss" in printed
    result = json.loads(out.read_text())
    for metrics in result["branches"].values():
        assert 0.0 <= metrics["ece"] <= 1.0
        assert set(metrics["uncalibrated"]) == {"log_loss", "ece"}
    for branch in BRANCHES:
        assert (report / f"reliability-{branch}.png").stat().st_size > 1000


def test_evaluate_scores_one_second_segments_and_writes_a_submission(
    trained_tiny_model, tiny_dataset, tmp_path
):
    out, submission = tmp_path / "metrics.json", tmp_path / "output.tsv"
    assert main(["evaluate", "--model", str(trained_tiny_model), str(tiny_dataset),
                 "--segment-seconds", "1", "--submission", str(submission),
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    segments = result["segments"]
    # The tiny dataset's clips last 2 s: two 1-s segments each.
    assert segments["seconds"] == 1.0 and segments["n"] == 2 * result["n"]
    fused = segments["branches"]["fused"]
    assert {"accuracy", "log_loss", "ece", "uncalibrated"} <= set(fused)
    with open(submission, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    classes = result["classes"]
    assert rows[0] == ["filename", "scene_label", *classes]
    assert len(rows) == 1 + segments["n"]
    names = {row[0] for row in rows[1:]}
    assert len(names) == segments["n"] and all("#t=" in n for n in names)
    truth = {c["file"]: c["label"] for c in result["clips"]}
    losses = []
    for name, label, *probs in rows[1:]:
        p = np.array(probs, float)
        assert p.sum() == pytest.approx(1.0) and label == classes[int(p.argmax())]
        losses.append(-np.log(max(p[classes.index(truth[name.split("#")[0]])], 1e-15)))
    # The file holds exactly the answers the segment log loss was computed from.
    assert np.mean(losses) == pytest.approx(fused["log_loss"], rel=1e-6)


def test_a_clip_submission_without_segments(trained_tiny_model, tiny_dataset, tmp_path):
    submission = tmp_path / "output.tsv"
    result = evaluate_model(trained_tiny_model, tiny_dataset, submission=submission)
    rows = submission.read_text().splitlines()
    assert len(rows) == 1 + result["n"] and "segments" not in result
    assert {r.split("\t")[0] for r in rows[1:]} == {c["file"] for c in result["clips"]}


def test_a_segment_longer_than_the_model_takes_is_refused(trained_tiny_model, tiny_dataset,
                                                          capsys):
    assert main(["evaluate", "--model", str(trained_tiny_model), str(tiny_dataset),
                 "--segment-seconds", "20"]) == 1
    assert "--segment-seconds 20" in capsys.readouterr().err
