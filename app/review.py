"""Reviewing a labels CSV: the queue a person works through, their decisions, the exports.
No Qt here.

:class:`ReviewQueue` holds the rows of a labels CSV (``avsc label``'s output, see
:mod:`avsc_core.label.csv_out`) in the order they are shown: by default the files most in
need of a look first (those with reasons, more reasons first, then lower confidence; then
the rest, least confident first; failed files last), filtered by label, reason and state.
A decision sets a row's ``reviewed_label`` and rewrites the whole CSV atomically at once,
so a crash never loses one; while the queue is open it holds
:class:`~avsc_core.locks.OutputLock` on the CSV, so ``avsc label`` cannot write the file
under the person's hands (nor can the queue open a CSV a run is writing).

Rows are identified by their index in the CSV (``index``); the rows shown, in order, are
:attr:`ReviewQueue.view` (a ``position`` is an index into it).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avsc_core.errors import AvscError
from avsc_core.inference.review import REASONS, SEPARATOR
from avsc_core.label.csv_out import LabelRow, read_rows, write_rows
from avsc_core.locks import OutputBusyError, OutputLock, describe_holder

log = logging.getLogger(__name__)

ALL, TO_REVIEW, REVIEWED = "all", "to review", "reviewed"
STATES = (ALL, TO_REVIEW, REVIEWED)
ANY_REASON, NO_REASON = "any reason", "no reason"
# What the reason filter offers besides "all rows" (None).
REASON_FILTERS = (ANY_REASON, *REASONS, NO_REASON)
# (key, title) of each column: ``key`` is a LabelRow field.
COLUMNS = (
    ("file", "file"),
    ("label", "label"),
    ("confidence", "confidence"),
    ("reviewed_label", "reviewed"),
    ("needs_review", "needs review"),
    ("audio_label", "audio"),
    ("visual_label", "visual"),
    ("error", "error"),
)
COLUMN_KEYS = tuple(key for key, _ in COLUMNS)
# Sorting by this column is the queue's order: the files most in need first.
NEED = "needs_review"
# Classes the number keys 1..9 pick.
KEYED_CLASSES = 9
DEFAULT_THRESHOLD = 0.9
PRECISION = 0.95


def row_reasons(row: LabelRow) -> list[str]:
    """The reasons of ``row``'s ``needs_review`` cell, as a list."""
    return [r.strip() for r in row.needs_review.split(SEPARATOR) if r.strip()]


def can_review(row: LabelRow) -> bool:
    """A failed file has no answer to check (and ``avsc adapt`` could not read it)."""
    return not row.error and bool(row.label)


def reviewed(row: LabelRow) -> bool:
    """Someone has decided ``row``'s label (a failed file's row never counts)."""
    return can_review(row) and bool(row.reviewed_label)


def to_review(row: LabelRow) -> bool:
    return can_review(row) and not row.reviewed_label


def need_key(row: LabelRow, index: int) -> tuple[int, int, float, int]:
    """Sort key of the queue's order: files with reasons (more first, then the less
    confident), then the rest (less confident first), then the failed ones; CSV order
    breaks ties."""
    if not can_review(row):
        return (2, 0, 0.0, index)
    reasons = len(row_reasons(row))
    confidence = row.confidence if row.confidence is not None else 0.0
    return (0 if reasons else 1, -reasons, confidence, index)


def export_rows(rows: list[LabelRow], threshold: float | None = None) -> list[LabelRow]:
    """The rows worth keeping, in CSV order: those a person reviewed and, with
    ``threshold``, those not reviewed that the model is sure of (confidence at or above
    ``threshold`` and no reason to look).

    The unreviewed rows keep an empty ``reviewed_label``: nobody checked them. The label
    to use is ``reviewed_label`` where there is one, else ``label``.
    """
    def kept(row: LabelRow) -> bool:
        if not can_review(row):
            return False
        if row.reviewed_label:
            return True
        return (threshold is not None and row.confidence is not None
                and row.confidence >= threshold and not row_reasons(row))

    return [row for row in rows if kept(row)]


