"""Batch labelling: rows and errors, subfolders, resume after an interruption, --jobs."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from avsc_core import __version__
from avsc_core.bundle.manifest import sha256
from avsc_core.cli.main import main
from avsc_core.errors import AvscError
from avsc_core.inference.classify import load_predictor
from avsc_core.label import HEADER, label_folder
from avsc_core.progress import Cancelled

TOP = ["TRAM-0.MP4", "broken.mp4", "park-0.mp4", "park-1.mp4", "tram-2.mp4"]
NESTED = ["nested/deeper/park-3.mp4"]


@pytest.fixture(scope="module")
def predictor(trained_tiny_model):
    return load_predictor(trained_tiny_model)


@pytest.fixture
def folder(tiny_dataset, tmp_path):
    """Four clips (one with an upper-case extension), a corrupt file, a text file, a
    hidden resource fork and a clip two folders down."""
    root = tmp_path / "holiday"
    (root / "nested" / "deeper").mkdir(parents=True)
    shutil.copy(tiny_dataset / "tram" / "tram-0.mp4", root / "TRAM-0.MP4")
    for name in ("park-0", "park-1"):
        shutil.copy(tiny_dataset / "park" / f"{name}.mp4", root / f"{name}.mp4")
    shutil.copy(tiny_dataset / "tram" / "tram-2.mp4", root / "tram-2.mp4")
    shutil.copy(tiny_dataset / "park" / "park-3.mp4", root / NESTED[0])
    (root / "broken.mp4").write_bytes(b"this is no video" * 64)
    (root / "notes.txt").write_text("not media")
    (root / "._park-0.mp4").write_bytes(b"\x00\x05\x16\x07")
    return root


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == HEADER
        return list(reader)


def test_rows_errors_and_params(folder, predictor, trained_tiny_model, tmp_path):
    out = tmp_path / "out" / "labels.csv"
    rows_seen = []
    summary = label_folder(folder, predictor, out, on_row=lambda r, res: rows_seen.append(r))
    rows = read_csv(out)
    assert [r["file"] for r in rows] == TOP  # only the top folder, in file order
    assert {r.file for r in rows_seen} == set(TOP)
    broken = rows[1]
    assert broken["label"] == "" and broken["confidence"] == ""
    assert broken["error"] == "not a media file, or the file is corrupt"
    for row in rows[:1] + rows[2:]:
        assert row["label"] in ("park", "tram") and row["error"] == ""
        assert 0.5 <= float(row["confidence"]) <= 1.0
        assert row["audio_label"] in ("park", "tram") and row["visual_label"] in ("park", "tram")
    assert (summary.found, summary.labelled, summary.failed) == (5, 4, 1)

    assert summary.params == out.parent / "labels.params.json"
    params = json.loads(summary.params.read_text())
    assert params["model"] == str(trained_tiny_model.resolve())
    assert params["model_sha256"] == sha256(trained_tiny_model / "manifest.json")
    assert params["segment_seconds"] == 10.0 and params["hop_seconds"] == 10.0
    assert params["avsc_version"] == __version__ and params["labels"] == "labels.csv"
    assert params["started"] <= params["finished"]
    assert params["counts"] == {"found": 5, "rows": 5, "labelled": 4, "failed": 1,
                                "remaining": 0}

    recursive = tmp_path / "all.csv"
    label_folder(folder, predictor, recursive, recursive=True)
    assert [r["file"] for r in read_csv(recursive)] == sorted(TOP + NESTED)


def test_resume_after_an_interruption_labels_each_file_once(folder, predictor, tmp_path):
    out = tmp_path / "labels.csv"
    first = []
    with pytest.raises(Cancelled):
        label_folder(folder, predictor, out, recursive=True,
                     on_row=lambda row, result: first.append(row.file),
                     cancel=lambda: len(first) >= 2)
    assert [r["file"] for r in read_csv(out)] == first and len(first) == 2
    assert json.loads((tmp_path / "labels.params.json").read_text())["finished"] is None
    # A power cut in the middle of a line: that line is dropped and its file redone.
    with open(out, "a", encoding="utf-8") as handle:
        handle.write("park-1.mp4,pa")

    with pytest.raises(AvscError, match="--resume"):
        label_folder(folder, predictor, out, recursive=True)
    second = []
    summary = label_folder(folder, predictor, out, recursive=True, resume=True,
                           on_row=lambda row, result: second.append(row.file))
    assert not set(first) & set(second)
    assert [r["file"] for r in read_csv(out)] == sorted(TOP + NESTED)
    assert (summary.already_done, summary.labelled + summary.failed) == (2, 4)
    params = json.loads((tmp_path / "labels.params.json").read_text())
    assert params["finished"] and params["counts"]["rows"] == 6


def test_resume_refuses_another_model(folder, predictor, tmp_path):
    out = tmp_path / "labels.csv"
    label_folder(folder, predictor, out)
    params = json.loads((tmp_path / "labels.params.json").read_text())
    params["model_sha256"] = "0" * 64
    (tmp_path / "labels.params.json").write_text(json.dumps(params))
    with pytest.raises(AvscError, match="the model"):
        label_folder(folder, predictor, out, resume=True)


def test_resume_refuses_another_frame_rate(folder, predictor, tmp_path):
    out, params_file = tmp_path / "labels.csv", tmp_path / "labels.params.json"
    rows = []
    with pytest.raises(Cancelled):
        label_folder(folder, predictor, out, frames_per_second=1.0,
                     on_row=lambda row, result: rows.append(row), cancel=lambda: bool(rows))
    assert json.loads(params_file.read_text())["frames_per_second"] == 1.0
    with pytest.raises(AvscError, match=r"frames_per_second \(1.0 before, 2.0 now\)"):
        label_folder(folder, predictor, out, resume=True)
    # A parameters file of an older avsc, which always ran at the model's rate.
    params = json.loads(params_file.read_text())
    del params["frames_per_second"]
    params_file.write_text(json.dumps(params))
    with pytest.raises(AvscError, match=r"frames_per_second \(2.0 before, 1.0 now\)"):
        label_folder(folder, predictor, out, resume=True, frames_per_second=1.0)
    label_folder(folder, predictor, out, resume=True)
    assert len(read_csv(out)) == len(TOP)


def test_decoder_processes_give_the_same_rows(folder, predictor, tmp_path):
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    label_folder(folder, predictor, one, recursive=True, jobs=1)
    label_folder(folder, predictor, two, recursive=True, jobs=2)
    assert read_csv(one) == read_csv(two)


def test_label_decodes_video_with_one_thread(folder, predictor, tmp_path, monkeypatch):
    """While the networks keep the cores busy, one decoder thread costs the least CPU."""
    from avsc_core.media import segments

    real, asked = segments.iter_frames_at, []

    def recording(*args, **kwargs):
        asked.append(args[4] if len(args) > 4 else kwargs.get("threads", 0))
        return real(*args, **kwargs)

    monkeypatch.setattr(segments, "iter_frames_at", recording)
    label_folder(folder, predictor, tmp_path / "labels.csv")
    assert asked and set(asked) == {1}


def test_label_keeps_numpy_blas_on_one_thread_then_gives_it_back(folder, predictor, tmp_path):
    """OpenBLAS's idle threads spin, taking CPU from the networks: one thread while
    labelling, and the caller's own setting afterwards."""
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads() -> set[int]:
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    if not blas_threads():
        pytest.skip("numpy has no BLAS that threadpoolctl can set")
    during: list[set[int]] = []
    with threadpool_limits(3, "blas"):
        label_folder(folder, predictor, tmp_path / "labels.csv",
                     on_row=lambda row, result: during.append(blas_threads()))
        assert blas_threads() == {3}
    assert during and all(threads == {1} for threads in during)


def test_cli(folder, trained_tiny_model, tmp_path, capsys):
    out = tmp_path / "labels.csv"
    args = ["label", "--model", str(trained_tiny_model), str(folder), "--out", str(out)]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines()[0] == f"found 5 media files in {folder}"
    assert "broken.mp4: not a media file" in captured.err
    assert "labelled 4 files, 1 failed" in captured.out

    assert main(args) == 1
    assert "already exists; add --resume" in capsys.readouterr().err
    assert main([*args, "--resume", "--recursive"]) == 0
    assert "found 6 media files" in capsys.readouterr().err
    assert len(read_csv(out)) == 6

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["label", "--model", str(trained_tiny_model), str(empty), "--out",
                 str(tmp_path / "x.csv")]) == 1
    assert "no audio or video files found" in capsys.readouterr().err
