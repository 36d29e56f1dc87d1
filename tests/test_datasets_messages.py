"""What the dataset messages say: what was found, what the layout needs, usable counts.

Layout detection goes by file names only, so empty files with media extensions do here.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from avsc_core.datasets import check_dataset, detect_layout, load_dataset, load_folders
from avsc_core.errors import AvscError, MediaError


def touch(*paths: Path) -> None:
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def message(call, *args) -> str:
    with pytest.raises(AvscError) as info:
        call(*args)
    text = str(info.value)
    assert "\n" not in text
    return text


def test_media_files_without_class_folders(tmp_path):
    root = tmp_path / "data"
    touch(*(root / f"clip{i}.mp4" for i in range(12)), root / ".hidden.mp4")
    expected = (f"{root}: 12 media files directly in the folder; the folders layout needs "
                f"one subfolder per class: {root}/<class>/<files>")
    assert message(detect_layout, root) == expected
    assert message(load_folders, root) == expected
    touch(root / "one" / "clip.mp4")
    assert detect_layout(root) == "folders"  # once a class folder has a file


def test_empty_class_folders_are_named(tmp_path):
    root = tmp_path / "data"
    for name in ("airport", "bus"):
        (root / name / "deeper").mkdir(parents=True)
    text = message(detect_layout, root)
    assert text.startswith(f"{root}: cannot tell the data layout: class folders airport, bus "
                           "are empty; expected one of: a folder per class")
    assert message(load_folders, root) == (
        f"{root}: class folders airport, bus are empty; the folders layout needs one "
        f"subfolder per class: {root}/<class>/<files>")
    (root / "airport").rename(root / "only")
    (root / "bus" / "deeper").rmdir()
    (root / "bus").rmdir()
    assert "class folder only is empty" in message(detect_layout, root)


def test_class_folders_with_other_files_and_loose_media(tmp_path):
    root = tmp_path / "data"
    touch(root / "a.wav", root / "notes" / "readme.txt", root / "empty" / ".DS_Store")
    assert message(detect_layout, root) == (
        f"{root}: 1 media file directly in the folder; class folder empty is empty; "
        "class folder notes holds no audio or video files (e.g. notes/readme.txt); the "
        f"folders layout needs one subfolder per class: {root}/<class>/<files>")


def test_many_class_folders_are_counted_after_five(tmp_path):
    root = tmp_path / "data"
    for i in range(8):
        (root / f"c{i}").mkdir(parents=True)
    assert "class folders c0, c1, c2, c3, c4 and 3 more are empty" in message(detect_layout, root)


def test_an_empty_folder_and_one_without_media(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    assert message(detect_layout, root).startswith(
        f"{root}: cannot tell the data layout: an empty folder; expected one of")
    touch(root / "notes.txt", root / "list.csv")
    text = message(detect_layout, root)
    assert "2 files, none of them audio or video (e.g. list.csv)" in text
    assert "to use list.csv, pass the CSV file itself" in text


def fake_probe(broken: set[str]):
    def probe(path: Path):
        if path.name in broken:
            raise MediaError(path, "cannot decode")
        return SimpleNamespace(has_audio=True, has_video=True, duration=10.0)

    return probe


def test_the_check_counts_usable_clips_and_unreadable_ones_apart(tmp_path):
    root = tmp_path / "data"
    touch(*(root / label / f"{label}{i}.mp4" for label in ("bus", "park") for i in range(8)))
    dataset = load_dataset(root, seed=0)
    broken = [c for c in dataset.clips if c.label == "bus"][:3]
    report = check_dataset(dataset, probe=fake_probe({c.path.name for c in broken}))

    splits = ("train", "val", "test")
    for split in splits:
        expected = dataset.class_counts(split)
        expected["bus"] -= sum(c.split == split for c in broken)
        assert report.counts[split] == expected
        assert report.unusable[split] == sum(c.split == split for c in broken)
    lines = report.format().splitlines()
    assert lines[0] == f"Dataset {root} (folders): 16 clips, 2 classes, 2.2 min of media"
    bus = next(line for line in lines if line.startswith("bus"))
    assert [int(n) for n in bus.split()[1:]] == [report.counts[s]["bus"] for s in splits]
    total = next(line for line in lines if line.startswith("total"))
    assert sum(int(n) for n in total.split()[1:]) == 13
    unreadable = next(line for line in lines if line.startswith("unreadable"))
    assert unreadable.split()[1:4] == [str(report.unusable[s]) for s in splits]
    assert unreadable.endswith("(not in the total)")
    assert "Unreadable files (not used): 3" in lines


def test_the_check_says_one_class_and_one_clip(tmp_path):
    root = tmp_path / "data"
    touch(root / "park" / "walk.mp4")
    report = check_dataset(load_dataset(root), probe=fake_probe(set()))
    text = report.format()
    assert text.startswith(f"Dataset {root} (folders): 1 clip, 1 class, 0.2 min of media")
    assert not any(line.startswith("unreadable") for line in text.splitlines())
