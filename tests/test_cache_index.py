"""The cache's key index: a second run finds its entries without reading the media, an
edited file is hashed again, and a killed process leaves a usable index."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from avsc_core.config import FeatureConfig, MediaConfig
from avsc_core.datasets import Clip
from avsc_core.features import cache as cache_module
from avsc_core.features import files as files_module
from avsc_core.features.cache import FeatureCache, content_key
from avsc_core.features.index import INDEX_NAME, FileStamp, KeyIndex
from avsc_core.features.prepare import prepare_clips

REPO = Path(__file__).resolve().parents[1]


def age(path: Path, seconds: float = 3600) -> None:
    """Date ``path`` back, as files of a dataset downloaded earlier are."""
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.fixture
def clips(make_media) -> list[Clip]:
    paths = [make_media(f"clip-{i}.mp4", seconds=1.0, fps=4, size=(32, 24), tone_hz=300 + 200 * i)
             for i in range(4)]
    for path in paths:
        age(path)
    return [Clip(p, p, "park", "train", p.stem) for p in paths]


def counting_hashes(monkeypatch) -> list[Path]:
    hashed: list[Path] = []

    def counted(path):
        hashed.append(Path(path))
        return content_key(path)

    monkeypatch.setattr(cache_module, "content_key", counted)
    return hashed


def test_a_second_run_finds_its_entries_without_reading_the_media(tmp_path, clips, monkeypatch):
    root = tmp_path / "cache"
    first = prepare_clips(clips, MediaConfig(), FeatureConfig(), root, jobs=1)
    assert len(first.clips) == len(clips)

    def unread(*args, **kwargs):
        raise AssertionError("the media were read again")

    for module, name in ((cache_module, "content_key"), (files_module, "iter_segments"),
                         (files_module, "probe")):
        monkeypatch.setattr(module, name, unread)
    events = []
    second = prepare_clips(clips, MediaConfig(), FeatureConfig(), root, jobs=1,
                           progress=events.append)
    assert second.clips == first.clips
    assert events[0].info["cached"] == len(clips) and len(events) == 1


def test_an_edited_file_is_hashed_again(tmp_path, make_media):
    root = tmp_path / "cache"
    path = make_media("clip.mp4", seconds=1.0)
    age(path)
    key = FeatureCache(root).key(path)
    assert FeatureCache(root).known_key(path) == key  # a new process: from the index
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other content
    path.write_bytes(bytes(data))
    age(path, 1800)
    assert FeatureCache(root).known_key(path) is None
    edited = FeatureCache(root).key(path)
    assert edited != key and edited == content_key(path)
    assert FeatureCache(root).known_key(path) == edited


def test_a_file_changed_just_before_hashing_is_not_trusted(tmp_path, make_media, monkeypatch):
    """Written within the timestamp's resolution of being hashed, the file could change
    again unseen: it is hashed once more by the next process, and trusted once old."""
    root = tmp_path / "cache"
    path = make_media("clip.mp4", seconds=1.0)  # written just now
    FeatureCache(root).key(path)
    assert FeatureCache(root).known_key(path) is None
    hashed = counting_hashes(monkeypatch)
    later = FeatureCache(root)
    assert later.key(path) == later.key(path) == content_key(path)
    assert hashed == [path]  # once per process, remembered while it runs
    age(path)
    FeatureCache(root).key(path)
    assert FeatureCache(root).known_key(path) == content_key(path)


def test_a_damaged_index_is_replaced(tmp_path, make_media):
    root = tmp_path / "cache"
    root.mkdir()
    (root / INDEX_NAME).write_bytes(b"not a database" * 100)
    path = make_media("clip.mp4", seconds=1.0)
    age(path)
    assert FeatureCache(root).key(path) == content_key(path)
    with sqlite3.connect(root / INDEX_NAME) as db:
        assert db.execute("SELECT count(*) FROM content_keys").fetchone() == (1,)


KILLED_PREPARATION = """
import os, signal, sys
from pathlib import Path
from avsc_core.config import FeatureConfig, MediaConfig
from avsc_core.datasets import Clip
from avsc_core.features.prepare import prepare_clips

clips = [Clip(Path(p), Path(p), "park", "train", Path(p).stem) for p in sys.argv[2:]]

def progress(event):
    if event.done >= 2:  # two clips finished: die as a kill -9 or a power cut would
        os.kill(os.getpid(), signal.SIGKILL)

prepare_clips(clips, MediaConfig(), FeatureConfig(), sys.argv[1], jobs=1, progress=progress)
"""


def test_a_preparation_killed_midway_leaves_a_usable_index(tmp_path, clips, monkeypatch):
    root = tmp_path / "cache"
    paths = [str(c.audio_path) for c in clips]
    run = subprocess.run([sys.executable, "-c", KILLED_PREPARATION, str(root), *paths],
                         cwd=REPO, capture_output=True, timeout=120)
    assert run.returncode == -signal.SIGKILL, run.stderr.decode()
    hashed = counting_hashes(monkeypatch)
    again = prepare_clips(clips, MediaConfig(), FeatureConfig(), root, jobs=1)
    assert len(again.clips) == len(clips) and not again.failures
    # The two clips finished before the kill were found through the index, unread.
    assert sorted(hashed) == sorted({c.audio_path for c in clips[2:]})


HAMMER = """
import sys
from pathlib import Path
from avsc_core.features.index import FileStamp, KeyIndex

index = KeyIndex(Path(sys.argv[1]))
for i in range(10**6):
    index.put(FileStamp(f"/data/clip-{i}.mp4", i, 0), f"{i:032x}", 10**18)
    if i == 50:
        print("writing", flush=True)
"""


def test_an_index_killed_while_writing_stays_consistent(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", HAMMER, str(tmp_path)], cwd=REPO,
                               stdout=subprocess.PIPE)
    try:
        assert process.stdout.readline() == b"writing\n"
        time.sleep(0.3)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    with sqlite3.connect(tmp_path / INDEX_NAME) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = db.execute("SELECT size, key FROM content_keys").fetchall()
    assert len(rows) > 50
    assert all(key == f"{size:032x}" for size, key in rows)
    index = KeyIndex(tmp_path)
    assert index.get(FileStamp("/data/clip-7.mp4", 7, 0)) == f"{7:032x}"
    index.put(FileStamp("/data/new.mp4", 1, 0), "k" * 32, 10**18)  # still writable
    assert index.get(FileStamp("/data/new.mp4", 1, 0)) == "k" * 32
