"""Files are decoded once: the cache answers by content, for the same settings only."""

from __future__ import annotations

import shutil

import numpy as np

from avsc_core.config import FeatureConfig, MediaConfig
from avsc_core.features import FeatureCache, file_features, file_frames
from avsc_core.features import files as files_module


def test_second_call_reads_the_cache_without_decoding(tmp_path, make_media, monkeypatch):
    path = make_media("clip.mp4", seconds=3.0)
    cache = FeatureCache(tmp_path / "cache")
    first = file_features(path, ("mel", "cqt"), cache=cache)
    frames = file_frames(path, cache=cache)
    assert first["mel"].shape == (1, 128, 305, 6)
    assert frames.shape == (1, 20, 224, 224, 3)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(files_module, "iter_segments", no_decoding)
    again = file_features(path, ("mel", "cqt"), cache=cache)
    np.testing.assert_array_equal(again["mel"], first["mel"])
    np.testing.assert_array_equal(file_frames(path, cache=cache), frames)

    # A renamed copy has the same content, so it hits the cache too.
    copy = tmp_path / "renamed copy.mp4"
    shutil.copy(path, copy)
    np.testing.assert_array_equal(file_features(copy, ("cqt",), cache=cache)["cqt"], first["cqt"])


def test_other_settings_or_content_miss_the_cache(tmp_path, make_media):
    path = make_media("clip.mp4", seconds=2.0, tone_hz=500)
    cache = FeatureCache(tmp_path / "cache")
    default = file_features(path, ("mel",), cache=cache)["mel"]
    coarse = file_features(path, ("mel",), cache=cache, features=FeatureConfig(n_bins=64))["mel"]
    assert coarse.shape[1] == 64 and default.shape[1] == 128
    short = file_features(path, ("mel",), cache=cache, media=MediaConfig(segment_seconds=1.0))[
        "mel"
    ]
    assert short.shape[0] == 2
    other = make_media("clip.mp4", seconds=2.0, tone_hz=2000)  # overwrite: new content
    assert not np.array_equal(file_features(other, ("mel",), cache=cache)["mel"], default)


def test_corrupt_cache_entry_is_recomputed(tmp_path, make_media):
    path = make_media("clip.wav", seconds=2.0, video=False, audio_codec="pcm_s16le")
    cache = FeatureCache(tmp_path / "cache")
    expected = file_features(path, ("gam",), cache=cache)["gam"]
    (entry,) = list((tmp_path / "cache").rglob("gam-*.npy"))
    entry.write_bytes(b"garbage")
    np.testing.assert_array_equal(file_features(path, ("gam",), cache=cache)["gam"], expected)
    assert np.load(entry).shape == expected.shape
