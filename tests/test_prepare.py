"""Preparing a dataset into the cache: all cores by default, the disk checked first, and a
progress bar whose ETA counts only the clips decoded in this run."""

from __future__ import annotations

import io
import os
import sqlite3
import time
from collections import namedtuple

import numpy as np
import pytest

from avsc_core.config import FeatureConfig, MediaConfig
from avsc_core.datasets import Clip
from avsc_core.errors import AvscError
from avsc_core.features import files as files_module
from avsc_core.features import prepare as prepare_module
from avsc_core.features.index import INDEX_NAME
from avsc_core.features.prepare import prepare_clips
from avsc_core.features.store import open_entry
from avsc_core.progress import Progress, TerminalProgress

DiskUsage = namedtuple("DiskUsage", "total used free")


@pytest.fixture
def clips(make_media) -> list[Clip]:
    paths = [make_media(f"clip-{i}.mp4", seconds=1.0, fps=4, size=(32, 24), tone_hz=300 + 200 * i)
             for i in range(3)]
    return [Clip(p, p, "park", "train", p.stem) for p in paths]


def test_clips_are_prepared_on_every_core_by_default(tmp_path, clips, monkeypatch):
    monkeypatch.setattr(prepare_module.os, "cpu_count", lambda: 2)
    pools = []
    real_pool = prepare_module.concurrent.futures.ProcessPoolExecutor

    def recording_pool(workers, **kwargs):
        pools.append(workers)
        return real_pool(workers, **kwargs)

    monkeypatch.setattr(prepare_module.concurrent.futures, "ProcessPoolExecutor",
                        recording_pool)
    parallel = prepare_clips(clips, MediaConfig(), FeatureConfig(), tmp_path / "a")
    assert pools == [2]
    serial = prepare_clips(clips, MediaConfig(), FeatureConfig(), tmp_path / "b", jobs=1)
    assert pools == [2]
    for p, s in zip(parallel.clips, serial.clips, strict=True):
        assert p.segments == s.segments and p.clip == s.clip
        np.testing.assert_array_equal(open_entry(p.features["mel"])[:],
                                      open_entry(s.features["mel"])[:])
        np.testing.assert_array_equal(open_entry(p.frames)[:], open_entry(s.frames)[:])
    # Both worker processes wrote to the index.
    with sqlite3.connect(tmp_path / "a" / INDEX_NAME) as db:
        assert db.execute("SELECT count(*) FROM content_keys").fetchone() == (len(clips),)


def test_a_disk_without_room_is_refused_before_any_decoding(tmp_path, clips, monkeypatch):
    cache = tmp_path / "cache"
    prepare_clips(clips[:1], MediaConfig(), FeatureConfig(), cache, jobs=1)
    for path in (c.audio_path for c in clips):  # old enough for the index to vouch for
        then = time.time() - 3600
        os.utime(path, (then, then))
    prepare_clips(clips[:1], MediaConfig(), FeatureConfig(), cache, jobs=1)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded before the space check")

    monkeypatch.setattr(files_module, "iter_segments", no_decoding)
    monkeypatch.setattr(prepare_module.shutil, "disk_usage",
                        lambda path: DiskUsage(10**9, 10**9 - 500_000, 500_000))
    with pytest.raises(AvscError) as caught:
        prepare_clips(clips, MediaConfig(), FeatureConfig(), cache, jobs=1)
    message = str(caught.value)
    # Two clips still to prepare, about 0.9 MB each (the cached one needs nothing).
    assert message.startswith(f"{cache}: the feature cache needs about 1.9 MB for 2 clips")
    assert "the disk has 500 KB free" in message and "--cache-dir" in message
    assert "\n" not in message
    # Only what is missing counts: the cached clip needs no space.
    prepare_clips(clips[:1], MediaConfig(), FeatureConfig(), cache, jobs=1)


def test_the_space_estimate_covers_the_real_size(tau_street_videos, tmp_path):
    clips = [Clip(v, v, "street_traffic", "train", v.stem) for v in tau_street_videos[:2]]
    task = prepare_module._Task.of(MediaConfig(), FeatureConfig(), str(tmp_path),
                                   ("mel", "gam", "cqt"), True)
    prepared = prepare_clips(clips, MediaConfig(), FeatureConfig(), tmp_path, jobs=1)
    used = sum(f.stat().st_size for f in tmp_path.rglob("*.*") if f.name != INDEX_NAME)
    estimate = sum(task.clip_bytes(c) for c in clips)
    assert len(prepared.clips) == 2 and used < estimate < 1.5 * used


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_gives_an_eta_from_this_run_s_clips(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("avsc_core.progress.time.monotonic", lambda: now[0])
    stream = FakeTerminal()
    bar = TerminalProgress(stream)
    bar(Progress("prepare", 40, 100, {"cached": 40}))  # found in the cache at once
    assert stream.getvalue().endswith("40/100 ETA       ?")
    now[0] += 10.0
    bar(Progress("prepare", 45, 100))  # 5 clips in 10 s: 55 more take 110 s
    assert stream.getvalue().endswith("45/100 ETA   1m50s")
    now[0] += 3600.0
    bar(Progress("prepare", 46, 100))
    assert stream.getvalue().endswith("46/100 ETA   9h01m")  # 6 clips in 3610 s, 54 to go
    bar.close()

