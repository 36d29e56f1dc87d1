"""The ``folders`` layout: ``ROOT/<class name>/<media files>``, at any depth."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from avsc_core.datasets.splits import resolve_splits
from avsc_core.datasets.types import Clip, Dataset, is_media_file
from avsc_core.errors import AvscError


def _hidden(name: str) -> bool:
    # Also covers macOS "._clip.mp4" resource forks and ".DS_Store".
    return name.startswith(".")


def class_folders(root: Path) -> list[Path]:
    """The visible sub-folders of ``root``, sorted by name."""
    return sorted(
        (p for p in root.iterdir() if p.is_dir() and not _hidden(p.name)), key=lambda p: p.name
    )


def media_files(folder: Path) -> Iterator[Path]:
    """Media files below ``folder`` at any depth, in a stable order, skipping hidden
    files and folders."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if not _hidden(name) and is_media_file(path):
                yield path


def load_folders(
    root: Path, val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0
) -> Dataset:
    """Read a ``folders`` dataset; each file is its own group.

    Raises
    ------
    AvscError
        When ``root`` is not a folder or holds no media file in a class folder.
    """
    if not root.is_dir():
        raise AvscError(f"{root}: not a folder")
    clips: list[Clip] = []
    warnings: list[str] = []
    classes: list[str] = []
    for folder in class_folders(root):
        found = [
            Clip.from_media(path, folder.name, "train", path.relative_to(root).as_posix())
            for path in media_files(folder)
        ]
        if found:
            classes.append(folder.name)
            clips.extend(found)
        else:
            warnings.append(f"{folder.name}/: no audio or video files, not used as a class")
    if not clips:
        raise AvscError(
            f"{root}: no audio or video files in class folders "
            "(expected ROOT/<class name>/<media files>)"
        )
    loose = [p.name for p in root.iterdir() if p.is_file() and is_media_file(p)]
    if loose:
        warnings.append(
            f"{len(loose)} media file(s) directly in {root.name}/ ignored: "
            "put them in a folder named after their class"
        )
    clips, notes = resolve_splits(clips, classes, False, val_fraction, test_fraction, seed)
    warnings.extend(notes)
    return Dataset(root, "folders", classes, clips, warnings)
