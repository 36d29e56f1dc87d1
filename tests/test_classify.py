"""Classifying files over time: the contract's JSON, missing streams, segments, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avsc_core.cli.main import main
from avsc_core.errors import AvscError
from avsc_core.inference.classify import classify_file, load_predictor
from avsc_core.inference.pipeline import classify_files
from avsc_core.progress import Cancelled

BRANCHES = {"audio", "visual", "fused"}


@pytest.fixture(scope="module")
def predictor(trained_tiny_model):
    return load_predictor(trained_tiny_model)


def assert_probabilities(probs: dict, classes: list[str]) -> None:
    assert list(probs) == classes
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-9)
    assert all(0.0 <= p <= 1.0 for p in probs.values())


def test_video_gives_the_contract_json_with_both_branches(predictor, make_media):
    video = make_media("scene.mp4", seconds=3.0, fps=4, tone_hz=300.0)
    data = json.loads(classify_file(video, predictor).to_json())
    assert list(data) == ["file", "duration", "has_audio", "has_video", "classes", "segments",
                          "clip", "warnings"]
    assert data["file"] == str(video) and data["duration"] == pytest.approx(3.0, abs=0.1)
    assert data["has_audio"] and data["has_video"] and data["warnings"] == []
    classes = data["classes"]
    assert classes == ["park", "tram"]
    [segment] = data["segments"]
    assert segment["start"] == 0.0 and segment["end"] == pytest.approx(3.0, abs=0.1)
    assert set(segment["backbones"]) == {"aud-mel", "vis-inc"}
    assert set(segment["branches"]) == BRANCHES
    for probs in [*segment["backbones"].values(), *segment["branches"].values()]:
        assert_probabilities(probs, classes)
    clip = data["clip"]
    assert set(clip) == {"label", "confidence", "branches", "unfamiliar", "unfamiliar_score",
                         "needs_review"} and set(clip["branches"]) == BRANCHES
    fused = clip["branches"]["fused"]
    assert_probabilities(fused, classes)
    assert clip["label"] == max(fused, key=fused.get)
    assert clip["confidence"] == pytest.approx(max(fused.values()))


def test_audio_only_file_answers_from_the_audio_branch(predictor, make_media):
    sound = make_media("sound.wav", seconds=3.0, video=False, audio_codec="pcm_s16le")
    result = classify_file(sound, predictor)
    data = result.to_dict()
    assert data["has_video"] is False
    assert data["clip"]["branches"]["visual"] is None
    assert data["clip"]["branches"]["fused"] == data["clip"]["branches"]["audio"]
    assert data["segments"][0]["branches"]["visual"] is None
    assert set(data["segments"][0]["backbones"]) == {"aud-mel"}
    assert data["warnings"] == [
        "no video stream: visual branch skipped, fused answer from the audio branch"]
    assert result.branch_label("visual") is None


def test_video_without_sound_answers_from_the_visual_branch(predictor, make_media):
    result = classify_file(make_media("silent-film.mp4", seconds=3.0, audio=False), predictor)
    branches = result.to_dict()["clip"]["branches"]
    assert branches["audio"] is None and branches["fused"] == branches["visual"]
    assert any(w.startswith("no audio track") for w in result.warnings)


def test_real_street_video_with_mp3_sound(predictor, tau_street_videos):
    result = classify_file(tau_street_videos[0], predictor)
    assert result.has_audio and result.has_video and result.warnings == []
    assert result.starts.tolist() == [0.0] and result.ends[0] == pytest.approx(10.0, abs=0.1)
    assert all(result.clip_probs[b] is not None for b in BRANCHES)


def test_silent_track_warns_but_still_runs(predictor, make_media):
    result = classify_file(make_media("hush.mp4", seconds=2.0, tone_hz=0.0), predictor)
    assert result.clip["branches"]["audio"] is not None
    assert any("silent audio track" in w for w in result.warnings)


def test_long_file_is_cut_into_the_expected_segments(predictor, make_media):
    long = make_media("walk.mp4", seconds=25.0, fps=2, size=(32, 24))
    events = []
    default = classify_file(long, predictor, progress=events.append)
    # 10-s segments; the last one ends with the file (it overlaps the one before).
    assert default.starts == pytest.approx([0.0, 10.0, default.duration - 10.0], abs=1e-6)
    assert default.duration == pytest.approx(25.0, abs=0.1)
    assert [(e.stage, e.done, e.total) for e in events] == [("classify", n, 3) for n in (1, 2, 3)]
    hop5 = classify_file(long, predictor, hop_seconds=5)
    assert hop5.starts.tolist() == [0.0, 5.0, 10.0, 15.0]
    assert hop5.ends.tolist() == [10.0, 15.0, 20.0, 25.0]
    # The clip answer is the mean of the segments.
    np.testing.assert_allclose(hop5.clip_probs["fused"], hop5.probs["fused"].mean(axis=0))
    with pytest.raises(AvscError, match="10-s segments"):
        classify_file(long, predictor, segment_seconds=20)


def test_fewer_frames_a_second_show_the_networks_every_other_frame(predictor,
                                                                   tau_street_videos):
    """--frames-per-second at half the model's rate: each segment's visual answer comes
    from every other frame of the model's rate, and the audio answer does not change."""
    from avsc_core.features import file_frames

    clip = tau_street_videos[0]
    media = predictor.bundle.media
    half = media.frames_per_second / 2
    frames = file_frames(clip, media)
    expected = predictor.predict(None, frames[:, ::2])
    result = classify_file(clip, predictor, frames_per_second=half)
    full = classify_file(clip, predictor)
    np.testing.assert_allclose(result.probs["visual"], expected.branches["visual"], atol=1e-5)
    np.testing.assert_allclose(result.probs["audio"], full.probs["audio"], atol=1e-6)
    assert not np.allclose(result.probs["visual"], full.probs["visual"], rtol=0, atol=1e-6)
    with pytest.raises(AvscError, match="--frames-per-second must be positive"):
        classify_file(clip, predictor, frames_per_second=0)


