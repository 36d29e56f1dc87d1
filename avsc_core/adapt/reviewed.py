"""The reviewed files of a labels CSV: the files a person checked, and the truth they gave.

``avsc label`` writes ``file,label,confidence,audio_label,visual_label,error``, then
``needs_review`` and ``reviewed_label``, which a person fills in for the files they
checked. Those rows (without an ``error``) are what ``avsc adapt`` learns from. Columns
are read by name, so a CSV that a spreadsheet saved with its columns moved, with columns
of its own or with a byte-order mark still reads; only ``file`` and ``reviewed_label``
are needed.

File names are relative to the labelled folder: the one given, else the ``folder`` the
CSV's parameters file records (``<stem>.params.json`` beside it, or a legacy
``params.json`` there whose ``labels`` names the CSV), else the CSV's own folder.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from avsc_core.datasets.types import counted
from avsc_core.errors import AvscError
from avsc_core.label.params import params_folder, previous_params

FILE = "file"
REVIEWED = "reviewed_label"
ERROR = "error"
# Missing files named in a refusal; the count says how many there are in all.
_NAMED = 3


@dataclass(frozen=True)
class ReviewedFile:
    """One reviewed row: ``file`` as the CSV names it, where it is, and its true class."""

    file: str
    path: Path
    label: str


@dataclass(frozen=True)
class Reviewed:
    """The reviewed files of ``csv``, found in ``folder``."""

    csv: Path
    folder: Path
    files: tuple[ReviewedFile, ...]

    @property
    def labels(self) -> Counter:
        """Files per reviewed class."""
        return Counter(f.label for f in self.files)


def read_reviewed(labels_csv: str | Path, folder: str | Path | None = None) -> Reviewed:
    """The rows of ``labels_csv`` with a ``reviewed_label``, except those with an ``error``.

    Parameters
    ----------
    labels_csv : str or Path
        A labels CSV written by ``avsc label`` and reviewed by a person.
    folder : str or Path, optional
        Where its files are (see the module docstring for the default).

    Raises
    ------
    AvscError
        The CSV cannot be read, has no ``file`` column, no reviewed row, or gives one file
        two reviewed labels.
    """
    path = Path(labels_csv)
    labels = _reviewed_labels(path)
    base = Path(folder) if folder is not None else recorded_folder(path) or path.parent
    files = tuple(ReviewedFile(name, base / name, label) for name, label in labels.items())
    return Reviewed(path, base, files)


def check_reviewed(reviewed: Reviewed, classes: list[str]) -> None:
    """Refuse reviewed labels the model cannot learn and files that are not there.

    Raises
    ------
    AvscError
        One line naming the CSV: the unknown classes, or the missing files.
    """
    unknown = sorted(set(reviewed.labels) - set(classes))
    if unknown:
        raise AvscError(
            f"{reviewed.csv}: reviewed labels name classes the model does not know: "
            f"{', '.join(unknown)} (it knows {', '.join(classes)})"
        )
    # os.path.isfile: False, not OSError, for a name too long to exist.
    missing = [f.file for f in reviewed.files if not os.path.isfile(f.path)]
    if missing:
        named = ", ".join(missing[:_NAMED]) + (", ..." if len(missing) > _NAMED else "")
        raise AvscError(
            f"{reviewed.csv}: {counted(len(missing), 'reviewed file')} not found in "
            f"{reviewed.folder} ({named}); give the media folder with --folder"
        )


def recorded_folder(labels_csv: Path) -> Path | None:
    """The labelled folder the parameters file of ``labels_csv`` records, if any
    (:func:`~avsc_core.label.params.params_folder`)."""
    return params_folder(labels_csv, previous_params(labels_csv))


def _cell(row: dict[str | None, str | list[str] | None], column: str) -> str:
    value = row.get(column)
    return value.strip() if isinstance(value, str) else ""


def _read_rows(path: Path) -> list[dict]:
    try:
        # utf-8-sig: a spreadsheet may have added a byte-order mark; surrogate escapes
        # keep undecodable file-name bytes as avsc label wrote them.
        with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
            reader = csv.DictReader(handle)
            if FILE not in (reader.fieldnames or []):
                raise AvscError(f"{path}: not a labels CSV (no '{FILE}' column in its header)")
            return list(reader)
    except FileNotFoundError:
        raise AvscError(f"{path}: no such labels CSV") from None
    except IsADirectoryError:
        raise AvscError(f"{path}: is a folder; give the labels CSV") from None
    except OSError as exc:
        raise AvscError(f"{path}: cannot read the labels CSV ({exc.strerror})") from None
    except csv.Error as exc:
        raise AvscError(f"{path}: not a readable CSV ({exc})") from None


def _reviewed_labels(path: Path) -> dict[str, str]:
    """``{file: reviewed label}`` in CSV order."""
    labels: dict[str, str] = {}
    for row in _read_rows(path):
        file, label = _cell(row, FILE), _cell(row, REVIEWED)
        if not file or not label or _cell(row, ERROR):
            continue
        if labels.setdefault(file, label) != label:
            raise AvscError(f"{path}: {file} is reviewed twice, as {labels[file]} and as {label}")
    if not labels:
        raise AvscError(f"{path}: no reviewed rows (fill in the {REVIEWED} column for the "
                        "files a person checked)")
    return labels