@dataclass(frozen=True)
class LabelsSource:
    """Where a labels CSV came from: what the review needs besides its rows.

    Attributes
    ----------
    folder : Path
        Where its files are (their names are relative to it).
    model : str or None
        The model that labelled it, if that folder is still there, else the app's model.
    classes : tuple of str
        The model's classes in its order (the number keys follow it); without a known
        model, the labels the CSV has, sorted.
    min_confidence : float or None
        The ``--min-confidence`` the labelling run flagged answers under.
    """

    folder: Path
    model: str | None
    classes: tuple[str, ...]
    min_confidence: float | None


def labels_source(csv: Path, rows: list[LabelRow], model: str | None = None) -> LabelsSource:
    """Read ``csv``'s parameters file (``avsc label`` writes it beside the CSV).

    Parameters
    ----------
    csv : Path
    rows : list of LabelRow
        Its rows, for the classes when no model is known.
    model : str, optional
        The app's current model, used when the parameters name none that exists.
    """
    from avsc_core.bundle import read_manifest
    from avsc_core.label.params import params_folder, previous_params

    params = previous_params(csv) or {}
    folder = params_folder(csv, params) or csv.parent  # as avsc adapt reads it
    recorded = params.get("model")
    if isinstance(recorded, str) and (Path(recorded) / "manifest.json").is_file():
        model = recorded
    classes: list[str] = [c for c in params.get("classes") or [] if isinstance(c, str)]
    if not classes and model:
        try:
            classes = list(read_manifest(model)["classes"])
        except AvscError as exc:
            log.warning("cannot read the classes of %s: %s", model, exc)
    labels = {r.label for r in rows if r.label} | {r.reviewed_label for r in rows
                                                    if r.reviewed_label}
    # Without a known model the labels the CSV has are all there is to pick; a label the
    # model does not know (a hand-edited CSV) comes after its classes.
    classes += sorted(labels - set(classes))
    minimum = params.get("min_confidence")
    return LabelsSource(folder, model, tuple(classes),
                        float(minimum) if isinstance(minimum, (int, float)) else None)


