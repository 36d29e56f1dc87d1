"""Finding the media files of a folder to label."""

from __future__ import annotations

import os
from pathlib import Path

from avsc_core.datasets import is_media_file
from avsc_core.errors import AvscError


def _visible(name: str) -> bool:
    # Hidden entries are not the user's recordings: ".DS_Store", macOS "._clip.mp4"
    # resource forks (which carry a media extension), ".git", trash folders.
    return not name.startswith(".")


def find_media_files(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Audio and video files in ``folder`` (case-insensitive extensions), sorted.

    Parameters
    ----------
    folder : str or Path
    recursive : bool
        Also look in subfolders (symbolic links to folders are not followed, so a link
        loop cannot make the list endless). Hidden files and folders are skipped.

    Returns
    -------
    list of Path
        Paths under ``folder``, sorted by their path relative to it.

    Raises
    ------
    AvscError
        ``folder`` does not exist or is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        reason = "not a folder" if folder.exists() else "folder not found"
        raise AvscError(f"{folder}: {reason}")
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if _visible(d)) if recursive else []
        found.extend(
            Path(root) / name
            for name in files
            if _visible(name) and is_media_file(Path(name)) and (Path(root) / name).is_file()
        )
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())
