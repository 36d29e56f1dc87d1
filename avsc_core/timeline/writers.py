"""Writers of per-segment answers: CSV rows, WebVTT captions, Audacity label tracks."""

from __future__ import annotations

import collections
import csv
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from avsc_core.atomic import atomic_write

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


def _best(probs: dict[str, float] | None) -> tuple[str, float]:
    if not probs:
        return "", 0.0
    label = max(probs, key=probs.get)
    return label, float(probs[label])


def segment_rows(answer: dict[str, Any], file: str | None = None) -> list[SegmentRow]:
    """The rows of one file's answer, in time order.

    Parameters
    ----------
    answer : dict
        The contract's JSON object of a file (:meth:`ClassifyResult.to_dict`, which is
        also what the app receives from its worker).
    file : str, optional
        The name to put in the ``file`` column (default: ``answer["file"]``); ``label``
        writes paths relative to the labelled folder.
    """
    rows = []
    duration = float(answer.get("duration") or 0.0)
    for segment in answer["segments"]:
        branches = segment["branches"]
        label, confidence = _best(branches.get("fused"))
        if not label:
            continue
        start = float(segment["start"])
        end = max(start, min(float(segment["end"]), max(duration, start)))
        rows.append(SegmentRow(file or answer["file"], start, end, label, confidence,
                               _best(branches.get("audio"))[0], _best(branches.get("visual"))[0]))
    return rows


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


def sidecar_names(files: Sequence[str | Path], flat: bool) -> dict[str, str]:
    """The name, without its suffix, that each of ``files`` gives its sidecars
    (``--vtt DIR`` writes ``DIR/<name>.vtt``), no two alike.

    ``flat`` (``classify``, given paths anywhere): the file's stem, so ``clip.mp4`` writes
    ``DIR/clip.vtt`` whatever folders its path was typed with; files sharing a stem take
    their paths from the folder they have in common (``day1/clip``, ``day2/clip``).
    Otherwise (``label``, files relative to the labelled folder): the path without its
    extension, subfolders kept. Files still alike (``clip.mp4`` and ``clip.wav`` side by
    side) keep their extension (``clip.mp4``, ``clip.wav``).
    """
    files = list(dict.fromkeys(str(f) for f in files))
    where = {f: os.path.abspath(f) for f in files}  # one file typed twice: one name
    names = {f: PurePath(f).stem if flat else PurePath(f).with_suffix("").as_posix()
             for f in files}

    def clashing() -> list[list[str]]:
        groups: dict[str, list[str]] = collections.defaultdict(list)
        for f in files:
            groups[names[f]].append(f)
        return [g for g in groups.values() if len({where[f] for f in g}) > 1]

    if flat:
        for alike in clashing():
            root = os.path.commonpath([where[f] for f in alike])
            for f in alike:
                names[f] = PurePath(os.path.relpath(where[f], root)).with_suffix("").as_posix()
    for alike in clashing():
        for f in alike:
            names[f] += PurePath(f).suffix
    return names


def sidecar_path(folder: str | Path, name: str, suffix: str) -> Path:
    """``folder/<name><suffix>`` (``name`` from :func:`sidecar_names`), never outside
    ``folder``."""
    relative = PurePath(name)
    if relative.is_absolute() or ".." in relative.parts:
        relative = PurePath(relative.name)
    return Path(folder) / f"{relative.as_posix()}{suffix}"


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


# What each file type the app offers holds, by suffix.
FORMATS = {".csv": "Segments CSV", ".vtt": "WebVTT captions", ".txt": "Audacity label track"}


def write_timeline(path: str | Path, answer: dict[str, Any]) -> Path:
    """Write one file's answers over time in the format ``path``'s suffix names
    (:data:`FORMATS`).

    Raises
    ------
    ValueError
        For a suffix not in :data:`FORMATS`.
    """
    path = Path(path)
    rows = segment_rows(answer)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(_csv_line(SEGMENT_HEADER))
            handle.writelines(_csv_line(r.cells()) for r in rows)
        return path
    if suffix == ".vtt":
        return write_vtt(path, rows)
    if suffix == ".txt":
        return write_audacity(path, rows)
    raise ValueError(f"{path}: unknown timeline format; use one of {', '.join(FORMATS)}")
