"""File extensions avsc treats as media (compared case-insensitively).

Kept free of heavy imports so that listing a dataset or a folder never loads FFmpeg.
"""

from __future__ import annotations

from pathlib import Path

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"}
)
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".wma", ".aiff", ".aif"}
)
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | AUDIO_EXTENSIONS


def is_media_file(path: Path) -> bool:
    """Whether ``path`` has an audio or video extension (case-insensitive)."""
    return path.suffix.lower() in MEDIA_EXTENSIONS
