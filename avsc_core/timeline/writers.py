"""Writers of per-segment answers: CSV rows, WebVTT captions, Audacity label tracks."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from avsc_core.atomic import atomic_write

if TYPE_CHECKING:
    from avsc_core.inference.classify import ClassifyResult

SEGMENT_HEADER = ("file", "start", "end", "label", "confidence", "audio_label", "visual_label")


@dataclass(frozen=True)
class SegmentRow:
    """One segment's answer: the fused label and confidence, and each branch's label.

    ``start``/``end`` are seconds into the file (``end`` never past its duration); a
    branch that could not run has an empty label.
    """

    file: str
    start: float
    end: float
    label: str
    confidence: float
    audio_label: str = ""
    visual_label: str = ""

    def cells(self) -> list[str]:
        return [self.file, f"{self.start:.3f}", f"{self.end:.3f}", self.label,
                f"{self.confidence:.4f}", self.audio_label, self.visual_label]


def _labels(classes: list[str], probs: np.ndarray | None, n: int) -> list[str]:
    if probs is None:
        return [""] * n
    return [classes[i] for i in np.argmax(probs, axis=1)]


def segment_rows(result: ClassifyResult, file: str | None = None) -> list[SegmentRow]:
    """The rows of ``result``'s segments, in time order.

    Parameters
    ----------
    result : ClassifyResult
    file : str, optional
        The name to put in the ``file`` column (default: ``result.file``); ``label``
        writes paths relative to the labelled folder.
    """
    fused = result.probs["fused"]
    if fused is None:
        return []
    n = len(result.starts)
    audio = _labels(result.classes, result.probs.get("audio"), n)
    visual = _labels(result.classes, result.probs.get("visual"), n)
    best = np.argmax(fused, axis=1)
    ends = np.minimum(result.ends, max(result.duration, float(result.starts[-1])))
    return [
        SegmentRow(file or result.file, float(result.starts[i]), float(max(ends[i],
                   result.starts[i])), result.classes[best[i]], float(fused[i, best[i]]),
                   audio[i], visual[i])
        for i in range(n)
    ]


def _csv_line(cells: Iterable[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(list(cells))
    return buffer.getvalue()


class SegmentsCsv:
    """The per-segment CSV of a run over many files, written as files finish.

    Rows are appended and flushed per file; ``keep`` (the files whose rows are already
    in the CSV and still wanted, e.g. those a resumed ``label`` run keeps) decides what
    survives from an earlier file: the rest (rows of a file whose label row was never
    written) is dropped, atomically, when the writer opens.
    """

    def __init__(self, path: str | Path, keep: set[str] | None = None):
        self.path = Path(path)
        rows = self._earlier(keep or set())
        with atomic_write(self.path, "w", encoding="utf-8", newline="") as handle:
            handle.write(_csv_line(SEGMENT_HEADER))
            handle.writelines(rows)
        self._handle = open(self.path, "a", encoding="utf-8", newline="")  # noqa: SIM115

    def _earlier(self, keep: set[str]) -> list[str]:
        if not keep or not self.path.exists():
            return []
        with open(self.path, encoding="utf-8", newline="") as handle:
            lines = handle.read().splitlines(keepends=True)
        kept = []
        for line in lines[1:]:
            if not line.endswith("\n"):
                break  # a line cut short by a crash
            cells = next(csv.reader([line]), [])
            if len(cells) == len(SEGMENT_HEADER) and cells[0] in keep:
                kept.append(line)
        return kept

    def add(self, rows: list[SegmentRow]) -> None:
        self._handle.writelines(_csv_line(r.cells()) for r in rows)
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> SegmentsCsv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sidecar_path(folder: str | Path, file: str, suffix: str) -> Path:
    """``folder/<file without its extension><suffix>``, keeping ``file``'s subfolders
    (``label`` labels whole trees, where two folders may hold ``clip.mp4``)."""
    relative = Path(file)
    if relative.is_absolute() or ".." in relative.parts:
        relative = Path(relative.name)
    return Path(folder) / relative.with_suffix(suffix)


def _timestamp(seconds: float) -> str:
    millis = int(round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def vtt_text(rows: list[SegmentRow]) -> str:
    """WebVTT captions of ``rows``: one cue per segment, ``"<label> (<confidence>)"``.

    With overlapping segments (a hop shorter than the segment), each cue ends where the
    next begins, so a player shows one caption at a time.
    """
    out = ["WEBVTT", ""]
    for i, row in enumerate(rows):
        end = row.end
        if i + 1 < len(rows) and rows[i + 1].start < end:
            end = rows[i + 1].start
        branches = ", ".join(f"{name} {label}" for name, label in
                             (("audio", row.audio_label), ("visual", row.visual_label)) if label)
        out += [str(i + 1), f"{_timestamp(row.start)} --> {_timestamp(max(end, row.start))}",
                f"{row.label} ({row.confidence:.0%})" + (f" [{branches}]" if branches else ""),
                ""]
    return "\n".join(out)


def audacity_text(rows: list[SegmentRow]) -> str:
    """An Audacity label track: ``start<TAB>end<TAB>label`` per segment."""
    return "".join(f"{r.start:.6f}\t{r.end:.6f}\t{r.label} {r.confidence:.2f}\n" for r in rows)


def write_vtt(path: str | Path, rows: list[SegmentRow]) -> Path:
    """Write :func:`vtt_text` atomically; returns the path."""
    with atomic_write(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(vtt_text(rows))
    return Path(path)


def write_audacity(path: str | Path, rows: list[SegmentRow]) -> Path:
    """Write :func:`audacity_text` atomically; returns the path."""
    with atomic_write(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(audacity_text(rows))
    return Path(path)
