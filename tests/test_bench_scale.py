"""benchmarks/scale.py: the rehearsal set is a real tau2021 layout at TAU's media format, and
its extrapolations are the stated formulas."""

from __future__ import annotations

import csv
import importlib.util
import math
import sys
import time
from pathlib import Path

import av
import pytest
import soundfile

from avsc_core.datasets.tau2021 import load_tau2021, location_of

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def scale():
    spec = importlib.util.spec_from_file_location("bench_scale", REPO / "benchmarks" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_scale"] = module
    spec.loader.exec_module(module)
    return module


def test_names_follow_tau(scale):
    for i in range(60):
        name = scale.ClipName(i)
        assert location_of(f"{name.stem}.wav", name.label) == name.identifier
    labels = {scale.ClipName(i).label for i in range(10)}
    assert len(labels) == 10


def test_folds_split_by_location(scale, tmp_path):
    scale.write_tables(tmp_path, 60)

    def rows(name: str) -> list[dict]:
        with open(tmp_path / "evaluation_setup" / name, newline="") as handle:
            return list(csv.DictReader(handle, delimiter="\t"))

    with open(tmp_path / "meta.csv", newline="") as handle:
        meta = list(csv.DictReader(handle, delimiter="\t"))
    location = {r["filename_audio"]: r["identifier"] for r in meta}
    train, evaluate = rows("fold1_train.csv"), rows("fold1_evaluate.csv")
    assert len(train) + len(evaluate) == len(meta) == 60
    assert 0.2 < len(evaluate) / 60 < 0.45
    assert not ({location[r["filename_audio"]] for r in train}
                & {location[r["filename_audio"]] for r in evaluate})
    assert len(rows("fold1_test.csv")) == len(evaluate)


def test_media_at_tau_format(scale, tmp_path):
    made = scale.make_dataset(tmp_path, 2, 0.5, jobs=1)
    dataset = load_tau2021(tmp_path)
    assert len(dataset.clips) == 2
    clip = dataset.clips[0]
    info = soundfile.info(clip.audio_path)
    assert (info.samplerate, info.channels, info.subtype) == (48000, 2, "PCM_24")
    with av.open(str(clip.video_path)) as container:
        video = container.streams.video[0]
        assert (video.codec_context.name, video.width, video.height) == ("h264", 1280, 720)
        assert video.average_rate == 30
    # Old files: the key index trusts them on the next run.
    assert clip.audio_path.stat().st_mtime < time.time() - 1800
    before = clip.video_path.stat().st_mtime_ns
    assert scale.make_dataset(tmp_path, 2, 0.5, jobs=1) < made  # nothing rewritten
    assert clip.video_path.stat().st_mtime_ns == before


def test_extrapolations(scale):
    prep = scale.Preparation(serial_clips=10, serial_s=6.0, serial_cpu_s=6.0, parallel_jobs=2,
                             parallel_clips=40, parallel_s=20.0, parallel_cpu_s=30.0,
                             cache_mb=0.8, index_kb=40)
    # 30 CPU-s less 40 x 0.6 for the clips leaves 6 CPU-s: 3 s start-up per worker.
    assert prep.startup_s == pytest.approx(3.0)
    assert prep.parallel_hours(12_291) == pytest.approx((3 + 17 / 40 * 12_291) / 3600)
    rate = scale.TrainRate("paper", "vis-conv", "random", 32, 3, 0.5, 20.0, 6)
    assert scale.epoch_hours(rate, 100) == pytest.approx(math.ceil(100 * 20 / 32) / 0.5 / 3600)
    assert rate.samples_s == 16
