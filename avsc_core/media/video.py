"""Sampling video frames at fixed times, by presentation timestamp.

The frame shown at time ``t`` is the last frame whose timestamp is at or before ``t``, so
variable frame rates work and no frame count from the header is trusted. Only the chosen
frames are converted and resized (inside FFmpeg's scaler), and decoding runs on FFmpeg's
own threads, which is what makes sampling much cheaper than decoding every frame to RGB.

Frames no other frame is predicted from (most B-frames) are not even decoded unless one
is chosen: a third of the frames of the TAU street videos, 6 to 9 % of their decoding's
CPU time (a fifth at 1280x720). From an intact progressive stream the chosen frames come
out exactly as when every frame is decoded; see :class:`_UnchosenSkipper` for when
nothing is skipped.
"""

from __future__ import annotations

import bisect
import collections
import heapq
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import av
import numpy as np

from avsc_core.errors import MediaError, NoVideoError
from avsc_core.media.container import decodable_stream, decoding_stopped, open_media

log = logging.getLogger(__name__)

# Decoders whose ``skip_frame`` is read per packet, and checked to give the same chosen
# frames (tests/test_media_decode.py); for others every frame is decoded.
SKIPS_UNCHOSEN = frozenset({"h264", "hevc", "mpeg2video", "mpeg4"})
# Packets looked at on each side of one, in decoding order, to find the frame shown next
# after it: more than any of these codecs reorders (H.264 and HEVC: 16).
REORDER_WINDOW = 24


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
        skipper = (_UnchosenSkipper(stream, times)
                   if stream.codec_context.name in SKIPS_UNCHOSEN else None)
        try:
            for frame in _decode(container, stream, skipper):
                if frame.pts is None:
                    continue
                if origin is None:
                    start = stream.start_time
                    origin = float(start * stream.time_base) if start is not None else frame.time
                    origin = min(origin, frame.time)
                t = frame.time - origin
                if skipper is not None:
                    skipper.shown(frame, origin)
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


class _UnchosenSkipper:
    """Decides, packet by packet, whether its frame can go undecoded if nothing is
    predicted from it: when no sampling instant falls between its time and the next
    frame's, it would never be shown.

    The next frame is the one with the smallest later timestamp among the packets within
    :data:`REORDER_WINDOW` on either side; one further away could only come sooner, which
    makes the test stricter, never looser. That holds while every packet gives one frame,
    so nothing is skipped before the first frame is out (the times count from it), and
    nothing any more once the stream turns out to be interlaced (a packet may hold one
    field), to go back in time, or to lose a frame the decoder was given (damage). A
    damaged frame that is skipped is not reported, where decoding it would have stopped
    the sampling with a warning.
    """

    def __init__(self, stream: av.video.stream.VideoStream, times: Sequence[float]):
        self.time_base = stream.time_base
        self.times = list(times)
        self.origin: float | None = None
        self.stopped = False
        self._last: int | None = None
        self._awaited: list[int] = []  # heap: timestamps of packets decoded in full

    def skippable(self, pts: int, neighbours: Iterable[int]) -> bool:
        """Whether the frame of the packet at ``pts`` is never shown, judged from the
        timestamps of the packets around it."""
        if self.origin is None or self.stopped:
            return False
        later = [p for p in neighbours if p > pts]
        if not later:
            return False  # the last frame: shown for every instant after it
        t = float(pts * self.time_base) - self.origin
        t_next = float(min(later) * self.time_base) - self.origin
        # The first instant at or after t (less a margin for rounding) must come after
        # the next frame is shown.
        first = bisect.bisect_left(self.times, t - 1e-6)
        return first == len(self.times) or self.times[first] >= t_next + 1e-6

    def decoding(self, pts: int | None, skip: bool) -> None:
        """Note a packet given to the decoder; without ``skip`` its frame must come out."""
        if pts is not None and not skip:
            heapq.heappush(self._awaited, pts)

    def shown(self, frame: av.VideoFrame, origin: float) -> None:
        """Note a decoded frame, in presentation order; stop skipping on any surprise."""
        pts = frame.pts
        lost = False
        while self._awaited and self._awaited[0] <= pts:
            lost |= heapq.heappop(self._awaited) < pts
        if (lost or frame.interlaced_frame
                or (self._last is not None and pts <= self._last)):
            self.stopped = True
        self._last = pts
        self.origin = origin


def _decode(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    skipper: _UnchosenSkipper | None,
) -> Iterator[av.VideoFrame]:
    """The frames of ``stream`` in presentation order, with ``skipper``'s frames left
    undecoded when the decoder can (``skip_frame = "NONREF"``)."""
    if skipper is None:
        yield from container.decode(stream)
        return
    codec = stream.codec_context
    # Packets read ahead, each with the timestamp of the frame it gives (None: none).
    ahead: collections.deque[tuple[av.Packet, int | None]] = collections.deque()
    behind: collections.deque[int] = collections.deque(maxlen=REORDER_WINDOW)
    packets = container.demux(stream)
    exhausted = False
    damage: av.FFmpegError | None = None
    while True:
        while not exhausted and len(ahead) <= REORDER_WINDOW:
            try:
                packet = next(packets, None)
            except av.FFmpegError as exc:
                # Raised once the packets read before the damage are decoded and the
                # decoder has given back what it holds, as when nothing is read ahead.
                packet, damage = None, exc
            if packet is None:
                exhausted = True
            else:
                ahead.append((packet, packet.pts if _gives_a_frame(packet) else None))
        if not ahead:
            if damage is not None:
                codec.skip_frame = "DEFAULT"
                yield from codec.decode(None)
                raise damage
            return
        packet, pts = ahead.popleft()
        skip = pts is not None and skipper.skippable(
            pts, [*behind, *(p for _, p in ahead if p is not None)])
        codec.skip_frame = "NONREF" if skip else "DEFAULT"
        skipper.decoding(pts, skip)
        if pts is not None:
            behind.append(pts)
        yield from codec.decode(packet)


def _gives_a_frame(packet: av.Packet) -> bool:
    """Whether decoding every frame would show ``packet``'s frame at its timestamp: not
    an empty packet (the end, or a dropped frame's place), nor one the container marks
    to be thrown away after decoding (edit lists)."""
    return packet.pts is not None and packet.size > 0 and not packet.is_discard


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
