"""Sampling video frames at fixed times, by presentation timestamp.

The frame shown at time ``t`` is the last frame whose timestamp is at or before ``t``, so
variable frame rates work and no frame count from the header is trusted. Only the chosen
frames are converted and resized (inside FFmpeg's scaler), and decoding runs on FFmpeg's
own threads, which is what makes sampling much cheaper than decoding every frame to RGB.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import numpy as np

from avsc_core.errors import MediaError, NoVideoError
from avsc_core.media.container import decodable_stream, decoding_stopped, open_media

log = logging.getLogger(__name__)


def frame_to_rgb(frame: av.VideoFrame, size: int) -> np.ndarray:
    """Resize ``frame`` to ``size x size`` RGB uint8, upright as a player shows it."""
    image = frame.reformat(
        width=size, height=size, format="rgb24", interpolation="AREA"
    ).to_ndarray()
    # A square image rotates without changing size; rotating after resizing is the same
    # as rotating the full frame first and costs nothing.
    turns = int(round(frame.rotation / 90.0)) % 4 if frame.rotation else 0
    if turns:
        image = np.ascontiguousarray(np.rot90(image, k=turns))
    return image


def iter_frames_at(
    path: str | Path,
    times: Sequence[float],
    size: int = 224,
    warnings: list[str] | None = None,
    threads: int = 0,
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(t, frame)`` for each of the ascending ``times`` (seconds from the start).

    Times past the last frame get the last frame. Decoding stops at the first corrupt
    packet after some frames were decoded, with a message in ``warnings``. ``threads``
    is the decoder's: 0 lets FFmpeg choose (frame threads on every core, the quickest
    for one file); 1 costs the least CPU time, for throughput when other work keeps the
    cores busy.

    Raises
    ------
    NoVideoError
        The file has no video stream.
    MediaError
        The file cannot be read or no frame can be decoded.
    """
    path = Path(path)
    times = list(times)
    if not times:
        return
    with open_media(path) as container:
        stream = decodable_stream(container, "video")
        if stream is None:
            raise NoVideoError(path)
        if threads:
            stream.codec_context.thread_count = threads
        if threads != 1:
            stream.thread_type = "AUTO"
        origin = None
        previous: av.VideoFrame | None = None
        index = 0
        try:
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                if origin is None:
                    start = stream.start_time
                    origin = float(start * stream.time_base) if start is not None else frame.time
                    origin = min(origin, frame.time)
                t = frame.time - origin
                while index < len(times) and times[index] < t:
                    yield times[index], frame_to_rgb(previous or frame, size)
                    index += 1
                previous = frame
                if index == len(times):
                    return
        except av.FFmpegError as exc:
            decoding_stopped(path, "video", exc, previous is not None, warnings, log)
        if previous is None:
            raise MediaError(path, "the video stream has no decodable frames")
        last = frame_to_rgb(previous, size)
        for t in times[index:]:
            yield t, last


def sample_times(start: float, end: float, fps: float) -> np.ndarray:
    """Sampling instants ``start, start + 1/fps, ...`` before ``end`` (at least one)."""
    n = max(1, int(np.ceil((end - start) * fps - 1e-9)))
    return start + np.arange(n) / fps


def sample_frames(
    path: str | Path,
    fps: float = 2.0,
    size: int = 224,
    start: float = 0.0,
    end: float | None = None,
    warnings: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sample frames at ``fps`` per second between ``start`` and ``end`` (default: the end).

    Returns
    -------
    times : numpy.ndarray
        float64 ``(n,)`` sampling instants in seconds.
    frames : numpy.ndarray
        uint8 ``(n, size, size, 3)`` RGB frames.
    """
    if end is None:
        from avsc_core.media.probe import probe

        end = probe(path).duration
    times = sample_times(start, end, fps)
    frames = np.stack([f for _, f in iter_frames_at(path, times, size, warnings)])
    return times, frames
