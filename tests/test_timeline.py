"""Answers over time: the segments CSV, WebVTT captions and Audacity label tracks, read
back by real parsers (csv, webvtt-py) and checked against the JSON answer."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import webvtt

from avsc_core.cli.main import main
from avsc_core.timeline import SEGMENT_HEADER, SegmentRow, SegmentsCsv, vtt_text


def _seconds(timestamp: str) -> float:
    hours, minutes, seconds = timestamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _classify_json(model, path, capsys, *extra):
    assert main(["classify", "--model", str(model), str(path), "--json",
                 "--segment-seconds", "4", "--hop-seconds", "2", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_classify_writes_segments_vtt_and_audacity_that_parsers_read(
        trained_tiny_model, make_media, tmp_path, capsys):
    clip = make_media("walk.mp4", seconds=9.0, fps=4)
    out = tmp_path / "out"
    answer = _classify_json(trained_tiny_model, clip, capsys,
                            "--segments", str(out / "segments.csv"), "--vtt", str(out / "vtt"),
                            "--audacity", str(out / "aud"))
    segments = answer["segments"]
    assert len(segments) >= 3

    with open(out / "segments.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == SEGMENT_HEADER
    assert len(rows) == len(segments)
    for row, segment in zip(rows, segments):
        fused = segment["branches"]["fused"]
        best = max(fused, key=fused.get)
        assert row["file"] == str(clip) and row["label"] == best
        assert float(row["confidence"]) == pytest.approx(fused[best], abs=1e-4)
        assert float(row["start"]) == pytest.approx(segment["start"], abs=1e-3)
        assert float(row["end"]) <= answer["duration"] + 1e-3
        audio = segment["branches"]["audio"]
        assert row["audio_label"] == max(audio, key=audio.get)

    captions = webvtt.read(str(out / "vtt" / "walk.vtt"))
    assert len(captions) == len(segments)
    for caption, row in zip(captions, rows):
        assert caption.text.startswith(row["label"])
        assert _seconds(caption.start) == pytest.approx(float(row["start"]), abs=1e-3)
    # Overlapping segments (hop 2 s, length 4 s): one caption at a time.
    assert all(_seconds(a.end) <= _seconds(b.start) + 1e-3
               for a, b in zip(captions, captions[1:]))

    track = (out / "aud" / "walk.txt").read_text(encoding="utf-8").splitlines()
    assert len(track) == len(segments)
    start, end, text = track[0].split("\t")
    assert float(start) == 0.0 and float(end) > 0 and text.startswith(rows[0]["label"])


def test_classify_names_captions_after_the_files_not_the_paths_typed(
        trained_tiny_model, make_media, tmp_path, capsys, monkeypatch):
    """``--vtt DIR`` writes ``DIR/<file stem>.vtt`` whatever folders the path was typed
    with; two files sharing a stem keep their folders, so neither overwrites the other."""
    monkeypatch.chdir(tmp_path)
    for folder in ("day1", "day2/trip"):
        (tmp_path / folder).mkdir(parents=True)
    for name in ("day1/walk.mp4", "day2/trip/walk.mp4", "day2/ride.mp4"):
        make_media(name, seconds=2.0)
    model = str(trained_tiny_model)
    assert main(["classify", "--model", model, "day2/ride.mp4", "--vtt", "one"]) == 0
    assert [p.relative_to("one").as_posix() for p in Path("one").rglob("*.vtt")] == ["ride.vtt"]
    assert main(["classify", "--model", model, "day1/walk.mp4", "day2/trip/walk.mp4",
                 "day2/ride.mp4", "--vtt", "many"]) == 0
    assert sorted(p.relative_to("many").as_posix() for p in Path("many").rglob("*.vtt")) == [
        "day1/walk.vtt", "day2/trip/walk.vtt", "ride.vtt"]
    capsys.readouterr()


def test_no_two_files_share_a_caption_file(tmp_path):
    from avsc_core.timeline import sidecar_names

    day1, day2 = str(tmp_path / "day1" / "walk.mp4"), str(tmp_path / "day2" / "walk.mp4")
    flat = sidecar_names([day1, day2, "ride.mp4", "shot.mp4", "shot.wav"], flat=True)
    assert flat == {day1: "day1/walk", day2: "day2/walk", "ride.mp4": "ride",
                    "shot.mp4": "shot.mp4", "shot.wav": "shot.wav"}
    # One file named twice is one file.
    assert sidecar_names(["walk.mp4", "x/../walk.mp4"], flat=True) == {
        "walk.mp4": "walk", "x/../walk.mp4": "walk"}
    tree = sidecar_names(["a/clip.mp4", "a/clip.wav", "b/clip.mp4", "c.mp4"], flat=False)
    assert tree == {"a/clip.mp4": "a/clip.mp4", "a/clip.wav": "a/clip.wav",
                    "b/clip.mp4": "b/clip", "c.mp4": "c"}


def test_unwritable_timeline_outputs_are_refused_before_work(trained_tiny_model, make_media,
                                                             tmp_path, capsys):
    clip = make_media("c.mp4", seconds=2.0)
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    code = main(["classify", "--model", str(trained_tiny_model), str(clip),
                 "--vtt", str(blocker / "vtt")])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.strip().startswith("avsc classify: error:") and "vtt" in err


def test_segments_csv_keeps_only_wanted_rows_of_an_earlier_run(tmp_path):
    path = tmp_path / "s.csv"
    with SegmentsCsv(path) as out:
        out.add([SegmentRow("a.mp4", 0, 10, "park", 0.9), SegmentRow("b.mp4", 0, 10, "bus", 0.8)])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("c.mp4,0.000,10")  # cut short by a crash
    with SegmentsCsv(path, keep={"a.mp4"}) as out:
        out.add([SegmentRow("d.mp4", 0, 5, "tram", 0.7)])
    files = [r["file"] for r in csv.DictReader(path.open(encoding="utf-8"))]
    assert files == ["a.mp4", "d.mp4"]


def test_vtt_text_of_long_files_uses_hours():
    text = vtt_text([SegmentRow("x", 3600.0, 3610.5, "metro", 0.5)])
    assert "01:00:00.000 --> 01:00:10.500" in text and "metro (50%)" in text
