"""The ``csv`` layout: a CSV with header ``path,label[,split]``.

Paths are relative to the CSV's folder (absolute paths are allowed; ``\\`` counts as
``/``). Extra columns are ignored. Comma, semicolon and tab separators are recognised from the header.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from avsc_core.datasets.splits import resolve_splits
from avsc_core.datasets.types import SPLITS, Clip, Dataset
from avsc_core.errors import AvscError

# How many missing files are named in the error before the rest are only counted.
_NAMED_MISSING = 5


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The lower-cased header and the non-blank rows with their line numbers."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AvscError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise AvscError(f"{path}: cannot read ({exc.strerror})") from exc
    first = text.splitlines()[0] if text.strip() else ""
    if not first:
        raise AvscError(f"{path}: empty file; expected a header line 'path,label[,split]'")
    # The separator most used in the header wins; a header has no quoted cells.
    delimiter = max(",;\t", key=first.count)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = [name.strip().lower() for name in next(reader)]
    rows = []
    for row in reader:
        if any(cell.strip() for cell in row):
            rows.append((reader.line_num, row))
    return header, rows


def load_csv(
    csv_path: Path, val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0
) -> Dataset:
    """Read a ``csv`` dataset.

    A ``split`` column decides the splits (a missing ``val`` part is carved from
    ``train``); without it the clips are split with the seeded stratified rule.

    Raises
    ------
    AvscError
        Naming the file and line: a missing column, an empty cell, an unknown split
        value, a file listed twice, or every listed file that does not exist.
    """
    header, rows = _read_rows(csv_path)
    for column in ("path", "label"):
        if column not in header:
            raise AvscError(
                f"{csv_path}:1: missing column '{column}' "
                f"(the header must be path,label[,split]; found {','.join(header)})"
            )
    col_path, col_label = header.index("path"), header.index("label")
    col_split = header.index("split") if "split" in header else None
    base = csv_path.parent
    clips: list[Clip] = []
    missing: list[str] = []
    seen: dict[Path, int] = {}
    for line, row in rows:
        row = row + [""] * (len(header) - len(row))
        text, label = row[col_path].strip(), row[col_label].strip()
        if not text or not label:
            empty = "path" if not text else "label"
            raise AvscError(f"{csv_path}:{line}: empty {empty}")
        split = "train"
        if col_split is not None:
            split = row[col_split].strip().lower()
            if split not in SPLITS:
                raise AvscError(
                    f"{csv_path}:{line}: unknown split {row[col_split].strip()!r}; "
                    f"expected one of {', '.join(SPLITS)}"
                )
        # Lists written on Windows use backslashes, which work as "/" everywhere.
        media = base / text.replace("\\", "/")
        if media in seen:
            raise AvscError(f"{csv_path}:{line}: {text} is already listed on line {seen[media]}")
        seen[media] = line
        if not os.path.isfile(media):  # False, not OSError, for a name too long to exist
            missing.append(f"line {line}: {text}")
            continue
        group = media.relative_to(base).as_posix() if media.is_relative_to(base) else str(media)
        clips.append(Clip.from_media(media, label, split, group))
    if missing:
        named = "; ".join(missing[:_NAMED_MISSING])
        more = (
            f"; and {len(missing) - _NAMED_MISSING} more" if len(missing) > _NAMED_MISSING else ""
        )
        raise AvscError(f"{csv_path}: {len(missing)} listed file(s) do not exist: {named}{more}")
    if not clips:
        raise AvscError(f"{csv_path}: no rows below the header")
    decided = col_split is not None
    if decided and not any(clip.split == "train" for clip in clips):
        raise AvscError(f"{csv_path}: the split column marks no clip as 'train'")
    classes = sorted({clip.label for clip in clips})
    clips, warnings = resolve_splits(clips, classes, decided, val_fraction, test_fraction, seed)
    return Dataset(csv_path, "csv", classes, clips, warnings)
