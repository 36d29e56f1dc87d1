"""'Not sure': the review rule, the unfamiliarity score, and classify's reasons."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass

import numpy as np
import pytest
from conftest import TINY_CLASSES

from avsc_core.cli.main import main
from avsc_core.errors import AvscError
from avsc_core.inference.classify import classify_file
from avsc_core.inference.review import (
    BRANCHES_DISAGREE,
    LOW_CONFIDENCE,
    UNFAMILIAR,
    review_reasons,
    review_text,
)
from avsc_core.inference.unfamiliar import class_distance, pack_statistics


@dataclass
class Answer:
    """What the rule reads of a result."""

    confidence: float
    audio: str | None
    visual: str | None
    unfamiliar: bool | None = None

    def branch_label(self, branch: str) -> str | None:
        return getattr(self, branch)


@pytest.mark.parametrize("answer, min_confidence, reasons", [
    (Answer(0.95, "park", "park", False), 0.9, []),
    (Answer(0.95, "park", "park"), None, []),  # a model without a score flags nothing
    (Answer(0.60, "park", "park", False), 0.9, [LOW_CONFIDENCE]),
    (Answer(0.60, "park", "park", False), None, []),
    (Answer(0.95, "park", "tram", False), None, [BRANCHES_DISAGREE]),
    (Answer(0.95, "park", None, False), None, []),  # one branch alone cannot disagree
    (Answer(0.95, "park", "park", True), None, [UNFAMILIAR]),
    (Answer(0.50, "tram", "park", True), 0.9, [LOW_CONFIDENCE, BRANCHES_DISAGREE, UNFAMILIAR]),
])
def test_review_reasons(answer, min_confidence, reasons):
    assert review_reasons(answer, min_confidence) == reasons


def test_review_text_and_bad_minimums():
    assert review_text([]) == ""
    assert review_text([LOW_CONFIDENCE, UNFAMILIAR]) == "low confidence;unfamiliar"
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(AvscError, match="--min-confidence"):
            review_reasons(Answer(0.9, "park", "park"), bad)


def test_the_distance_to_the_nearest_class_mean_in_spreads():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (200, 4)), rng.normal(10, 1, (200, 4))])
    stats = pack_statistics(x, np.repeat([0, 1], 200), 3)  # class 2 has no segments
    assert stats.shape == (4, 4) and np.isnan(stats[2]).all()
    first, second, far = class_distance(np.array([[0.0] * 4, [10.0] * 4, [40.0] * 4]), stats)
    assert first < 0.1 and second < 0.1
    # From the nearest mean (about 10), in units of each dimension's spread (about 5).
    assert far == pytest.approx(np.sqrt(np.mean(((40 - stats[1]) / stats[3]) ** 2)), rel=1e-5)
    assert 5 < far < 7


# --------------------------------------------------------------------------- with a model


def _copy_with(model, tmp_path, name: str, change) -> str:
    """A copy of ``model`` whose manifest ``change`` edits (files keep their checksums)."""
    copy = tmp_path / name
    shutil.copytree(model, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    change(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return str(copy)


def _classify_json(capsys, model: str, *args: str) -> dict:
    assert main(["classify", "--model", model, "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_classify_json_gives_scores_and_no_reasons_for_a_familiar_agreeing_file(
    trained_tiny_model, tiny_dataset, tmp_path, capsys
):
    def never_unfamiliar(manifest):
        manifest["unfamiliar"]["threshold"] = 1e9

    model = _copy_with(trained_tiny_model, tmp_path, "m", never_unfamiliar)
    clip = next((tiny_dataset / "park").glob("*.mp4"))
    result = classify_file(clip, model)
    data = _classify_json(capsys, model, str(clip))
    expected = [BRANCHES_DISAGREE] if result.branch_label("audio") != result.branch_label(
        "visual") else []
    assert data["clip"]["needs_review"] == expected
    assert data["clip"]["unfamiliar"] is False
    scores = [s["unfamiliar_score"] for s in data["segments"]]
    assert data["clip"]["unfamiliar_score"] == pytest.approx(np.mean(scores))
    assert result.unfamiliar_scores.tolist() == pytest.approx(scores)


def test_low_confidence_is_flagged_under_min_confidence(trained_tiny_model, tmp_path,
                                                        make_media, capsys):
    def soften(manifest):
        # A high temperature spreads every answer evenly over the two classes.
        manifest["calibration"]["temperatures"] = {b: 100.0 for b in ("audio", "visual",
                                                                       "fused")}

    model = _copy_with(trained_tiny_model, tmp_path, "m", soften)
    video = make_media("scene.mp4", seconds=2.0, fps=4, tone_hz=300.0)
    data = _classify_json(capsys, model, str(video), "--min-confidence", "0.99")
    assert data["clip"]["confidence"] < 0.6
    assert LOW_CONFIDENCE in data["clip"]["needs_review"]
    assert LOW_CONFIDENCE not in _classify_json(capsys, model, str(video))["clip"]["needs_review"]
    # The table shows the reasons too.
    assert main(["classify", "--model", model, str(video), "--min-confidence", "0.99"]) == 0
    table = capsys.readouterr().out
    assert "review" in table.splitlines()[0] and "low confidence" in table


def test_disagreeing_branches_are_flagged(trained_tiny_model, make_media, capsys):
    # The sound of a park with the look of a tram.
    (park_hz, _), (_, tram_colour) = TINY_CLASSES["park"], TINY_CLASSES["tram"]
    video = make_media("odd.mp4", seconds=2.0, fps=4, size=(48, 32), tone_hz=park_hz,
                       frame_colour=tram_colour)
    result = classify_file(video, str(trained_tiny_model))
    assert (result.branch_label("audio"), result.branch_label("visual")) == ("park", "tram")
    data = _classify_json(capsys, str(trained_tiny_model), str(video))
    assert BRANCHES_DISAGREE in data["clip"]["needs_review"]


def test_unfamiliar_files_are_flagged(trained_tiny_model, tmp_path, make_media, capsys):
    def always_unfamiliar(manifest):
        manifest["unfamiliar"]["threshold"] = -1.0  # every score is at least 0

    model = _copy_with(trained_tiny_model, tmp_path, "m", always_unfamiliar)
    video = make_media("scene.mp4", seconds=2.0, fps=4, tone_hz=300.0)
    clip = _classify_json(capsys, model, str(video))["clip"]
    assert clip["unfamiliar"] is True and clip["unfamiliar_score"] >= 0
    assert UNFAMILIAR in clip["needs_review"]


def test_an_audio_only_file_is_scored_by_the_audio_backbone(trained_tiny_model, make_media):
    sound = make_media("sound.wav", seconds=2.0, video=False, audio_codec="pcm_s16le")
    result = classify_file(sound, str(trained_tiny_model))
    assert result.unfamiliar_score is not None and result.unfamiliar is not None
    assert BRANCHES_DISAGREE not in review_reasons(result)


def test_a_bad_min_confidence_is_a_user_error(trained_tiny_model, make_media, capsys):
    video = make_media("scene.mp4", seconds=2.0)
    assert main(["classify", "--model", str(trained_tiny_model), str(video),
                 "--min-confidence", "1.5"]) == 1
    assert "--min-confidence must be between 0 and 1" in capsys.readouterr().err
