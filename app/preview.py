"""What the classify view shows of a file besides the answer: its sampled frames and its
spectrograms, segment by segment. No Qt here; runs in the media worker process.

The frames and spectrograms are the model's own inputs (:func:`avsc_core.media.iter_segments`
and :class:`avsc_core.features.FeatureExtractor` with the model's settings), so what the
user sees is what the model saw. Frames are resized back to the video's aspect ratio for
display (the model sees them squeezed to a square).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avsc_core.config import FEATURE_KINDS, FeatureConfig, MediaConfig
from avsc_core.media import MediaInfo
from avsc_core.progress import Cancelled

# Segments kept for display (the first ten minutes at 10-s segments): about 1.5 MB each.
MAX_SEGMENTS = 60
THUMB_HEIGHT = 90


@dataclass(frozen=True)
class SegmentPreview:
    """One segment as the user sees it.

    Attributes
    ----------
    index : int
    start, end : float
        Segment bounds (s).
    frame_times : ndarray or None
        ``(n,)`` time (s) of each sampled frame; ``None`` without video.
    thumbnails : ndarray or None
        ``(n, h, w, 3)`` uint8 frames at the video's aspect ratio.
    spectrograms : dict
        Kind -> float32 ``(channels, bins, frames)`` log spectrogram; empty without audio.
    spectrogram_times : ndarray or None
        ``(frames,)`` centre time (s) of each spectrogram frame.
    """

    index: int
    start: float
    end: float
    frame_times: np.ndarray | None
    thumbnails: np.ndarray | None
    spectrograms: dict[str, np.ndarray]
    spectrogram_times: np.ndarray | None


@dataclass(frozen=True)
class PreviewAxes:
    """What the spectrogram axes need, per kind: bin centre frequencies (Hz) and the
    frequency ticks as ``(bin position, label)``."""

    frequencies: dict[str, np.ndarray]
    ticks: dict[str, list[tuple[float, str]]]
    frame_seconds: float


def display_size(info: MediaInfo, height: int = THUMB_HEIGHT) -> tuple[int, int]:
    """``(width, height)`` of a thumbnail with the video's displayed aspect ratio."""
    if not info.width or not info.height:
        return height, height
    width, tall = info.width, info.height
    if info.rotation % 180:
        width, tall = tall, width
    return max(1, round(height * width / tall)), height


def preview_axes(features: FeatureConfig, media: MediaConfig) -> PreviewAxes:
    from avsc_core.features import FeatureExtractor
    from avsc_core.features.render import frequency_ticks

    extractor = FeatureExtractor(features, media.sample_rate)
    frequencies = {kind: extractor.frequencies(kind) for kind in FEATURE_KINDS}
    ticks = {}
    for kind, values in frequencies.items():
        positions, labels = frequency_ticks(values)
        # Bin i is drawn over [i, i + 1]: a tick marks its centre.
        ticks[kind] = [(float(p) + 0.5, label) for p, label in zip(positions, labels)]
    return PreviewAxes(frequencies, ticks, features.frame_seconds(media.sample_rate))


def _increasing_prefix(times: np.ndarray) -> int:
    """Length of the leading run of strictly increasing times (repetition starts after)."""
    steps = np.diff(times) <= 0
    return int(np.argmax(steps)) + 1 if steps.any() else len(times)


def iter_previews(
    path: str | Path,
    info: MediaInfo,
    media: MediaConfig,
    features: FeatureConfig,
    kinds: tuple[str, ...] = FEATURE_KINDS,
    max_segments: int = MAX_SEGMENTS,
    cancel: Callable[[], bool] | None = None,
) -> Iterator[SegmentPreview]:
    """The first ``max_segments`` segments of ``path``, decoded once, as previews."""
    import cv2

    from avsc_core.features import FeatureExtractor
    from avsc_core.media import iter_segments

    extractor = FeatureExtractor(features, media.sample_rate)
    size = display_size(info)
    for segment in iter_segments(path, media, info):
        if cancel and cancel():
            raise Cancelled()
        if segment.span.index >= max_segments:
            break
        # Media shorter than a segment is repeated up to its length for the model; the
        # user is shown only what is really there.
        thumbnails = frame_times = None
        if segment.frames is not None and segment.frame_times is not None:
            keep = _increasing_prefix(segment.frame_times)
            frame_times = segment.frame_times[:keep]
            thumbnails = np.stack(
                [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in segment.frames[:keep]]
            )
        spectrograms: dict[str, np.ndarray] = {}
        times = None
        if segment.audio is not None:
            linear = extractor.spectrograms(segment.audio, kinds)
            n_frames = next(iter(linear.values())).shape[-1]
            times = segment.span.start + extractor.frame_times(n_frames, with_deltas=False)
            keep = max(1, int(np.searchsorted(times, segment.span.end, side="right")))
            times = times[:keep]
            for kind, spec in linear.items():
                spectrograms[kind] = extractor.log_compress(spec[..., :keep])
        yield SegmentPreview(
            index=segment.span.index,
            start=segment.span.start,
            end=segment.span.end,
            frame_times=frame_times,
            thumbnails=thumbnails,
            spectrograms=spectrograms,
            spectrogram_times=times,
        )
