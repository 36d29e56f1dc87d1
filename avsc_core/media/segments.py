"""Cutting media of any length into fixed-length analysis segments, as a stream.

Segments start every ``hop_seconds``; when the media does not end on a segment boundary
and the rest is at least ``min_segment_seconds`` long, one more segment is placed so that
it ends with the media (it overlaps the one before), so no segment needs padding. Media
shorter than one segment gives a single segment, padded by repeating its content from the
start (audio and frames alike): a scene's sound and look are stationary, and repetition
keeps their statistics where zeros or silence would add a sound and a look of their own.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avsc_core.config import MediaConfig
from avsc_core.media.audio import iter_audio_blocks
from avsc_core.media.probe import MediaInfo, probe
from avsc_core.media.video import iter_frames_at, sample_times


@dataclass(frozen=True)
class Span:
    """Where a segment lies in the media, in seconds."""

    index: int
    start: float
    end: float


@dataclass
class Segment:
    """One analysis segment: its span, its audio and its sampled frames.

    ``audio`` is float32 ``(channels, segment_samples)`` and ``frames`` uint8
    ``(frames_per_segment, size, size, 3)``; either is ``None`` when the file lacks that
    stream or it was not asked for.
    """

    span: Span
    audio: np.ndarray | None = None
    frames: np.ndarray | None = None
    frame_times: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)


def segment_spans(duration: float, media: MediaConfig) -> list[Span]:
    """Spans covering ``duration`` seconds with the segment and hop of ``media``."""
    seg, hop = media.segment_seconds, media.hop_seconds
    if duration <= seg + 1e-6:
        return [Span(0, 0.0, duration)]
    count = 1 + int(math.floor((duration - seg) / hop + 1e-9))
    spans = [Span(i, i * hop, i * hop + seg) for i in range(count)]
    if duration - spans[-1].end >= media.min_segment_seconds:
        spans.append(Span(count, duration - seg, duration))
    return spans


def tile_to_length(x: np.ndarray, length: int, axis: int = -1) -> np.ndarray:
    """Repeat ``x`` along ``axis`` from its start until it is ``length`` long."""
    n = x.shape[axis]
    if n >= length:
        return np.take(x, np.arange(length), axis=axis)
    if n == 0:
        raise ValueError("cannot pad an empty array by repetition")
    reps = -(-length // n)
    tiled = np.concatenate([x] * reps, axis=axis)
    return np.take(tiled, np.arange(length), axis=axis)


def iter_audio_segments(
    path: str | Path,
    spans: list[Span],
    media: MediaConfig,
    warnings: list[str] | None = None,
) -> Iterator[np.ndarray]:
    """Yield each span's audio, ``(channels, segment_samples)`` float32, in span order.

    Only the samples from the current span's start onwards are kept, so memory stays at
    about one segment whatever the length of the file.
    """
    sr, n = media.sample_rate, media.segment_samples
    buffer = np.zeros((media.channels, 0), np.float32)
    offset = 0  # sample index of buffer[:, 0]
    pending = list(spans)
    blocks = iter_audio_blocks(path, sr, media.channels, warnings)
    exhausted = False
    while pending:
        span = pending[0]
        first = int(round(span.start * sr))
        last = first + n
        while not exhausted and offset + buffer.shape[1] < last:
            block = next(blocks, None)
            if block is None:
                exhausted = True
            else:
                buffer = np.concatenate([buffer, block], axis=1)
        piece = buffer[:, max(0, first - offset) : last - offset]
        if piece.shape[1] < n:
            # The track ends early (short media, or audio shorter than the video).
            source = piece if piece.shape[1] else buffer
            piece = tile_to_length(source, n, axis=1)
        yield np.ascontiguousarray(piece)
        pending.pop(0)
        if pending:
            keep_from = int(round(pending[0].start * sr)) - offset
            if keep_from > 0:
                buffer = buffer[:, keep_from:]
                offset += keep_from


def iter_frame_segments(
    path: str | Path,
    spans: list[Span],
    media: MediaConfig,
    warnings: list[str] | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield each span's ``(frame_times, frames)``; one decoding pass for all spans."""
    per_span = [sample_times(s.start, s.end, media.frames_per_second) for s in spans]
    all_times = np.unique(np.concatenate(per_span))
    frames_iter = iter_frames_at(path, all_times, media.frame_size, warnings)
    decoded: dict[float, np.ndarray] = {}
    for i, span_times in enumerate(per_span):
        horizon = float(span_times[-1])
        if horizon not in decoded:
            for t, frame in frames_iter:
                decoded[float(t)] = frame
                if t >= horizon:
                    break
        frames = np.stack([decoded[float(t)] for t in span_times])
        times = span_times
        if len(frames) < media.frames_per_segment:
            frames = tile_to_length(frames, media.frames_per_segment, axis=0)
            times = tile_to_length(times, media.frames_per_segment, axis=0)
        yield times[: media.frames_per_segment], frames[: media.frames_per_segment]
        if i + 1 < len(per_span):
            # Frames before the next span's first instant are never needed again.
            following = float(per_span[i + 1][0])
            decoded = {t: f for t, f in decoded.items() if t >= following}


def iter_segments(
    path: str | Path,
    media: MediaConfig | None = None,
    info: MediaInfo | None = None,
    audio: bool = True,
    video: bool = True,
) -> Iterator[Segment]:
    """Stream the segments of ``path`` with their audio and frames.

    Streams the file lacks are ``None`` in every segment; ``info`` (from :func:`probe`)
    is measured when not given.
    """
    media = media or MediaConfig()
    info = info or probe(path)
    spans = segment_spans(info.duration, media)
    warnings: list[str] = []
    audio_iter = (
        iter_audio_segments(path, spans, media, warnings) if audio and info.has_audio else None
    )
    frame_iter = (
        iter_frame_segments(path, spans, media, warnings) if video and info.has_video else None
    )
    for span in spans:
        segment = Segment(span)
        if audio_iter is not None:
            segment.audio = next(audio_iter)
        if frame_iter is not None:
            segment.frame_times, segment.frames = next(frame_iter)
        segment.warnings = list(warnings)
        warnings.clear()
        yield segment
