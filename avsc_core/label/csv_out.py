"""The labels CSV: one row per file, appended durably, recovered after a crash.

While labelling, each row is appended and flushed to disk (``fsync``) before the next file
starts, so the CSV itself is the journal of finished files: after Ctrl-C, a kill or a power
cut it holds every finished row, at worst followed by one partly written line. Recovery
drops that line and rewrites the file atomically (temporary file + ``os.replace``). When a
run completes, the rows are rewritten in file order, atomically as well.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from avsc_core.atomic import atomic_write
from avsc_core.errors import AvscError

# The contract's columns, then what review adds: why a file needs a person's look (reasons
# joined by ";") and the label that person gave. CSVs written before the review columns
# (CONTRACT_HEADER only) are still read, and rewritten with both when continued.
CONTRACT_HEADER = ("file", "label", "confidence", "audio_label", "visual_label", "error")
REVIEW_COLUMNS = ("needs_review", "reviewed_label")
HEADER = CONTRACT_HEADER + REVIEW_COLUMNS


@dataclass(frozen=True)
class LabelRow:
    """One file's line of the labels CSV.

    ``file`` is relative to the labelled folder (``/``-separated). A file that failed has
    an empty ``label`` and the reason in ``error``; ``audio_label``/``visual_label`` are
    empty for a branch that could not run. ``needs_review`` holds the reasons a person
    should check the answer (:func:`avsc_core.inference.review.review_reasons`, joined by
    ``;``); ``reviewed_label`` is empty until someone has.
    """

    file: str
    label: str = ""
    confidence: float | None = None
    audio_label: str = ""
    visual_label: str = ""
    error: str = ""
    needs_review: str = ""
    reviewed_label: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    def cells(self) -> list[str]:
        confidence = "" if self.confidence is None else f"{self.confidence:.4f}"
        return [self.file, self.label, confidence, self.audio_label, self.visual_label,
                self.error, self.needs_review, self.reviewed_label]

    @classmethod
    def from_cells(cls, cells: list[str]) -> LabelRow:
        """A row from the cells of either header (:data:`HEADER` or the older
        :data:`CONTRACT_HEADER`).

        Raises
        ------
        ValueError
            Another number of cells, or a confidence that is not a number.
        """
        if len(cells) == len(CONTRACT_HEADER):
            cells = [*cells, "", ""]
        file, label, confidence, audio, visual, error, review, reviewed = cells
        return cls(file, label, float(confidence) if confidence else None, audio, visual, error,
                   review, reviewed)


def _writer(handle: IO[str]) -> Any:
    return csv.writer(handle, lineterminator="\n")


def _encode(row: LabelRow) -> str:
    buffer = io.StringIO()
    _writer(buffer).writerow(row.cells())
    return buffer.getvalue()


def read_rows(path: str | Path) -> list[LabelRow]:
    """The complete rows of a labels CSV, without a trailing partly written line.

    Raises
    ------
    AvscError
        The file is not a labels CSV (another header).
    """
    path = Path(path)
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        header = handle.readline(len(",".join(HEADER)) + 2)
        if header and header.rstrip("\r\n") not in (",".join(HEADER), ",".join(CONTRACT_HEADER)):
            raise AvscError(f"{path}: not a labels CSV (its header is not {','.join(HEADER)})")
        # A crash can leave the unwritten tail of a file as zero bytes.
        text = handle.read().replace("\x00", "")
    body = list(csv.reader(io.StringIO(text, newline="")))
    if body and not text.endswith("\n"):
        body = body[:-1]  # interrupted while writing this line
    rows = []
    for cells in body:
        try:
            rows.append(LabelRow.from_cells(cells))
        except ValueError:
            continue  # a damaged line: its file is labelled again
    return rows


def write_rows(path: str | Path, rows: Iterable[LabelRow]) -> None:
    """Write a complete labels CSV atomically."""
    with atomic_write(path, "w", encoding="utf-8", errors="surrogateescape", newline="") as handle:
        writer = _writer(handle)
        writer.writerow(HEADER)
        for row in rows:
            writer.writerow(row.cells())


class RowAppender:
    """Appends rows to a labels CSV, each one on disk before :meth:`append` returns."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        # Kept open across rows: closed by close(). Undecodable file-name bytes (Linux)
        # round-trip through surrogate escapes, so --resume recognises those files.
        self._handle: IO[str] = open(  # noqa: SIM115
            self.path, "a", encoding="utf-8", errors="surrogateescape", newline=""
        )

    def append(self, row: LabelRow) -> None:
        # One write per row: a kill leaves whole rows, and at worst a power cut one
        # partial line, which read_rows drops.
        self._handle.write(_encode(row))
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()
