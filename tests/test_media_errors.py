"""Bad input gets a MediaError naming the file and the reason."""

from __future__ import annotations

import pytest

from avsc_core.errors import MediaError
from avsc_core.media import iter_frames_at, iter_segments, probe, read_audio, sample_frames


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match=r"nothere\.mp4: file not found"):
        probe(tmp_path / "nothere.mp4")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty\.mp4: empty file"):
        read_audio(path)


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(MediaError, match="is a folder"):
        probe(tmp_path)


@pytest.mark.parametrize("name", ["noise.mp4", "noise.wav", "notes.mkv"])
def test_random_bytes_are_not_media(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(MediaError, match=f"{name}: not a media file, or the file is corrupt"):
        probe(path)


def test_text_file_with_video_extension(tmp_path):
    path = tmp_path / "readme.mp4"
    path.write_text("this is not a video\n" * 100)
    with pytest.raises(MediaError, match="readme.mp4"):
        sample_frames(path)


def test_truncated_mp4_without_its_index(make_media):
    # PyAV writes the moov atom at the end: cutting the file loses it.
    path = make_media("cut.mp4", seconds=2.0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="cut.mp4: truncated or incomplete file"):
        probe(path)


def test_truncated_mkv_keeps_what_decodes(make_media):
    path = make_media("cut.mkv", seconds=4.0, fps=10)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    info = probe(path)
    assert 1.0 < info.duration < 4.0
    segments = list(iter_segments(path))
    assert segments[0].audio.shape == (2, 320000)
    assert segments[0].frames.shape == (20, 224, 224, 3)


def test_zero_length_media(tmp_path):
    import av

    path = tmp_path / "nothing.mkv"
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=10)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    container.close()
    with pytest.raises(MediaError, match="nothing.mkv"):
        probe(path)


def _float_wav(path, samples):
    import soundfile

    soundfile.write(path, samples, 48000, subtype="FLOAT")
    return path


def test_non_finite_audio_is_zeroed_with_a_warning(tmp_path):
    import numpy as np

    samples = (0.1 * np.random.default_rng(0).standard_normal((48000 * 3, 2))).astype(np.float32)
    samples[48000:48100] = np.nan
    samples[96000:96005] = np.inf
    samples[100000] = 1e30
    warnings: list[str] = []
    audio = read_audio(_float_wav(tmp_path / "broken.wav", samples), warnings=warnings)
    assert np.isfinite(audio).all() and np.abs(audio).max() < 10
    assert len(warnings) == 1
    assert "broken.wav" in warnings[0] and "1.00 s" in warnings[0] and "NaN" in warnings[0]


def test_non_finite_audio_gives_finite_spectrograms(tmp_path):
    import numpy as np

    from avsc_core.features import FeatureExtractor

    samples = np.full((48000 * 2, 2), np.nan, np.float32)
    segment = next(iter_segments(_float_wav(tmp_path / "allnan.wav", samples), video=False))
    assert any("NaN" in w for w in segment.warnings)
    spectrograms = FeatureExtractor().spectrograms(segment.audio)
    assert all(np.isfinite(s).all() for s in spectrograms.values())


def test_a_stream_in_an_unknown_codec_counts_as_absent(make_media):
    """Found by the fuzz run: a damaged codec id left a stream without a decoder."""
    path = make_media("odd.mkv", seconds=2.0)
    data = path.read_bytes()
    assert b"V_MPEG4/ISO/AVC" in data
    path.write_bytes(data.replace(b"V_MPEG4/ISO/AVC", b"V_QQQQQ4/ISO/AV"))
    info = probe(path)
    assert info.has_audio and not info.has_video
    segment = next(iter_segments(path, info=info))
    assert segment.audio is not None and segment.frames is None


def test_a_name_too_long_to_exist_is_a_missing_file(tmp_path):
    from avsc_core.datasets import load_dataset
    from avsc_core.errors import AvscError

    csv_file = tmp_path / "data.csv"
    csv_file.write_text("path,label\n" + "k" * 300 + ".mp4,park\n")
    with pytest.raises(AvscError, match="do not exist"):
        load_dataset(csv_file, "csv")


class _DecodingFailsAfter:
    """A PyAV container that raises FFmpeg's error after ``keep`` frames (``decode``) or
    packets (``demux``, which the video sampler reads to skip frames), as a file damaged
    part-way through does."""

    def __init__(self, container, keep: int):
        self._container = container
        self._keep = keep

    def __getattr__(self, name):
        return getattr(self._container, name)

    def _fail_after(self, items):
        import av

        for i, item in enumerate(items):
            if i == self._keep:
                raise av.InvalidDataError(1094995529, "Invalid data found when processing input")
            yield item

    def decode(self, *streams):
        return self._fail_after(self._container.decode(*streams))

    def demux(self, *streams):
        return self._fail_after(self._container.demux(*streams))


@pytest.fixture
def decoding_fails_after(monkeypatch):
    """``decoding_fails_after(keep)``: every file opened from now on breaks after ``keep``
    decoded frames."""
    import av

    real_open = av.open

    def set_keep(keep: int) -> None:
        def failing_open(*args, **kwargs):
            return _DecodingFailsAfter(real_open(*args, **kwargs), keep)

        monkeypatch.setattr(av, "open", failing_open)

    return set_keep


@pytest.mark.parametrize("kind", ["audio", "video"])
def test_decoding_cut_short_keeps_what_decoded(make_media, decoding_fails_after, kind):
    path = make_media("cut.mkv", seconds=2.0, fps=10)
    decoding_fails_after(5)
    warnings: list[str] = []
    if kind == "audio":
        assert read_audio(path, warnings=warnings).shape[1] > 0
    else:
        # One decoder thread: frame threads would hold the first packets' frames back.
        frames = iter_frames_at(path, [0.0, 1.5], size=32, warnings=warnings, threads=1)
        assert len(list(frames)) == 2
    stopped = f"cut.mkv: {kind} decoding stopped early (not a media file, or the file is corrupt)"
    assert warnings == [stopped]


@pytest.mark.parametrize("kind", ["audio", "video"])
def test_decoding_fails_before_anything_decoded(make_media, decoding_fails_after, kind):
    path = make_media("broken.mkv", seconds=2.0, fps=10)
    decoding_fails_after(0)
    with pytest.raises(MediaError, match="broken.mkv: not a media file, or the file is corrupt"):
        if kind == "audio":
            read_audio(path)
        else:
            list(iter_frames_at(path, [0.0, 1.5], size=32))
