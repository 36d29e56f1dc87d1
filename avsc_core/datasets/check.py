"""Checking a dataset before training: counts, unreadable files, missing streams."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avsc_core.datasets.types import SPLITS, Dataset, counted
from avsc_core.errors import MediaError
from avsc_core.progress import Cancelled, Progress, ProgressCallback

# How many files each section of the text report names before it only counts.
_LISTED = 10

Probe = Callable[[Path], Any]


@dataclass
class DatasetReport:
    """What :func:`check_dataset` found.

    Attributes
    ----------
    dataset : Dataset
    counts : dict
        ``{split: {class: clips}}`` for train, val and test, of the usable clips: those
        whose files can all be read.
    unreadable : list of (Path, str)
        Files that cannot be decoded, with the reason; their clips are unusable.
    unusable : dict
        ``{split: clips}``: the clips left out of ``counts`` for an unreadable file.
    no_audio : list of Path
        Readable clips without a sound track (only the visual branch can use them).
    no_video : list of Path
        Readable clips without pictures (only the audio branch can use them).
    total_seconds : float
        Summed duration of the readable clips.
    """

    dataset: Dataset
    counts: dict[str, dict[str, int]]
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    unusable: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    no_audio: list[Path] = field(default_factory=list)
    no_video: list[Path] = field(default_factory=list)
    total_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every file could be read."""
        return not self.unreadable

    def format(self) -> str:
        """A plain-text summary to read before training."""
        ds = self.dataset
        title = (
            f"Dataset {ds.root} ({ds.layout}): {counted(len(ds.clips), 'clip')}, "
            f"{counted(len(ds.classes), 'class')}, {self.total_seconds / 60:.1f} min of media"
        )
        lines = [title, "", "Usable clips:"]
        width = max([len("unreadable")] + [len(name) for name in ds.classes])
        lines.append(f"{'class':<{width}}  " + "  ".join(f"{s:>6}" for s in SPLITS))
        for name in ds.classes:
            cells = "  ".join(f"{self.counts[s][name]:>6}" for s in SPLITS)
            lines.append(f"{name:<{width}}  {cells}")
        totals = "  ".join(f"{sum(self.counts[s].values()):>6}" for s in SPLITS)
        lines.append(f"{'total':<{width}}  {totals}")
        if any(self.unusable.values()):
            cells = "  ".join(f"{self.unusable[s]:>6}" for s in SPLITS)
            lines.append(f"{'unreadable':<{width}}  {cells}  (not in the total)")
        unreadable = [f"{ds.relative(p)}: {why}" for p, why in self.unreadable]
        sections = [
            ("Unreadable files (not used)", unreadable),
            ("Without a sound track (visual branch only)", [ds.relative(p) for p in self.no_audio]),
            ("Without video (audio branch only)", [ds.relative(p) for p in self.no_video]),
            ("Warnings", list(ds.warnings)),
        ]
        for title, items in sections:
            if items:
                lines += ["", f"{title}: {len(items)}"]
                lines += [f"  {item}" for item in items[:_LISTED]]
                if len(items) > _LISTED:
                    lines.append(f"  ... and {len(items) - _LISTED} more")
        return "\n".join(lines)


def check_dataset(
    dataset: Dataset,
    probe: Probe | None = None,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
) -> DatasetReport:
    """Open every file of ``dataset`` once and report what a user should fix or know.

    Parameters
    ----------
    dataset : Dataset
    probe : callable, optional
        ``probe(path)`` returning an object with ``has_audio``, ``has_video`` and
        ``duration``, raising :class:`~avsc_core.errors.MediaError` for an unreadable
        file. Defaults to :func:`avsc_core.media.probe`.
    progress : callable, optional
        Receives a :class:`~avsc_core.progress.Progress` per file (stage ``"check"``).
    cancel : callable, optional
        Polled before each file; when it returns True, :class:`Cancelled` is raised.
    """
    if probe is None:
        from avsc_core.media import probe  # imported late: decoding pulls in PyAV

    files = sorted({p for c in dataset.clips for p in (c.audio_path, c.video_path) if p})
    infos: dict[Path, Any] = {}
    failures: dict[Path, str] = {}
    for done, path in enumerate(files):
        if cancel is not None and cancel():
            raise Cancelled()
        if progress is not None:
            progress(Progress("check", done, len(files), {"file": str(path)}))
        try:
            infos[path] = probe(path)
        except MediaError as exc:
            failures[path] = exc.reason
    if progress is not None:
        progress(Progress("check", len(files), len(files)))

    report = DatasetReport(dataset, {s: dataset.class_counts(s) for s in SPLITS})
    report.unreadable = sorted(failures.items())
    for clip in dataset.clips:
        if any(p in failures for p in (clip.audio_path, clip.video_path)):
            report.counts[clip.split][clip.label] -= 1
            report.unusable[clip.split] += 1
            continue
        audio = infos.get(clip.audio_path) if clip.audio_path else None
        video = infos.get(clip.video_path) if clip.video_path else None
        if audio is None or not audio.has_audio:
            report.no_audio.append(clip.path)
        if video is None or not video.has_video:
            report.no_video.append(clip.path)
        durations = [i.duration for i in (audio, video) if i is not None and i.duration]
        report.total_seconds += max(durations, default=0.0)
    return report
