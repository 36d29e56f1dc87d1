"""Files are decoded once: the cache answers by content, for the same settings only, in a
compact format (float16 log spectrograms, JPEG frames) whose rounding the tests bound."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from avsc_core.config import FeatureConfig, MediaConfig
from avsc_core.datasets import Clip
from avsc_core.features import FeatureCache, file_features, file_frames
from avsc_core.features import files as files_module
from avsc_core.features.files import feature_fingerprint, frames_fingerprint
from avsc_core.features.prepare import prepare_clips
from avsc_core.features.store import (
    EntryError,
    FrameFile,
    SpectrogramFile,
    open_entry,
    write_frames,
    write_spectrograms,
)

# Mixup (alpha 0.4, Beta-distributed weights symmetric about 0.5) moves a training input
# towards another by (1 - lambda) |a - b|, with median 0.5 |a - b|: the noise the networks
# learn to ignore. The cache's rounding must be tiny beside it.
MIXUP_MEDIAN_WEIGHT = 0.5


def test_second_call_reads_the_cache_without_decoding(tmp_path, make_media, monkeypatch):
    path = make_media("clip.mp4", seconds=3.0)
    cache = FeatureCache(tmp_path / "cache")
    first = file_features(path, ("mel", "cqt"), cache=cache)
    frames = file_frames(path, cache=cache)
    assert first["mel"].shape == (1, 128, 305, 6) and first["mel"].dtype == np.float32
    assert frames.shape == (1, 20, 224, 224, 3) and frames.dtype == np.uint8

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
    plain = file_features(path, ("mel",), cache=cache, features=FeatureConfig(deltas=False))
    assert plain["mel"].shape[2:] == (309, 2)
    other = make_media("clip.mp4", seconds=2.0, tone_hz=2000)  # overwrite: new content
    assert not np.array_equal(file_features(other, ("mel",), cache=cache)["mel"], default)


def test_damaged_cache_entries_are_recomputed(tmp_path, make_media):
    path = make_media("clip.mp4", seconds=2.0)
    cache = FeatureCache(tmp_path / "cache")
    expected = file_features(path, ("gam",), cache=cache)["gam"]
    frames = file_frames(path, cache=cache)
    (spectrogram,) = (tmp_path / "cache").rglob("gam-*.f16")
    (jpeg,) = (tmp_path / "cache").rglob("frames-*.jpg")
    spectrogram.write_bytes(b"garbage")
    jpeg.write_bytes(jpeg.read_bytes()[:-100])  # cut short, as by a full disk
    np.testing.assert_array_equal(file_features(path, ("gam",), cache=cache)["gam"], expected)
    np.testing.assert_array_equal(file_frames(path, cache=cache), frames)
    assert open_entry(spectrogram).shape == expected.shape
    assert open_entry(jpeg).shape == frames.shape


def test_entries_of_earlier_versions_are_not_read(tmp_path, make_media):
    """Old ``.npy`` entries have other names: a new entry is written beside them."""
    path = make_media("clip.mp4", seconds=2.0)
    cache = FeatureCache(tmp_path / "cache")
    fingerprint = feature_fingerprint(MediaConfig(), FeatureConfig())
    old = cache.root / cache.key(path) / f"mel-{fingerprint}.npy"
    old.parent.mkdir(parents=True)
    np.save(old, np.zeros((1, 128, 305, 6), np.float32))
    features = file_features(path, ("mel",), cache=cache)["mel"]
    assert np.abs(features).max() > 0
    assert cache.entry(path, "mel", fingerprint).exists()


def test_entries_index_like_the_arrays_they_hold(tmp_path):
    rng = np.random.default_rng(0)
    log_spec = rng.normal(-8, 3, (3, 2, 16, 21)).astype(np.float32)
    write_spectrograms(tmp_path / "s.f16", log_spec, deltas=True)
    spectrograms = open_entry(tmp_path / "s.f16")
    assert isinstance(spectrograms, SpectrogramFile)
    whole = spectrograms[:]
    assert whole.shape == spectrograms.shape == (3, 16, 17, 6) and len(spectrograms) == 3
    for index in (1, -1, (2,)):
        np.testing.assert_array_equal(spectrograms[index], whole[index])
    np.testing.assert_array_equal(spectrograms[1:3], whole[1:3])
    with pytest.raises(IndexError):
        spectrograms[3]

    frames = rng.integers(0, 256, (2, 3, 24, 32, 3), dtype=np.uint8)
    write_frames(tmp_path / "f.jpg", frames)
    entry = open_entry(tmp_path / "f.jpg")
    assert isinstance(entry, FrameFile) and entry.shape == frames.shape
    decoded = entry[:]
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    np.testing.assert_array_equal(entry[1], decoded[1])
    np.testing.assert_array_equal(entry[1, 2], decoded[1, 2])
    np.testing.assert_array_equal(entry[-1, -1], decoded[1, 2])
    np.testing.assert_array_equal(entry[(0,)], decoded[0])
    assert entry[2:].shape == (0, 3, 24, 32, 3)
    with pytest.raises(IndexError):
        entry[0, 3]
    with pytest.raises(EntryError):
        open_entry(tmp_path / "s.f16.npy")


def test_a_clip_takes_under_1_mb_of_cache(tau_street_videos, tmp_path):
    """Real TAU street clips: three spectrograms and 20 frames per 10 s in under 1 MB
    (5.8 MB in the float32 / raw-frame format of earlier versions)."""
    clips = [Clip(v, v, "street_traffic", "train", v.stem) for v in tau_street_videos]
    preparation = prepare_clips(clips, MediaConfig(), FeatureConfig(), tmp_path, jobs=1)
    assert not preparation.failures and len(preparation.clips) == len(clips)
    for prepared in preparation.clips:
        entries = [*prepared.features.values(), prepared.frames]
        size = sum(e.stat().st_size for e in entries) / prepared.segments
        assert size < 1e6, (prepared.clip.path, size)


def test_float16_spectrograms_move_the_inputs_by_a_fraction_of_mixup(tau_audio_files, tmp_path):
    """The bound: every input value moves by at most 2**-11 (float16's relative rounding)
    times the largest |log S| of its clip (under 0.01 here: 5e-4 of MEL's dynamic range,
    at most 2e-3 of the narrower GAM's); deltas, as halved differences of rounded values,
    by no more. Harmless: on average each channel
    group (static, delta, delta-delta) moves less than 1/20 of what mixup moves it by."""
    cache = FeatureCache(tmp_path / "cache")
    clip, other = tau_audio_files[0], tau_audio_files[2]  # an airport and a bus
    assert clip.name.startswith("airport") and other.name.startswith("bus")
    fingerprint = feature_fingerprint(MediaConfig(), FeatureConfig())
    for kind in ("mel", "gam", "cqt"):
        exact = file_features(clip, (kind,))[kind]
        cached = file_features(clip, (kind,), cache=cache)[kind]
        log_spec = np.asarray(cache.open(clip, kind, fingerprint).log_spectrograms(), np.float32)
        bound = 2.0**-11 * np.abs(log_spec).max()
        error = np.abs(cached - exact)
        assert error.max() <= bound + 1e-6, kind
        assert bound < 0.01 and bound < 2e-3 * (log_spec.max() - log_spec.min()), kind
        mixup = MIXUP_MEDIAN_WEIGHT * np.abs(exact - file_features(other, (kind,))[kind])
        for group in (slice(0, 2), slice(2, 4), slice(4, 6)):
            assert error[..., group].mean() < mixup[..., group].mean() / 20, (kind, group)


def test_jpeg_frames_move_pixels_by_a_fraction_of_mixup(tau_street_videos, tmp_path):
    """The bound: at JPEG quality 90 a frame's mean absolute error is under 3 of 255
    levels (about 1.7 on these clips). Harmless: mixup moves a frame by about 30 levels on
    average (more than 10 times as far), and ImageNet, which the visual backbones start
    from, is itself JPEG at about this quality."""
    cache = FeatureCache(tmp_path / "cache")
    exact = file_frames(tau_street_videos[0]).astype(np.int16)
    cached = file_frames(tau_street_videos[0], cache=cache).astype(np.int16)
    error = np.abs(cached - exact).mean(axis=(2, 3, 4))
    assert error.max() < 3.0
    other = file_frames(tau_street_videos[1]).astype(np.int16)
    mixup = MIXUP_MEDIAN_WEIGHT * np.abs(exact - other).mean()
    assert error.mean() < mixup / 10
    (entry,) = (tmp_path / "cache").rglob(f"frames-{frames_fingerprint(MediaConfig())}.jpg")
    assert open_entry(entry).quality == 90
