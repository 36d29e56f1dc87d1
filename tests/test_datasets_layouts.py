"""The ``folders`` and ``csv`` layouts and ``--layout auto``, on links to real clips."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from avsc_core.datasets import Dataset, detect_layout, load_dataset
from avsc_core.errors import AvscError

from conftest import SHARED_DATA as SHARED  # noqa: E402
WAVS = sorted((SHARED / "tau2021-audio").glob("*.wav"))
MP4S = sorted((SHARED / "tau2021-av-street-traffic").glob("*.mp4"))

pytestmark = pytest.mark.skipif(not (WAVS and MP4S), reason="shared clips not present")


def link(path: Path, target: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    return path


def build_folders(root: Path, per_class: int = 6) -> Path:
    """Classes ``park`` (videos, nested, upper-case extensions) and ``bus`` (audio)."""
    for i in range(per_class):
        sub = "day" if i % 2 else "night/late"
        link(root / "park" / sub / f"walk{i}.MP4", MP4S[i % len(MP4S)])
        link(root / "bus" / f"ride{i}.Wav", WAVS[i % len(WAVS)])
    return root


def test_folders_finds_nested_media_and_skips_hidden_and_other_files(tmp_path):
    root = build_folders(tmp_path / "data")
    link(root / "park" / ".cache" / "walk9.mp4", MP4S[0])
    link(root / "park" / "._walk0.mp4", MP4S[0])
    (root / "park" / "notes.txt").write_text("not media")
    (root / ".trash").mkdir()
    link(root / ".trash" / "old.mp4", MP4S[0])
    (root / "empty").mkdir()
    link(root / "loose.mp4", MP4S[0])

    assert detect_layout(root) == "folders"
    ds = load_dataset(root)
    assert ds.layout == "folders"
    assert ds.classes == ["bus", "park"]
    assert ds.class_counts() == {"bus": 6, "park": 6}
    names = {c.path.relative_to(root).as_posix() for c in ds.clips}
    assert "park/night/late/walk0.MP4" in names and "bus/ride1.Wav" in names
    assert not any(".cache" in n or "._" in n or ".trash" in n for n in names)
    park = next(c for c in ds.clips if c.label == "park")
    assert park.audio_path == park.video_path  # one video file gives sound and pictures
    bus = next(c for c in ds.clips if c.label == "bus")
    assert bus.video_path is None and bus.audio_path.suffix == ".Wav"
    assert bus.group == bus.path.relative_to(root).as_posix()
    # 6 clips per class: 1 test, 1 val, 4 train, in each class.
    for split, n in {"train": 4, "val": 1, "test": 1}.items():
        assert ds.class_counts(split) == {"bus": n, "park": n}
    text = "\n".join(ds.warnings)
    assert "empty/: no audio or video files" in text
    assert "1 media file(s) directly in data/ ignored" in text


def test_folders_split_is_deterministic_and_seeded(tmp_path):
    root = build_folders(tmp_path / "data", per_class=12)
    first = [(c.path, c.split) for c in load_dataset(root, seed=2).clips]
    assert [(c.path, c.split) for c in load_dataset(root, seed=2).clips] == first
    assert [(c.path, c.split) for c in load_dataset(root, seed=3).clips] != first
    ds = load_dataset(root, val_fraction=0.25, test_fraction=0.25, seed=2)
    assert Counter(c.split for c in ds.clips) == {"train": 12, "val": 6, "test": 6}


def test_folders_tiny_classes_are_handled_and_reported(tmp_path):
    root = tmp_path / "data"
    link(root / "one" / "a.wav", WAVS[0])
    link(root / "two" / "a.wav", WAVS[1])
    link(root / "two" / "b.wav", WAVS[2])
    for i in range(3):
        link(root / "three" / f"{i}.wav", WAVS[i])
    ds = load_dataset(root)
    assert ds.class_counts("train") == {"one": 1, "three": 1, "two": 1}
    assert ds.class_counts("test") == {"one": 0, "three": 1, "two": 1}
    assert ds.class_counts("val") == {"one": 0, "three": 1, "two": 0}
    assert "class 'one' has 1 clip: none in val or test" in ds.warnings
    assert "class 'two' has 2 clips: none in val" in ds.warnings


def write_csv(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_csv_without_split_column(tmp_path):
    for i in range(5):
        link(tmp_path / "media" / f"p{i}.mp4", MP4S[i])
        link(tmp_path / "media" / f"b{i}.wav", WAVS[i])
    rows = [f"media/p{i}.mp4,park" for i in range(5)] + [f"media/b{i}.wav,bus" for i in range(5)]
    table = write_csv(tmp_path / "labels.csv", ["path,label", *rows])
    assert detect_layout(table) == "csv"
    ds = load_dataset(table)
    assert ds.layout == "csv" and ds.root == table and ds.base_dir == tmp_path
    assert ds.classes == ["bus", "park"]
    for split in ("train", "val", "test"):
        assert set(ds.class_counts(split).values()) != {0}
        assert all(n >= 1 for n in ds.class_counts(split).values())
    assert ds.clips[0].audio_path == tmp_path / "media" / "p0.mp4"


def test_csv_split_column_decides_and_val_is_carved_from_train(tmp_path):
    lines = ["Path;Label;Split;note"]  # any case, semicolons, an extra column
    for i in range(8):
        link(tmp_path / "set" / "clips" / f"{i}.wav", WAVS[i])
        sep = "\\" if i == 7 else "/"  # a path written on Windows
        lines.append(f"clips{sep}{i}.wav;bus;{'TEST' if i < 2 else 'train'};x")
    absolute = link(tmp_path / "outside" / "abs.mp4", MP4S[0])
    lines.append(f"{absolute};park;train;")
    table = write_csv(tmp_path / "set" / "labels.csv", lines)
    ds = load_dataset(table, layout="csv", seed=0)
    tests = sorted(c.path.name for c in ds.split("test"))
    assert tests == ["0.wav", "1.wav"]
    # 6 train clips of bus: round(0.9) = 1 goes to val; park's single clip stays in train.
    assert ds.class_counts("val") == {"bus": 1, "park": 0}
    assert ds.class_counts("train") == {"bus": 5, "park": 1}
    assert "class 'park' has 1 clip: none in val or test" in ds.warnings
    # The absolute path outside the CSV's folder survives a JSON round trip.
    data = json.loads(json.dumps(ds.to_dict()))
    assert str(absolute) in {c["audio"] for c in data["clips"]}
    assert "clips/0.wav" in {c["audio"] for c in data["clips"]}
    assert Dataset.from_dict(data).clips == ds.clips


def test_csv_errors_name_the_file_and_line(tmp_path):
    link(tmp_path / "a.wav", WAVS[0])
    bad_header = write_csv(tmp_path / "h.csv", ["file,label", "a.wav,bus"])
    with pytest.raises(AvscError, match=r"h\.csv:1: missing column 'path'"):
        load_dataset(bad_header)
    bad_split = write_csv(
        tmp_path / "s.csv", ["path,label,split", "a.wav,bus,train", "", "a.wav,bus,dev"]
    )
    with pytest.raises(AvscError, match=r"s\.csv:4: unknown split 'dev'"):
        load_dataset(bad_split)
    twice = write_csv(tmp_path / "t.csv", ["path,label", "a.wav,bus", "a.wav,park"])
    with pytest.raises(AvscError, match=r"t\.csv:3: a\.wav is already listed on line 2"):
        load_dataset(twice)
    no_label = write_csv(tmp_path / "l.csv", ["path,label", "a.wav,"])
    with pytest.raises(AvscError, match=r"l\.csv:2: empty label"):
        load_dataset(no_label)
    no_train = write_csv(tmp_path / "n.csv", ["path,label,split", "a.wav,bus,test"])
    with pytest.raises(AvscError, match="no clip as 'train'"):
        load_dataset(no_train)


def test_csv_reports_every_missing_file_at_once(tmp_path):
    link(tmp_path / "here.wav", WAVS[0])
    rows = ["here.wav,bus"] + [f"gone{i}.mp4,park" for i in range(8)]
    table = write_csv(tmp_path / "labels.csv", ["path,label", *rows])
    with pytest.raises(AvscError) as info:
        load_dataset(table)
    message = str(info.value)
    assert message.startswith(f"{table}: 8 listed file(s) do not exist")
    assert "line 3: gone0.mp4" in message and "line 7: gone4.mp4" in message
    assert "gone5.mp4" not in message and "and 3 more" in message
    assert "\n" not in message


def test_auto_detection_explains_the_layouts(tmp_path):
    with pytest.raises(AvscError, match="no such file or folder"):
        detect_layout(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("x")
    with pytest.raises(AvscError, match="cannot tell the data layout") as info:
        load_dataset(empty)
    for words in ("ROOT/<class name>", "path,label[,split]", "meta.csv"):
        assert words in str(info.value)
    (empty / "labels.csv").write_text("path,label\n")
    with pytest.raises(AvscError, match="to use labels.csv, pass the CSV file itself"):
        detect_layout(empty)
    with pytest.raises(AvscError, match="not a dataset"):
        detect_layout(link(tmp_path / "clip.wav", WAVS[0]))
    with pytest.raises(AvscError, match="unknown layout 'zip'"):
        load_dataset(empty, layout="zip")
    with pytest.raises(AvscError, match="needs the CSV file itself"):
        load_dataset(empty, layout="csv")