def test_numbers_match_the_training_and_evaluation_path(predictor, tiny_dataset):
    from avsc_core.features import file_features, file_frames

    clip = tiny_dataset / "tram" / "tram-3.mp4"
    bundle = predictor.bundle
    features = file_features(clip, ("mel",), bundle.media, bundle.features)
    expected = predictor.predict(features, file_frames(clip, bundle.media))
    result = classify_file(clip, predictor)
    for branch in BRANCHES:
        np.testing.assert_allclose(result.probs[branch], expected.branches[branch], atol=1e-5)
    for name in ("aud-mel", "vis-inc"):
        np.testing.assert_allclose(result.backbone_probs[name], expected.backbones[name],
                                   atol=1e-5)


def test_batch_keeps_going_past_a_bad_file_and_can_be_cancelled(predictor, make_media, tmp_path):
    good = make_media("good.mp4", seconds=2.0)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    outcomes = list(classify_files([bad, good], predictor))
    assert outcomes[0].error.startswith(str(bad)) and outcomes[0].result is None
    assert outcomes[1].ok
    with pytest.raises(Cancelled):
        classify_file(good, predictor, cancel=lambda: True)


def test_many_files_get_each_file_alone_answers_in_order_with_progress(
    predictor, make_media, tmp_path
):
    """The next file is decoded while the networks run on the one before: the answers are
    still each file's own, in the order given, with progress for every segment."""
    videos = [make_media(f"v{i}.mp4", seconds=s, tone_hz=300.0 + 700 * i)
              for i, s in enumerate((2.0, 10.0, 3.0))]  # v1.mp4: 10 segments, two batches
    sound = make_media("s.wav", seconds=3.0, video=False, audio_codec="pcm_s16le")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 2048)
    as_given = f"{videos[0].parent}/./{videos[0].name}"  # a result names it so
    paths = [as_given, bad, videos[1], sound, videos[2]]
    seen = []
    outcomes = list(classify_files(paths, predictor, segment_seconds=1.0,
                                   progress=seen.append))
    assert [o.path for o in outcomes] == [Path(p) for p in paths]
    assert outcomes[0].result.file == as_given
    assert not outcomes[1].ok and outcomes[1].error == f"{bad}: {outcomes[1].reason}"
    for path, outcome in zip(paths, outcomes, strict=True):
        if path == bad:
            continue
        alone = classify_file(path, predictor, segment_seconds=1.0)
        got = outcome.result
        assert got.file == alone.file
        assert got.label == alone.label and got.warnings == alone.warnings
        np.testing.assert_array_equal(got.starts, alone.starts)
        for branch in BRANCHES:
            if alone.probs[branch] is None:
                assert got.probs[branch] is None
            else:
                np.testing.assert_allclose(got.probs[branch], alone.probs[branch], atol=1e-6)
        steps = [(p.done, p.total) for p in seen if p.info["file"] == str(path)]
        assert steps == [(n, len(alone.starts)) for n in range(1, len(alone.starts) + 1)]
    assert len(outcomes[2].result.starts) == 10
    with pytest.raises(Cancelled):
        list(classify_files(paths, predictor, cancel=lambda: True))


def test_cli_prints_a_json_object_per_file_and_one_error_line_for_a_bad_one(
    trained_tiny_model, make_media, tmp_path, capsys
):
    good = make_media("good.mp4", seconds=2.0)
    sound = make_media("sound.wav", seconds=2.0, video=False, audio_codec="pcm_s16le")
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 2048)
    code = main(["classify", "--model", str(trained_tiny_model), str(good), str(bad),
                 str(sound), "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    data = json.loads(out)
    assert [d["file"] for d in data] == [str(good), str(bad), str(sound)]  # in order
    assert "error" not in data[0] and data[0]["clip"]["label"]
    assert set(data[1]) == {"file", "error"} and "broken.mp4" not in data[1]["error"]
    [line] = [x for x in err.splitlines() if "broken.mp4" in x]
    assert line.startswith("avsc classify: error:") and "Traceback" not in err
    assert line.endswith(data[1]["error"])

    assert main(["classify", "--model", str(trained_tiny_model), str(bad), "--json"]) == 1
    assert json.loads(capsys.readouterr().out) == data[1]  # one file: one object

    assert main(["classify", "--model", str(trained_tiny_model), str(good), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["file"] == str(good)  # one file: one object

    assert main(["classify", "--model", str(trained_tiny_model), str(sound)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["file", "label", "conf", "audio", "visual", "review"]
    assert lines[1].startswith(str(sound)) and "warning: no video stream" in lines[2]
