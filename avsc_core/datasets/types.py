"""The data model shared by every layout: :class:`Clip` and :class:`Dataset`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avsc_core.errors import AvscError
from avsc_core.formats import (  # noqa: F401  (re-exported)
    AUDIO_EXTENSIONS,
    MEDIA_EXTENSIONS,
    VIDEO_EXTENSIONS,
    is_media_file,
)

SPLITS = ("train", "val", "test")

# The ten scene classes of TAU Urban Audio-Visual Scenes 2021, in the official order.
TAU_CLASSES = (
    "airport",
    "bus",
    "metro",
    "metro_station",
    "park",
    "public_square",
    "shopping_mall",
    "street_pedestrian",
    "street_traffic",
    "tram",
)

_FORMAT_VERSION = 1


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun`` for a message: ``"1 class"``, ``"2 classes"``, ``"3 clips"``."""
    if n == 1:
        return f"{n} {noun}"
    return f"{n} {noun}{'es' if noun.endswith('s') else 's'}"


@dataclass(frozen=True)
class Clip:
    """One labelled item of a dataset.

    A single media file gives both paths when it is a video container (its sound and
    its pictures come from the same file) and only ``audio_path`` when it is an audio
    file. TAU 2021 keeps sound and pictures in separate files, so either may be ``None``
    when that part was not downloaded. Whether a video container really holds a sound
    track is only known by probing it (see :func:`avsc_core.datasets.check_dataset`).

    Parameters
    ----------
    audio_path, video_path : Path or None
        Where the sound and the pictures are read from; at least one is set.
    label : str
        The class name.
    split : str
        ``"train"``, ``"val"`` or ``"test"``.
    group : str
        Clips sharing a group always land in the same split: the recording location for
        TAU, the file itself for the other layouts.
    """

    audio_path: Path | None
    video_path: Path | None
    label: str
    split: str
    group: str

    def __post_init__(self) -> None:
        if self.audio_path is None and self.video_path is None:
            raise ValueError("a clip needs an audio path, a video path or both")
        if self.split not in SPLITS:
            raise ValueError(f"unknown split {self.split!r}; expected one of {SPLITS}")

    @property
    def path(self) -> Path:
        """The file that names the clip: the audio file when there is one."""
        return self.audio_path or self.video_path  # type: ignore[return-value]

    @classmethod
    def from_media(cls, path: Path, label: str, split: str, group: str) -> Clip:
        """A clip read from one media file, video or audio depending on its extension.

        Unknown extensions are treated as containers that may hold both streams; probing
        tells later what they really hold.
        """
        if path.suffix.lower() in AUDIO_EXTENSIONS:
            return cls(path, None, label, split, group)
        return cls(path, path, label, split, group)


@dataclass(repr=False)
class Dataset:
    """Labelled clips with their split, read from one of the supported layouts.

    Parameters
    ----------
    root : Path
        What the user pointed at: a folder, or the CSV file for the ``csv`` layout.
    layout : str
        ``"folders"``, ``"csv"`` or ``"tau2021"``.
    classes : list of str
        Class names in model output order (sorted; the official order for TAU).
    clips : list of Clip
    warnings : list of str
        Things the user should know before training (missing videos, tiny classes...).
    """

    root: Path
    layout: str
    classes: list[str]
    clips: list[Clip]
    warnings: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return (
            f"Dataset(root={str(self.root)!r}, layout={self.layout!r}, "
            f"classes={len(self.classes)}, clips={len(self.clips)})"
        )

    @property
    def base_dir(self) -> Path:
        """The folder that relative clip paths are resolved against."""
        return self.root.parent if self.layout == "csv" else self.root

    def split(self, name: str) -> list[Clip]:
        """The clips of split ``name`` (``"train"``, ``"val"`` or ``"test"``)."""
        if name not in SPLITS:
            raise AvscError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return [clip for clip in self.clips if clip.split == name]

    def class_counts(self, split: str | None = None) -> dict[str, int]:
        """Clips per class, in ``classes`` order, over one split or all of them."""
        clips = self.clips if split is None else self.split(split)
        counts = Counter(clip.label for clip in clips)
        return {name: counts.get(name, 0) for name in self.classes}

    def relative(self, path: Path) -> str:
        """``path`` relative to :attr:`base_dir` with ``/`` separators, or absolute
        when it lies outside it."""
        try:
            return path.relative_to(self.base_dir).as_posix()
        except ValueError:
            return str(path)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description; clip paths are relative to :attr:`base_dir`, so the
        data can move as long as its inner structure stays."""

        def rel(path: Path | None) -> str | None:
            return None if path is None else self.relative(path)

        return {
            "format": _FORMAT_VERSION,
            "root": str(self.root),
            "layout": self.layout,
            "classes": list(self.classes),
            "clips": [
                {
                    "audio": rel(c.audio_path),
                    "video": rel(c.video_path),
                    "label": c.label,
                    "split": c.split,
                    "group": c.group,
                }
                for c in self.clips
            ],
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], root: str | Path | None = None) -> Dataset:
        """Rebuild a dataset written by :meth:`to_dict`.

        Parameters
        ----------
        data : dict
        root : str or Path, optional
            Where the data lies now, when it moved since it was recorded.
        """
        try:
            dataset = cls(
                root=Path(root if root is not None else data["root"]),
                layout=data["layout"],
                classes=list(data["classes"]),
                clips=[],
                warnings=list(data.get("warnings", [])),
            )
            base = dataset.base_dir

            def resolve(text: str | None) -> Path | None:
                return None if text is None else base / text

            for item in data["clips"]:
                dataset.clips.append(
                    Clip(
                        resolve(item["audio"]),
                        resolve(item["video"]),
                        item["label"],
                        item["split"],
                        item["group"],
                    )
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise AvscError(f"invalid dataset description: {exc}") from exc
        return dataset
