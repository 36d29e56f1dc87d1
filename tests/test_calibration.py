"""Calibration: ECE, temperatures fitted at training and applied everywhere, challenge scoring."""

from __future__ import annotations

import csv
import json
import math
import shutil

import numpy as np
import pytest

from avsc_core.bundle import load_bundle
from avsc_core.bundle.manifest import BundleError
from avsc_core.cli.main import main
from avsc_core.evaluation.calibration import (
    TemperatureSettings,
    cross_validated_log_loss,
    expected_calibration_error,
    fit_temperature,
    fold_of,
    reliability,
)
from avsc_core.evaluation.evaluate import evaluate_model
from avsc_core.inference.calibration import apply_temperature, calibration_notes
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


def _scaled_model(rng, n: int, overconfidence: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Clips of a model whose log-odds are ``overconfidence`` times the true ones: each
    clip's class is drawn from the true probabilities, so the right temperature is
    ``overconfidence`` (1: a calibrated model, which no temperature improves)."""
    labels, clips = [], []
    for _ in range(n):
        z = rng.normal(0, 2.0, 4)
        truth = np.exp(z - z.max())
        labels.append(int(rng.choice(4, p=truth / truth.sum())))
        segments = z * overconfidence + rng.normal(0, 0.2, (3, 4))
        p = np.exp(segments - segments.max(axis=1, keepdims=True))
        clips.append(p / p.sum(axis=1, keepdims=True))
    return np.array(labels), clips


def _held_out_excess(overconfidence: float, settings: TemperatureSettings,
                     clips: int = 8, draws: int = 100) -> float:
    """Mean, over ``draws`` validation sets of ``clips`` clips, of how much the fitted
    temperature raises the log loss of 3000 other clips above ``T = 1``."""
    test_labels, test_clips = _scaled_model(np.random.default_rng(0), 3000, overconfidence)

    def loss(t: float) -> float:
        probs = np.stack([apply_temperature(c, t).mean(axis=0) for c in test_clips])
        return float(-np.mean(np.log(probs[np.arange(len(test_labels)), test_labels])))

    rng, base = np.random.default_rng(1), loss(1.0)
    fitted = [fit_temperature(*_scaled_model(rng, clips, overconfidence), settings).temperature
              for _ in range(draws)]
    return float(np.mean([loss(t) - base for t in fitted]))


PLAIN = TemperatureSettings(prior_sd=None, folds=0)  # Guo et al.'s fit, no guard


@pytest.mark.parametrize("overconfidence", [0.5, 2.0, 4.0])
def test_few_validation_clips_lower_held_out_log_loss_of_a_miscalibrated_model(overconfidence):
    # With 8 validation clips the plain fit often sharpens to the bound (all 8 right)
    # and raises the held-out log loss on average even when the model needs softening.
    excess = _held_out_excess(overconfidence, TemperatureSettings())
    assert excess < 0
    assert excess < _held_out_excess(overconfidence, PLAIN)


def test_few_validation_clips_of_a_calibrated_model_barely_move_its_log_loss():
    # No temperature helps a calibrated model; 8 clips cannot show that for certain, so
    # some fits still move T, but the guards keep the cost small (the plain fit: +0.27).
    assert _held_out_excess(1.0, PLAIN) > 0.2
    assert _held_out_excess(1.0, TemperatureSettings()) < 0.03


def test_many_validation_clips_fit_about_the_unshrunk_temperature():
    labels, clips = _scaled_model(np.random.default_rng(2), 2000, 2.0)
    fit = fit_temperature(labels, clips)
    assert fit.temperature == fit.proposed
    assert abs(math.log(fit.temperature / fit.unshrunk)) < 0.01  # the prior is negligible
    assert 1.8 < fit.temperature < 2.2
    assert fit.folds == 10 and fit.cv_log_loss < fit.log_loss_before
    assert fit.decision.startswith(f"T={fit.temperature:.3g} (unshrunk {fit.unshrunk:.3g}): "
                                   "2000 validation clips, 10-fold cross-validated log loss")


def test_a_temperature_that_does_not_survive_leave_one_out_is_refused_and_recorded():
    # Seven of eight clips right at 0.7 and one wrong at 0.8: the plain fit sharpens the
    # answers (T 0.64), but each clip left out is scored worse by the T of the others.
    conf = [0.7] * 7 + [0.2]
    labels = [0] * 4 + [1] * 4
    clips = [np.array([[c, 1 - c]] if y == 0 else [[1 - c, c]]) for y, c in zip(labels, conf)]
    assert fit_temperature(labels, clips, PLAIN).temperature < 0.7
    fit = fit_temperature(labels, clips)
    assert fit.temperature == 1.0 and fit.log_loss_after == fit.log_loss_before
    assert fit.folds == 8 and fit.cv_log_loss >= fit.log_loss_before
    assert fit.cv_log_loss == pytest.approx(cross_validated_log_loss(labels, clips, 8, 0.5))
    entry = fit.to_dict()
    assert entry["decision"].startswith("kept T=1: 8 validation clips, leave-one-out log loss")
    assert {"clips", "log_loss_before", "log_loss_after", "proposed", "unshrunk", "prior_sd",
            "cv_folds", "cv_log_loss"} <= set(entry)
    json.dumps(entry)  # manifest-ready


def test_folds_are_stratified_and_deterministic():
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    folds = fold_of(labels, 3)
    assert (folds == fold_of(labels, 3)).all() and sorted(set(folds)) == [0, 1, 2]
    for fold in range(3):  # every class dealt across the folds
        assert len(set(labels[folds == fold])) >= 2
    assert sorted(fold_of(labels, 10)) == list(range(10))  # leave-one-out


def test_calibration_notes_read_new_old_and_uncalibrated_manifests():
    new = {"calibration": {"temperatures": {"audio": 0.8, "visual": 1.0}, "fit": {
        "audio": {"clips": 8, "decision": "T=0.8 (unshrunk 0.7): 8 validation clips"},
        "visual": {"clips": 2, "skipped": "2 validation clips of 1 classes"}}}}
    assert calibration_notes(new) == {
        "audio": "T=0.8 (unshrunk 0.7): 8 validation clips",
        "visual": "kept T=1: 2 validation clips of 1 classes"}
    old = {"calibration": {"temperatures": {"fused": 0.1}, "fit": {
        "fused": {"clips": 8, "log_loss_before": 0.027, "log_loss_after": 0.0}}}}
    assert calibration_notes(old) == {"fused": "T=0.1: 8 validation clips, log loss "
                                               "0.027 -> 0.000"}
    assert calibration_notes({}) == {}


# --------------------------------------------------------------------------- bundles


def test_training_records_temperatures_and_the_unfamiliarity_score(trained_tiny_model):
    manifest = json.loads((trained_tiny_model / "manifest.json").read_text())
    calibration = manifest["calibration"]
    assert calibration["method"] == "temperature" and calibration["split"] == "val"
    assert set(calibration["temperatures"]) == set(BRANCHES)
    assert all(t > 0 for t in calibration["temperatures"].values())
    for head, fit in calibration["fit"].items():
        assert fit["clips"] > 0
        if "skipped" not in fit:
            assert fit["log_loss_after"] <= fit["log_loss_before"]
            # What was decided, and why: a refused temperature leaves the answers alone.
            kept = fit["decision"].startswith("kept T=1")
            assert kept == (calibration["temperatures"][head] == 1.0)
    assert set(calibration_notes(manifest)) == set(BRANCHES)
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


def test_evaluate_at_fewer_frames_a_second_moves_answers_as_classify_does(
    trained_tiny_model, tau_street_videos, tmp_path
):
    """Real street videos, whose frames change: going from the model's 2 frames a second
    to 1 moves evaluate's visual answers as it moves classify's (evaluate's frames come
    from the cache, as JPEG, so the answers themselves differ a little)."""
    from avsc_core.errors import AvscError

    videos = tau_street_videos[:2]
    data = tmp_path / "street.csv"
    data.write_text("path,label\n" + "".join(f"{v},park\n" for v in videos), encoding="utf-8")
    options = {"split": "all", "cache_dir": tmp_path / "cache"}
    one = evaluate_model(trained_tiny_model, data, frames_per_second=1, **options)
    two = evaluate_model(trained_tiny_model, data, **options)
    assert (one["frames_per_second"], two["frames_per_second"]) == (1.0, 2.0)
    predictor = load_predictor(trained_tiny_model)
    moves = []
    for at_one, at_two, video in zip(one["clips"], two["clips"], videos):
        moved = at_one["confidence"]["visual"] - at_two["confidence"]["visual"]
        expected = (classify_file(video, predictor, frames_per_second=1).clip_probs["visual"]
                    .max() - classify_file(video, predictor).clip_probs["visual"].max())
        assert moved == pytest.approx(expected, abs=3e-4)
        moves.append(abs(expected))
    assert max(moves) > 1e-3  # the rate does move the answers
    with pytest.raises(AvscError, match="divided by a whole number"):
        evaluate_model(trained_tiny_model, data, frames_per_second=0.75, **options)
