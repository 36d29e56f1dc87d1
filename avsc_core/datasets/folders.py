"""The ``folders`` layout: ``ROOT/<class name>/<media files>``, at any depth."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from avsc_core.datasets.splits import resolve_splits
from avsc_core.datasets.types import Clip, Dataset, counted, is_media_file
from avsc_core.errors import AvscError


def _hidden(name: str) -> bool:
    # Also covers macOS "._clip.mp4" resource forks and ".DS_Store".
    return name.startswith(".")


def class_folders(root: Path) -> list[Path]:
    """The visible sub-folders of ``root``, sorted by name."""
    return sorted(
        (p for p in root.iterdir() if p.is_dir() and not _hidden(p.name)), key=lambda p: p.name
    )


def _visible_files(folder: Path) -> Iterator[Path]:
    """Files below ``folder`` at any depth, in a stable order, skipping hidden files and
    folders."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d))
        for name in sorted(filenames):
            if not _hidden(name):
                yield Path(dirpath, name)


def media_files(folder: Path) -> Iterator[Path]:
    """Media files below ``folder`` at any depth, in a stable order, skipping hidden
    files and folders."""
    return (path for path in _visible_files(folder) if is_media_file(path))


def loose_media(root: Path) -> list[Path]:
    """The media files directly in ``root``, which the layout cannot give a class."""
    return sorted(p for p in root.iterdir() if p.is_file() and not _hidden(p.name)
                  and is_media_file(p))


# How many class folders a message names before it only counts the rest.
_NAMED = 5


def _folders(names: list[str], verb: str, verb_plural: str) -> str:
    """``"class folder a is"`` or ``"class folders a, b and 3 more are"``."""
    shown = ", ".join(names[:_NAMED])
    if len(names) > _NAMED:
        shown += f" and {len(names) - _NAMED} more"
    if len(names) == 1:
        return f"class folder {shown} {verb}"
    return f"class folders {shown} {verb_plural}"


def describe_contents(root: Path) -> str:
    """What a folder holds whose class folders have no media file, for an error message.

    Returns
    -------
    str
        E.g. ``"12 media files directly in the folder; class folders airport, bus are
        empty"``, ``"class folder sub holds no audio or video files (e.g. sub/a.txt)"`` or
        ``"an empty folder"``.
    """
    found = []
    loose = loose_media(root)
    if loose:
        found.append(f"{counted(len(loose), 'media file')} directly in the folder")
    empty: list[str] = []
    other: list[Path] = []  # one non-media file of each class folder that has some
    for folder in class_folders(root):
        first = next(_visible_files(folder), None)
        if first is None:
            empty.append(folder.name)
        else:
            other.append(first)
    if empty:
        found.append(_folders(empty, "is empty", "are empty"))
    if other:
        names = [path.relative_to(root).parts[0] for path in other]
        example = other[0].relative_to(root).as_posix()
        found.append(_folders(names, "holds", "hold")
                     + f" no audio or video files (e.g. {example})")
    if not found:
        files = list(_visible_files(root))
        found.append(f"{counted(len(files), 'file')}, none of them audio or video "
                     f"(e.g. {files[0].name})" if files else "an empty folder")
    return "; ".join(found)


def folders_expected(root: Path) -> str:
    """What the ``folders`` layout needs, with ``root`` in the example."""
    return f"the folders layout needs one subfolder per class: {root}/<class>/<files>"


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
        raise AvscError(f"{root}: {describe_contents(root)}; {folders_expected(root)}")
    loose = loose_media(root)
    if loose:
        warnings.append(
            f"{len(loose)} media file(s) directly in {root.name}/ ignored: "
            "put them in a folder named after their class"
        )
    clips, notes = resolve_splits(clips, classes, False, val_fraction, test_fraction, seed)
    warnings.extend(notes)
    return Dataset(root, "folders", classes, clips, warnings)
