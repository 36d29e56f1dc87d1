"""What a media file contains: streams, rates, resolution and its real duration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av

from avsc_core.errors import MediaError
from avsc_core.media.container import decodable_stream, describe_ffmpeg_error, open_media


@dataclass(frozen=True)
class MediaInfo:
    """Facts about a media file.

    ``duration`` is measured from the packets' timestamps, not taken from the header,
    which is often missing or wrong (mkv and webm report no frame count, some muxers write
    a wrong duration).
    """

    path: Path
    container: str
    duration: float
    has_audio: bool
    has_video: bool
    audio_codec: str | None = None
    sample_rate: int | None = None
    audio_channels: int | None = None
    video_codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    video_frames: int | None = None
    rotation: int = 0

    def summary(self) -> str:
        parts = [f"{self.duration:.1f} s"]
        if self.has_video:
            parts.append(
                f"video {self.video_codec} {self.width}x{self.height}"
                + (f" @ {self.fps:.3g} fps" if self.fps else "")
            )
        else:
            parts.append("no video")
        if self.has_audio:
            parts.append(f"audio {self.audio_codec} {self.sample_rate} Hz x{self.audio_channels}")
        else:
            parts.append("no audio")
        return ", ".join(parts)


def _measure(container: av.container.InputContainer, path: Path) -> tuple[float, int]:
    """Duration (s) spanned by the packets of all audio/video streams, and video packets."""
    streams = [s for s in (decodable_stream(container, "audio"),
                           decodable_stream(container, "video")) if s is not None]
    # Per stream, in its own time base's ticks: integer arithmetic per packet, fractions
    # once at the end (a fraction per packet cost more than the demuxing).
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    video_packets = 0
    try:
        for packet in container.demux(streams):
            pts = packet.pts
            if pts is None or packet.size == 0:
                continue
            index = packet.stream.index
            end = pts + (packet.duration or 0)
            if index in first:
                first[index] = min(first[index], pts)
                last[index] = max(last[index], end)
            else:
                first[index], last[index] = pts, end
            if packet.stream.type == "video":
                video_packets += 1
    except av.FFmpegError as exc:
        if not first:
            raise MediaError(path, describe_ffmpeg_error(exc)) from exc
    if not first:
        return 0.0, 0
    time_bases = {s.index: s.time_base for s in streams}
    start = min(float(first[i] * time_bases[i]) for i in first)
    end = max(float(last[i] * time_bases[i]) for i in last)
    return max(0.0, end - start), video_packets


def probe(path: str | Path) -> MediaInfo:
    """Read the streams of ``path`` and measure its duration.

    Raises
    ------
    MediaError
        The file is missing, empty, not media, corrupt, has no streams or no content.
    """
    with open_media(path) as container:
        path = Path(path)
        audio = decodable_stream(container, "audio")
        video = decodable_stream(container, "video")
        duration, video_packets = _measure(container, path)
        if duration <= 0:
            raise MediaError(path, "zero-length media (no audio or video content)")
        fps = None
        rotation = 0
        if video is not None:
            rate = video.average_rate or video.guessed_rate or video.base_rate
            fps = float(rate) if rate else None
            if not fps and video_packets:
                fps = video_packets / duration
            rotation = _first_frame_rotation(container, video)
        return MediaInfo(
            path=path,
            container=container.format.name,
            duration=duration,
            has_audio=audio is not None,
            has_video=video is not None,
            audio_codec=audio.codec_context.name if audio else None,
            sample_rate=audio.rate if audio else None,
            audio_channels=audio.channels if audio else None,
            video_codec=video.codec_context.name if video else None,
            width=video.width if video else None,
            height=video.height if video else None,
            fps=fps,
            video_frames=video_packets if video else None,
            rotation=rotation,
        )


def _first_frame_rotation(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> int:
    """Rotation (degrees counter-clockwise) a player applies, from the display matrix."""
    try:
        container.seek(0, stream=stream)
        frame = next(container.decode(stream), None)
    except av.FFmpegError:
        return 0
    return int(round(frame.rotation)) % 360 if frame is not None else 0
