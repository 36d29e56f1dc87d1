"""The TAU Urban Audio-Visual Scenes 2021 layout, built from the real clips in shared data."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from avsc_core.datasets import TAU_CLASSES, Dataset, detect_layout, load_dataset
from avsc_core.errors import AvscError

from conftest import SHARED_DATA as SHARED  # noqa: E402
REAL_AUDIO = SHARED / "tau2021-audio"
REAL_VIDEO = SHARED / "tau2021-av-street-traffic"
NESTED = "TAU-urban-audio-visual-scenes-2021-development.meta"

pytestmark = pytest.mark.skipif(not REAL_AUDIO.is_dir(), reason="shared TAU clips not present")

# Locations that the fixtures' fold1_evaluate.csv holds; every other one is in fold1_train.
EVALUATE_LOCATIONS = {"prague-1009", "helsinki-148", "vienna-100", "vienna-200", "vienna-300"}


def _tsv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n")


def _identifier(stem: str, label: str) -> str:
    city, location, _segment = stem[len(label) + 1 :].split("-")
    return f"{city}-{location}"


def _label(stem: str) -> str:
    return next(c for c in sorted(TAU_CLASSES, key=len, reverse=True) if stem.startswith(c + "-"))


def build_tau(
    root: Path,
    entries: list[tuple[str, Path]],
    nested: bool = False,
    folds: bool = True,
    videos: dict[str, Path] | None = None,
) -> Path:
    """Write a TAU 2021 development layout under ``root``.

    ``entries`` are ``(stem, real wav to link)``; ``videos`` maps stems to real mp4s.
    """
    (root / "audio").mkdir(parents=True)
    (root / "video").mkdir()
    meta_rows, train_rows, eval_rows = [], [], []
    for stem, wav in entries:
        (root / "audio" / f"{stem}.wav").symlink_to(wav)
        label = _label(stem)
        files = [f"audio/{stem}.wav", f"video/{stem}.mp4"]
        identifier = _identifier(stem, label)
        meta_rows.append([*files, label, identifier])
        (eval_rows if identifier in EVALUATE_LOCATIONS else train_rows).append([*files, label])
    for stem, mp4 in (videos or {}).items():
        (root / "video" / f"{stem}.mp4").symlink_to(mp4)
    meta_dir = root / NESTED if nested else root
    _tsv(
        meta_dir / "meta.csv",
        ["filename_audio", "filename_video", "scene_label", "identifier"],
        meta_rows,
    )
    if folds:
        header = ["filename_audio", "filename_video", "scene_label"]
        setup = meta_dir / "evaluation_setup"
        _tsv(setup / "fold1_train.csv", header, train_rows)
        _tsv(setup / "fold1_evaluate.csv", header, eval_rows)
        _tsv(setup / "fold1_test.csv", header[:2], [r[:2] for r in eval_rows])
    return root


def real_entries() -> list[tuple[str, Path]]:
    return [(p.stem, p) for p in sorted(REAL_AUDIO.glob("*.wav"))]


def street_videos() -> dict[str, Path]:
    # Two genuine street_traffic videos stand in for the London clips' videos.
    mp4s = sorted(REAL_VIDEO.glob("*.mp4"))
    return {
        "street_traffic-london-271-8266": mp4s[0],
        "street_traffic-london-271-8269": mp4s[1],
    }


def many_locations() -> list[tuple[str, Path]]:
    """Three classes with 10 locations of 1 to 3 segments each, linked to real wavs."""
    wavs = sorted(REAL_AUDIO.glob("*.wav"))
    entries = []
    for k, label in enumerate(("bus", "park", "tram")):
        for loc in range(10):
            for seg in range(1 + (loc + k) % 3):
                stem = f"{label}-vienna-{100 * (k + 1) + loc}-{seg}"
                entries.append((stem, wavs[(loc + seg) % len(wavs)]))
    return entries


def _groups_by_split(dataset: Dataset) -> dict[str, set[str]]:
    out = defaultdict(set)
    for clip in dataset.clips:
        out[clip.split].add(clip.group)
    return out


@pytest.mark.parametrize("nested", [False, True])
def test_real_clips_with_fold_files(tmp_path, nested):
    root = build_tau(tmp_path / "tau", real_entries(), nested=nested, videos=street_videos())
    assert detect_layout(root) == "tau2021"
    ds = load_dataset(root)
    assert ds.layout == "tau2021"
    assert ds.classes == list(TAU_CLASSES)
    assert len(ds.clips) == 16
    # fold1_evaluate -> test, fold1_train -> train; every class has a single train
    # location, so no val location can be carved without leaking one.
    test = ds.split("test")
    assert sorted(c.path.name for c in test) == [
        "shopping_mall-prague-1009-40009.wav",
        "street_pedestrian-helsinki-148-4492.wav",
    ]
    assert len(ds.split("train")) == 14 and ds.split("val") == []
    airport = next(c for c in ds.clips if c.label == "airport")
    assert airport.group == "helsinki-3"
    assert airport.audio_path == root / "audio" / "airport-helsinki-3-117.wav"
    assert airport.video_path is None  # only the audio part was "downloaded"
    traffic = [c for c in ds.clips if c.label == "street_traffic"]
    assert all(c.video_path and c.video_path.suffix == ".mp4" for c in traffic)
    assert all(c.audio_path.is_file() and c.video_path.is_file() for c in traffic)
    assert ds.class_counts() == {
        **dict.fromkeys(TAU_CLASSES, 2),
        "public_square": 0,
        "tram": 0,
    }
    text = "\n".join(ds.warnings)
    assert "14 of 16 videos are not on disk" in text
    assert "audio only" in text
    assert "class 'tram' has no clips" in text
    assert "no clip is in val" in text


def test_val_is_carved_from_fold1_train_by_location(tmp_path):
    root = build_tau(tmp_path / "tau", many_locations())
    ds = load_dataset(root, seed=0)
    by_split = _groups_by_split(ds)
    # No location leaks between splits, and the official evaluate fold stays the test set.
    assert not by_split["train"] & by_split["val"]
    assert not by_split["train"] & by_split["test"]
    assert not by_split["val"] & by_split["test"]
    assert by_split["test"] == {"vienna-100", "vienna-200", "vienna-300"}
    # Each class has 9 train locations: round(1.35) = 1 of them goes to val.
    val_locations = defaultdict(set)
    for clip in ds.split("val"):
        val_locations[clip.label].add(clip.group)
    assert {k: len(v) for k, v in val_locations.items()} == {"bus": 1, "park": 1, "tram": 1}
    assert "no clip is in val" not in "\n".join(ds.warnings)
    assert [c.split for c in load_dataset(root, seed=0).clips] == [c.split for c in ds.clips]
    assert [c.split for c in load_dataset(root, seed=1).clips] != [c.split for c in ds.clips]


def test_meta_only_is_split_three_ways_by_location(tmp_path):
    root = build_tau(tmp_path / "tau", many_locations(), nested=True, folds=False)
    ds = load_dataset(root, seed=5)
    assert not [w for w in ds.warnings if "none in" in w or "no clip is in" in w]
    by_split = _groups_by_split(ds)
    assert not by_split["train"] & by_split["val"]
    assert not by_split["train"] & by_split["test"]
    assert not by_split["val"] & by_split["test"]
    for label in ("bus", "park", "tram"):
        locations = defaultdict(set)
        for clip in ds.clips:
            if clip.label == label:
                locations[clip.split].add(clip.group)
        assert {s: len(g) for s, g in locations.items()} == {"train": 6, "val": 2, "test": 2}
    again = load_dataset(root, seed=5)
    assert [(c.path, c.split) for c in again.clips] == [(c.path, c.split) for c in ds.clips]


def test_round_trip_through_json_and_a_moved_root(tmp_path):
    root = build_tau(tmp_path / "tau", real_entries(), videos=street_videos())
    ds = load_dataset(root)
    data = json.loads(json.dumps(ds.to_dict()))
    first = data["clips"][0]
    assert first["audio"] == "audio/airport-helsinki-3-117.wav" and first["video"] is None
    assert Dataset.from_dict(data).clips == ds.clips
    moved = tmp_path / "elsewhere"
    root.rename(moved)
    again = Dataset.from_dict(data, root=moved)
    assert [c.split for c in again.clips] == [c.split for c in ds.clips]
    assert all(c.audio_path.is_file() for c in again.clips)
    assert again.classes == list(TAU_CLASSES)


def test_missing_audio_keeps_the_video_and_missing_both_skips_the_clip(tmp_path):
    root = build_tau(tmp_path / "tau", real_entries(), videos=street_videos())
    (root / "audio" / "street_traffic-london-271-8266.wav").unlink()
    (root / "audio" / "park-london-243-7238.wav").unlink()
    ds = load_dataset(root)
    assert len(ds.clips) == 15
    video_only = [c for c in ds.clips if c.audio_path is None]
    assert [c.video_path.name for c in video_only] == ["street_traffic-london-271-8266.mp4"]
    assert video_only[0].path == video_only[0].video_path
    text = "\n".join(ds.warnings)
    assert "1 of 16 audio files are not on disk" in text
    assert "1 of 16 clips have neither audio nor video" in text
    assert "park-london-243-7238.wav" in text


def test_errors_name_the_file_and_line(tmp_path):
    root = build_tau(tmp_path / "tau", real_entries())
    meta = root / "meta.csv"
    lines = meta.read_text().splitlines()
    lines[3] = lines[3].replace("\tbus\t", "\tbeach\t")
    meta.write_text("\n".join(lines) + "\n")
    with pytest.raises(AvscError, match=r"meta\.csv:4: unknown scene label 'beach'"):
        load_dataset(root)

    root = build_tau(tmp_path / "tau2", real_entries())
    (root / "evaluation_setup" / "fold1_evaluate.csv").unlink()
    with pytest.raises(AvscError, match="found fold1_train.csv but not fold1_evaluate.csv"):
        load_dataset(root)

    root = build_tau(tmp_path / "tau3", real_entries())
    for wav in (root / "audio").iterdir():
        wav.unlink()
    with pytest.raises(AvscError, match="none of the 16 listed clips is on disk"):
        load_dataset(root, layout="tau2021")

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AvscError, match="no meta.csv"):
        load_dataset(empty, layout="tau2021")


def test_fold_files_sharing_a_location_are_reported(tmp_path):
    root = build_tau(tmp_path / "tau", real_entries())
    setup = root / "evaluation_setup"
    train = setup / "fold1_train.csv"
    rows = train.read_text().splitlines()
    moved = next(r for r in rows if "airport-helsinki-3-123" in r)
    train.write_text("\n".join(r for r in rows if r != moved) + "\n")
    with (setup / "fold1_evaluate.csv").open("a") as f:
        f.write(moved + "\n")
    ds = load_dataset(root)
    assert any("helsinki-3" in w and "appear in both" in w for w in ds.warnings)
