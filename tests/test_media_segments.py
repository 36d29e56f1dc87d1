"""Cutting media into 10-s segments, streamed."""

from __future__ import annotations

import numpy as np
import pytest

from avsc_core.config import MediaConfig
from avsc_core.media import iter_segments, read_audio, segment_spans


@pytest.mark.parametrize(
    "duration, segment, hop, expected",
    [
        (10.0, 10, 10, [(0, 10)]),
        (4.0, 10, 10, [(0, 4)]),
        (30.0, 10, 10, [(0, 10), (10, 20), (20, 30)]),
        (25.0, 10, 10, [(0, 10), (10, 20), (15, 25)]),  # the last one ends with the media
        (20.5, 10, 10, [(0, 10), (10, 20)]),  # a 0.5-s tail is dropped
        (20.0, 10, 5, [(0, 10), (5, 15), (10, 20)]),
    ],
)
def test_segment_spans(duration, segment, hop, expected):
    media = MediaConfig(segment_seconds=segment, hop_seconds=hop)
    spans = segment_spans(duration, media)
    np.testing.assert_allclose([(s.start, s.end) for s in spans], expected)
    assert [s.index for s in spans] == list(range(len(expected)))


def test_long_file_segments_are_slices_of_the_whole_track(make_media):
    path = make_media("long.mkv", seconds=25.0, fps=2, size=(32, 32), tone_hz=300)
    media = MediaConfig(hop_seconds=10)
    whole = read_audio(path)
    segments = list(iter_segments(path, media))
    end = whole.shape[1] / 32000
    np.testing.assert_allclose(
        [(s.span.start, s.span.end) for s in segments],
        [(0, 10), (10, 20), (end - 10, end)],
        atol=0.05,
    )
    for segment in segments:
        first = int(round(segment.span.start * 32000))
        assert segment.audio.shape == (2, 320000)
        expected = whole[:, first : first + 320000]
        # The last segment ends with the longest stream; audio may stop a few ms earlier.
        assert expected.shape[1] > 320000 - 0.05 * 32000
        np.testing.assert_allclose(segment.audio[:, : expected.shape[1]], expected, atol=1e-6)
        assert segment.frames.shape == (20, 224, 224, 3)
        np.testing.assert_allclose(segment.frame_times, segment.span.start + np.arange(20) * 0.5)


def test_short_clip_is_padded_by_repetition(make_media):
    path = make_media("short.mp4", seconds=3.0, fps=10)
    (segment,) = list(iter_segments(path))
    whole = read_audio(path)
    n = whole.shape[1]
    assert segment.audio.shape == (2, 320000)
    np.testing.assert_allclose(segment.audio[:, :n], whole)
    np.testing.assert_allclose(segment.audio[:, n : 2 * n], whole)
    # About 3 s at 2 fps gives 6 or 7 distinct frames, repeated in order up to 20.
    assert segment.frames.shape == (20, 224, 224, 3)
    m = len(np.unique(segment.frame_times))
    assert m in (6, 7)
    np.testing.assert_array_equal(segment.frames[m : 2 * m], segment.frames[:m])
    np.testing.assert_array_equal(segment.frame_times[m : 2 * m], segment.frame_times[:m])
    assert not np.array_equal(segment.frames[0], segment.frames[m - 1])


def test_overlapping_hops_reuse_the_same_frames(make_media):
    path = make_media("hop.mp4", seconds=20.0, fps=4, size=(32, 32), audio=False)
    segments = list(iter_segments(path, MediaConfig(hop_seconds=5)))
    assert len(segments) == 3
    # Segment 1 starts at 5 s: its first 10 frames are segment 0's last 10.
    np.testing.assert_array_equal(segments[1].frames[:10], segments[0].frames[10:])