class ReviewQueue:
    """The rows of a labels CSV under review, with their order, filters and decisions.

    Open one with :meth:`open` (which takes the CSV's lock) and :meth:`close` it when
    done.

    Parameters
    ----------
    csv : Path
        The labels CSV; every decision rewrites it.
    rows : list of LabelRow
        Its rows, in CSV order.
    source : LabelsSource
        Its folder, model and classes.
    lock : OutputLock, optional
        Held on ``csv`` while the queue is open; released by :meth:`close`.

    Attributes
    ----------
    label, reason : str or None
        Filters: only rows the model labelled ``label``; only rows with ``reason`` (one of
        :data:`REASON_FILTERS`). ``None`` keeps all.
    state : str
        One of :data:`STATES`: rows still to review, those reviewed, or all.
    sort_key : str
        The column (a key of :data:`COLUMNS`) the rows are sorted by.
    descending : bool
    view : list of int
        Indices of the rows shown, in order.
    """

    def __init__(self, csv: Path, rows: list[LabelRow], source: LabelsSource,
                 lock: OutputLock | None = None):
        self.csv = csv
        self.rows = rows
        self.source = source
        self._lock = lock
        self.label: str | None = None
        self.reason: str | None = None
        self.state = ALL
        self.sort_key = NEED
        self.descending = False
        self.view: list[int] = []
        self._order: list[int] = []
        self.refresh()

    @classmethod
    def open(cls, csv: str | Path, model: str | None = None) -> ReviewQueue:
        """Take the lock on ``csv`` and read it.

        Parameters
        ----------
        csv : str or Path
            A labels CSV.
        model : str, optional
            The app's current model (see :func:`labels_source`).

        Raises
        ------
        OutputBusyError
            A labelling run (or another review) is writing ``csv``.
        AvscError
            ``csv`` is missing, unreadable or not a labels CSV.
        """
        path = Path(csv).resolve()
        if not path.is_file():
            raise AvscError(f"{path}: no such labels CSV")
        lock = OutputLock(path)
        try:
            lock.acquire()
        except OutputBusyError:
            raise OutputBusyError(
                f"{path}: is being written by {describe_holder(lock.path)}; review it once "
                "that run has finished") from None
        try:
            rows = read_rows(path)
        except OSError as exc:
            lock.release()
            raise AvscError(f"{path}: cannot read it ({exc.strerror or exc})") from None
        except BaseException:
            lock.release()
            raise
        return cls(path, rows, labels_source(path, rows, model), lock)

    def close(self) -> None:
        """Release the CSV (a labelling run may write it again)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # ----- order and filters --------------------------------------------------------
    def _column_key(self) -> Callable[[int], Any]:
        rows, key = self.rows, self.sort_key
        if key == "confidence":
            return lambda i: (rows[i].confidence is None, rows[i].confidence or 0.0)
        return lambda i: getattr(rows[i], key).casefold()

    def shown(self, row: LabelRow) -> bool:
        """Whether ``row`` passes the filters."""
        if self.state == TO_REVIEW and not to_review(row):
            return False
        if self.state == REVIEWED and not reviewed(row):
            return False
        if self.label is not None and row.label != self.label:
            return False
        if self.reason is None:
            return True
        reasons = row_reasons(row)
        if self.reason == ANY_REASON:
            return bool(reasons)
        if self.reason == NO_REASON:
            return can_review(row) and not reasons
        return self.reason in reasons

    def refresh(self) -> None:
        """Sort and filter again (after a decision or a change of the settings)."""
        rows = self.rows
        order = sorted(range(len(rows)), key=lambda i: need_key(rows[i], i))
        if self.sort_key == NEED:
            self._order = order[::-1] if self.descending else order
        else:
            # A stable sort, also in reverse: rows that tie stay most in need first.
            self._order = sorted(order, key=self._column_key(), reverse=self.descending)
        self.view = [i for i in self._order if self.shown(self.rows[i])]

    def set_filters(self, *, label: str | None = None, reason: str | None = None,
                    state: str = ALL) -> None:
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {state!r}")
        if reason is not None and reason not in REASON_FILTERS:
            raise ValueError(f"reason must be one of {REASON_FILTERS}, got {reason!r}")
        self.label, self.reason, self.state = label, reason, state
        self.refresh()

    def sort(self, key: str, descending: bool = False) -> None:
        if key not in COLUMN_KEYS:
            raise ValueError(f"no column {key!r}")
        self.sort_key, self.descending = key, descending
        self.refresh()

    def position(self, index: int | None) -> int | None:
        """Where row ``index`` is shown (``None``: filtered out)."""
        try:
            return self.view.index(index)
        except ValueError:
            return None

    def index_of(self, file: str) -> int | None:
        return next((i for i, row in enumerate(self.rows) if row.file == file), None)

    def next_to_review(self, after: int | None = None) -> int | None:
        """The first row still to review that is shown after row ``after`` in the order,
        going round to the top; ``None`` when no shown row is left to review.

        ``after`` need not be shown itself (a filter of rows to review drops it once
        decided): its place in the unfiltered order counts.
        """
        start = 0 if after is None or after not in self._order else self._order.index(after) + 1
        for index in self._order[start:] + self._order[:start]:
            if index != after and to_review(self.rows[index]) and self.shown(self.rows[index]):
                return index
        return None

    # ----- what is shown ------------------------------------------------------------
    def cell(self, index: int, key: str) -> str:
        """Row ``index``'s ``key`` column as the table shows it."""
        row = self.rows[index]
        if key == "confidence":
            return "" if row.confidence is None else f"{row.confidence:.2f}"
        if key == "file":
            return row.file
        if key == "needs_review":
            return ", ".join(row_reasons(row))
        return getattr(row, key).replace("_", " ")

    def counts(self) -> dict[str, int]:
        """Rows ``to review``, ``reviewed``, ``failed``, ``shown`` and ``total``."""
        return {
            TO_REVIEW: sum(to_review(r) for r in self.rows),
            REVIEWED: sum(reviewed(r) for r in self.rows),
            "failed": sum(not can_review(r) for r in self.rows),
            "shown": len(self.view),
            "total": len(self.rows),
        }

    def media_path(self, index: int) -> Path:
        return self.source.folder / self.rows[index].file

    @property
    def classes(self) -> tuple[str, ...]:
        return self.source.classes

    def keyed_class(self, number: int) -> str | None:
        """The class number key ``number`` (1..9) picks, in the model's class order."""
        if 1 <= number <= min(KEYED_CLASSES, len(self.classes)):
            return self.classes[number - 1]
        return None

    # ----- decisions ----------------------------------------------------------------
    def decide(self, index: int, label: str) -> None:
        """Set row ``index``'s ``reviewed_label`` to ``label`` (``""``: undecided again)
        and rewrite the CSV atomically before returning.

        Raises
        ------
        AvscError
            The row is a failed file, or the CSV cannot be written (the decision is then
            not kept in memory either).
        ValueError
            ``label`` is not one of the classes.
        """
        row = self.rows[index]
        if not can_review(row):
            raise AvscError(f"{row.file}: could not be labelled ({row.error}); there is no "
                            "answer to review")
        if label and label not in self.classes:
            raise ValueError(f"{label!r} is not one of the classes {self.classes}")
        self.rows[index] = dataclasses.replace(row, reviewed_label=label)
        try:
            write_rows(self.csv, self.rows)
        except OSError as exc:
            self.rows[index] = row
            raise AvscError(f"{self.csv}: cannot save the decision "
                            f"({exc.strerror or exc})") from None
        self.refresh()

    def accept(self, index: int) -> None:
        """The model was right: ``reviewed_label := label``."""
        self.decide(index, self.rows[index].label)

    # ----- evidence and exports -----------------------------------------------------
    def evidence(self) -> tuple[list[float], list[bool]]:
        """Confidence of each reviewed answer, and whether the person confirmed it."""
        decided = [r for r in self.rows if reviewed(r) and r.confidence is not None]
        return ([float(r.confidence) for r in decided],
                [r.reviewed_label == r.label for r in decided])

    def export(self, path: str | Path, threshold: float | None = None) -> int:
        """Write :func:`export_rows` to ``path`` atomically; returns how many rows.

        A parameters file goes beside it (the labelling run's, naming the new CSV), so
        ``avsc adapt`` and the review find the files and the model of the export too.

        Raises
        ------
        OutputBusyError
            ``path`` is being written by a labelling run.
        AvscError
            ``path`` is the CSV under review, or its parameters file belongs to another
            CSV; or it cannot be written.
        """
        from avsc_core.label.params import check_params_owner, previous_params, write_params

        target = Path(path).resolve()
        if target == self.csv:
            raise AvscError(f"{target}: is the CSV under review; export to another file")
        rows = export_rows(self.rows, threshold)
        params = previous_params(self.csv)
        try:
            with OutputLock(target):
                check_params_owner(target)
                write_rows(target, rows)
                if params is not None:
                    write_params(target, {
                        **params, "labels": target.name,
                        "exported": {"from": str(self.csv), "threshold": threshold,
                                     "rows": len(rows)},
                    })
        except OSError as exc:
            raise AvscError(f"{target}: cannot write it ({exc.strerror or exc})") from None
        return len(rows)
