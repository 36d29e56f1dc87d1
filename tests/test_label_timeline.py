"""Answers over time for a labelled folder: --segments, --vtt and --audacity, resumed."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import webvtt

from avsc_core.cli.main import main
from avsc_core.inference.classify import load_predictor
from avsc_core.label import label_folder, read_rows
from avsc_core.progress import Cancelled
from avsc_core.timeline import SEGMENT_HEADER

FILES = ["broken.mp4", "park-0.mp4", "tram-0.mp4", "trips/day1/park-1.mp4",
         "trips/day2/park-1.mp4"]


@pytest.fixture(scope="module")
def predictor(trained_tiny_model):
    return load_predictor(trained_tiny_model)


@pytest.fixture
def folder(tiny_dataset, tmp_path) -> Path:
    """Four 2-s clips, two of them named alike in different subfolders, and a corrupt
    file."""
    root = tmp_path / "archive"
    for name, source in zip(FILES[1:], ["park/park-0", "tram/tram-0", "park/park-1",
                                        "park/park-2"], strict=True):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tiny_dataset / f"{source}.mp4", root / name)
    (root / "broken.mp4").write_bytes(b"this is no video" * 64)
    return root


def segment_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == SEGMENT_HEADER
        return list(reader)


def test_segment_rows_and_sidecars_follow_the_label_rows(folder, predictor, tmp_path):
    out, segments = tmp_path / "labels.csv", tmp_path / "segments.csv"
    vtt, audacity = tmp_path / "vtt", tmp_path / "audacity"
    label_folder(folder, predictor, out, recursive=True, segment_seconds=1.0,
                 segments_csv=segments, vtt_dir=vtt, audacity_dir=audacity)
    labels = read_rows(out)
    assert [r.file for r in labels] == FILES
    rows = segment_rows(segments)
    ok = [r.file for r in labels if r.ok]
    # Every labelled file has its 1-s segments (2-s clips), in file order; a failed one none.
    assert [r["file"] for r in rows] == [f for f in ok for _ in range(2)]
    for row in rows:
        assert float(row["end"]) - float(row["start"]) == pytest.approx(1.0)
        assert row["label"] in ("park", "tram")
    for label in labels[1:]:
        # Same subfolders as the archive: the two park-1.mp4 do not overwrite each other.
        stem = Path(label.file).with_suffix("")
        captions = webvtt.read(vtt / f"{stem}.vtt")
        assert len(captions) == 2 and captions[0].text.split()[0] in ("park", "tram")
        track = (audacity / f"{stem}.txt").read_text().splitlines()
        assert len(track) == 2 and track[0].split("\t")[0] == "0.000000"
    assert not (vtt / "broken.vtt").exists()


def test_a_resumed_run_writes_each_segment_row_once(folder, predictor, tmp_path):
    out, segments = tmp_path / "labels.csv", tmp_path / "segments.csv"
    written = []
    with pytest.raises(Cancelled):
        label_folder(folder, predictor, out, recursive=True, segments_csv=segments,
                     on_row=lambda row, result: written.append(row.file),
                     cancel=lambda: len(written) >= 3)
    assert {r["file"] for r in segment_rows(segments)} == {"park-0.mp4", "tram-0.mp4"}
    # A crash between a file's segment rows and its label row leaves rows of a file the
    # labels CSV does not have: the resumed run drops them and writes that file again.
    with open(segments, "a", encoding="utf-8") as handle:
        handle.write("trips/day1/park-1.mp4,0.000,2.000,park,0.9000,park,park\n")

    label_folder(folder, predictor, out, recursive=True, resume=True, segments_csv=segments)
    files = [r["file"] for r in segment_rows(segments)]
    assert sorted(files) == sorted(r.file for r in read_rows(out) if r.ok)
    assert len(files) == len(set(files)) == 4


def test_cli_label_writes_answers_over_time(folder, trained_tiny_model, tmp_path, capsys):
    out, segments, vtt = tmp_path / "labels.csv", tmp_path / "segments.csv", tmp_path / "vtt"
    base = ["label", "--model", str(trained_tiny_model), str(folder), "--out", str(out)]
    assert main([*base, "--segments", str(segments), "--vtt", str(vtt)]) == 0
    capsys.readouterr()
    assert [r["file"] for r in segment_rows(segments)] == ["park-0.mp4", "tram-0.mp4"]
    assert sorted(p.name for p in vtt.iterdir()) == ["park-0.vtt", "tram-0.vtt"]

    # An output that cannot be written is refused before any work.
    assert main([*base, "--resume", "--segments", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"avsc label: error: {folder}: is a folder") and err.count("\n") == 1
    assert main([*base, "--resume", "--audacity", str(out)]) == 1
    assert "must be a folder" in capsys.readouterr().err
