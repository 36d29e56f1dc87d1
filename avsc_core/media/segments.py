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
from avsc_core.media.prefetch import prefetch
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
    # Decoded blocks are kept in a list and joined once per segment, so assembling a
    # segment costs time linear in its length whatever the block size.
    blocks_held: list[np.ndarray] = []
    held = 0  # samples in blocks_held
    offset = 0  # sample index of the first held sample
    pending = list(spans)
    blocks = iter_audio_blocks(path, sr, media.channels, warnings)
    exhausted = False
    while pending:
        span = pending[0]
        first = int(round(span.start * sr))
        last = first + n
        while not exhausted and offset + held < last:
            block = next(blocks, None)
            if block is None:
                exhausted = True
            else:
                blocks_held.append(block)
                held += block.shape[1]
        buffer = (np.concatenate(blocks_held, axis=1) if len(blocks_held) != 1
                  else blocks_held[0]) if blocks_held else np.zeros((media.channels, 0), np.float32)
        blocks_held = [buffer]
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
                blocks_held = [buffer[:, keep_from:]]
                held = blocks_held[0].shape[1]
                offset += keep_from


def iter_frame_segments(
    path: str | Path,
    spans: list[Span],
    media: MediaConfig,
    warnings: list[str] | None = None,
    threads: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield each span's ``(frame_times, frames)``; one decoding pass for all spans, with
    ``threads`` decoder threads (see :func:`~avsc_core.media.video.iter_frames_at`)."""
    per_span = [sample_times(s.start, s.end, media.frames_per_second) for s in spans]
    all_times = np.unique(np.concatenate(per_span))
    frames_iter = iter_frames_at(path, all_times, media.frame_size, warnings, threads)
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


@dataclass
class SegmentStreams:
    """The spans of a file and one iterator per stream, each yielding one item per span.

    ``audio`` yields ``(audio, warnings)`` and ``frames`` yields ``(times, frames,
    warnings)``; either is ``None`` when the stream is not decoded. Frames are decoded a
    segment or two ahead in a background thread, so video decoding overlaps whatever the
    caller does with the audio. :meth:`close` releases the files.
    """

    spans: list[Span]
    audio: Iterator[tuple[np.ndarray, list[str]]] | None
    frames: prefetch | None

    def close(self) -> None:
        if self.frames is not None:
            self.frames.close()
        close_audio = getattr(self.audio, "close", None)
        if close_audio is not None:
            close_audio()


def open_segment_streams(
    path: str | Path,
    media: MediaConfig,
    info: MediaInfo,
    audio: bool = True,
    video: bool = True,
    video_threads: int = 0,
) -> SegmentStreams:
    """Start decoding ``path``'s streams for :func:`iter_segments`'s spans (the video with
    ``video_threads`` decoder threads, see :func:`~avsc_core.media.video.iter_frames_at`)."""
    spans = segment_spans(info.duration, media)
    audio_iter = (
        _audio_with_warnings(path, spans, media) if audio and info.has_audio else None
    )
    frame_iter = (
        prefetch(_frames_with_warnings(path, spans, media, video_threads), depth=2,
                 name="avsc-frames")
        if video and info.has_video
        else None
    )
    return SegmentStreams(spans, audio_iter, frame_iter)


def iter_segments(
    path: str | Path,
    media: MediaConfig | None = None,
    info: MediaInfo | None = None,
    audio: bool = True,
    video: bool = True,
) -> Iterator[Segment]:
    """Stream the segments of ``path`` with their audio and frames.

    Streams the file lacks are ``None`` in every segment; ``info`` (from :func:`probe`)
    is measured when not given. Frames are decoded ahead in a background thread (see
    :class:`SegmentStreams`).
    """
    media = media or MediaConfig()
    streams = open_segment_streams(path, media, info or probe(path), audio, video)
    try:
        for span in streams.spans:
            segment = Segment(span)
            if streams.audio is not None:
                segment.audio, warnings = next(streams.audio)
                segment.warnings.extend(warnings)
            if streams.frames is not None:
                segment.frame_times, segment.frames, warnings = next(streams.frames)
                segment.warnings.extend(warnings)
            yield segment
    finally:
        streams.close()


def _audio_with_warnings(
    path: str | Path, spans: list[Span], media: MediaConfig
) -> Iterator[tuple[np.ndarray, list[str]]]:
    warnings: list[str] = []
    for audio in iter_audio_segments(path, spans, media, warnings):
        yield audio, list(warnings)
        warnings.clear()


def _frames_with_warnings(
    path: str | Path, spans: list[Span], media: MediaConfig, threads: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray, list[str]]]:
    # Runs in the prefetch thread: its warnings travel with its items, not through a list
    # both threads touch.
    warnings: list[str] = []
    for times, frames in iter_frame_segments(path, spans, media, warnings, threads):
        yield times, frames, list(warnings)
        warnings.clear()
