"""Opening media files with PyAV and turning FFmpeg failures into :class:`MediaError`."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import av

from avsc_core.errors import MediaError


def check_readable(path: str | Path) -> Path:
    """Raise :class:`MediaError` with a plain reason if ``path`` cannot be a media file."""
    path = Path(path)
    if not path.exists():
        raise MediaError(path, "file not found")
    if path.is_dir():
        raise MediaError(path, "is a folder, not a media file")
    if not os.access(path, os.R_OK):
        raise MediaError(path, "permission denied")
    if path.stat().st_size == 0:
        raise MediaError(path, "empty file (0 bytes)")
    return path


def _looks_like_mp4(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(12)[4:8] == b"ftyp"
    except OSError:
        return False


def describe_ffmpeg_error(exc: Exception, path: str | Path | None = None) -> str:
    """A plain-words reason for an FFmpeg failure."""
    text = str(exc)
    lowered = text.lower()
    if "moov atom not found" in lowered:
        return "truncated or incomplete file (its index is missing)"
    if "invalid data" in lowered:
        # FFmpeg logs "moov atom not found" but raises a generic error: an MP4 header
        # without its index is what an interrupted download or recording leaves.
        if path is not None and _looks_like_mp4(Path(path)):
            return "truncated or incomplete file (its index is missing)"
        return "not a media file, or the file is corrupt"
    if "end of file" in lowered:
        return "truncated file"
    return f"cannot be decoded ({text})"


def decoding_stopped(
    path: Path,
    kind: str,
    exc: av.FFmpegError,
    decoded: bool,
    warnings: list[str] | None,
    log: logging.Logger,
) -> None:
    """Handle FFmpeg failing part-way through the ``kind`` stream of ``path``.

    Before anything was decoded the stream is unreadable; after, what was decoded is kept
    (a damaged tail should not cost the whole file) and the cut is reported.

    Parameters
    ----------
    kind : {"audio", "video"}
        The stream, as the warning names it.
    decoded : bool
        Whether any audio or frame came out before the failure.
    warnings : list of str, optional
        Where the caller collects the warnings of this file; the message is appended.
    log : logging.Logger
        The decoder module's logger, so the message keeps the name it is logged under.

    Raises
    ------
    MediaError
        When nothing was decoded.
    """
    reason = describe_ffmpeg_error(exc)
    if not decoded:
        raise MediaError(path, reason) from exc
    message = f"{path.name}: {kind} decoding stopped early ({reason})"
    log.warning(message)
    if warnings is not None:
        warnings.append(message)


def decodable_stream(container: av.container.InputContainer, kind: str) -> av.stream.Stream | None:
    """The first ``"audio"`` or ``"video"`` stream FFmpeg has a decoder for, or ``None``.

    A stream in an unknown codec (damaged headers, an exotic format) has no codec context;
    it counts as absent, so the other modality can still be used.
    """
    for stream in getattr(container.streams, kind):
        if stream.codec_context is not None:
            return stream
    return None


@contextlib.contextmanager
def open_media(path: str | Path) -> Iterator[av.container.InputContainer]:
    """Open ``path`` for reading; every failure becomes a :class:`MediaError`."""
    path = check_readable(path)
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise MediaError(path, describe_ffmpeg_error(exc, path)) from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise MediaError(path, f"cannot be opened ({exc})") from exc
    try:
        if not (decodable_stream(container, "audio") or decodable_stream(container, "video")):
            raise MediaError(path, "no audio track or video stream that can be decoded")
        yield container
    finally:
        container.close()
