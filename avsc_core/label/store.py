"""Where a labelling run's rows go: a CSV, or a Parquet table with the same columns.

Rows are always appended to a CSV as files finish (:class:`~avsc_core.label.csv_out.RowAppender`,
each row on disk before the next file starts), because a Parquet file cannot grow row by
row and survive a crash: without its footer it is unreadable. So for ``--format csv`` the
CSV is the output itself; for ``--format parquet`` it is a hidden ``.<name>.rows.csv``
beside ``<name>.parquet``, and the table is written from it, atomically, when the run ends
or stops in an orderly way (Ctrl-C, cancel, an error); the rows file is then removed.
After a crash both may exist: ``--resume`` reads the table and then the rows file.

The Parquet columns are those of the CSV, in the same order: ``confidence`` a float64
(null for a failed file), the others strings, holding the very values the CSV would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from avsc_core.atomic import atomic_write
from avsc_core.errors import AvscError
from avsc_core.label.csv_out import (
    CONTRACT_HEADER,
    HEADER,
    LabelRow,
    RowAppender,
    read_rows,
    write_rows,
)

FORMATS = ("csv", "parquet")
_INSTALL = "pip install 'avsc[cluster]'"


def resolve_format(out: str | Path, format: str | None = None) -> str:
    """The format of ``out``: ``format`` if given, else from its suffix (``.parquet``).

    Raises
    ------
    AvscError
        An unknown format, or one that contradicts the suffix (``labels.csv`` as Parquet).
    """
    out = Path(out)
    by_suffix = "parquet" if out.suffix.lower() == ".parquet" else "csv"
    if format is None:
        return by_suffix
    if format not in FORMATS:
        raise AvscError(f"--format {format}: use one of {', '.join(FORMATS)}")
    if format != by_suffix and out.suffix.lower() in (".csv", ".parquet"):
        raise AvscError(f"{out}: --format {format} does not match its suffix; "
                        f"name it {out.stem}.{format}")
    return format


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise AvscError(f"--format parquet needs pyarrow, which is not installed: "
                        f"{_INSTALL}") from None
    return pa, pq


def write_parquet(path: str | Path, rows: list[LabelRow]) -> None:
    """Write ``rows`` as a Parquet table with the labels CSV's columns, atomically."""
    pa, pq = _pyarrow()
    cells = [row.cells() for row in rows]
    columns = {}
    for i, name in enumerate(HEADER):
        values = [c[i] for c in cells]
        if name == "confidence":
            columns[name] = pa.array([float(v) if v else None for v in values], pa.float64())
        else:
            columns[name] = pa.array(values, pa.string())
    table = pa.table(columns)
    with atomic_write(path, "wb") as handle:
        pq.write_table(table, handle)


def read_parquet(path: str | Path) -> list[LabelRow]:
    """The rows of a labels table written by :func:`write_parquet`.

    Raises
    ------
    AvscError
        The file is not a Parquet labels table.
    """
    pa, pq = _pyarrow()
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise AvscError(f"{path}: not a readable Parquet file ({exc})") from None
    columns = tuple(table.column_names)
    if columns not in (HEADER, CONTRACT_HEADER):
        raise AvscError(f"{path}: not a labels table (its columns are not {','.join(HEADER)})")
    return [
        LabelRow.from_cells(["" if record[n] is None else str(record[n]) for n in columns])
        for record in table.to_pylist()
    ]


def read_labels(path: str | Path) -> list[LabelRow]:
    """The rows of a finished labels CSV or Parquet table (by its suffix)."""
    path = Path(path)
    return read_parquet(path) if resolve_format(path) == "parquet" else read_rows(path)


class LabelStore:
    """The output of one run: ``out`` in ``format``, and the CSV rows are appended to.

    Parameters
    ----------
    out : Path
        The ``--out`` file.
    format : str
        ``"csv"`` or ``"parquet"`` (see :func:`resolve_format`).
    """

    def __init__(self, out: Path, format: str):
        if format == "parquet":
            _pyarrow()  # refuse at once, not when the first run ends
        self.out = out
        self.format = format
        self.rows_csv = out if format == "csv" else out.with_name(f".{out.name}.rows.csv")

    def exists(self) -> bool:
        """Whether an earlier run left rows (a table, or rows not yet in one)."""
        return self.out.exists() or self.rows_csv.exists()

    def read(self) -> list[LabelRow]:
        """The rows an earlier run left, without a line cut short by a crash."""
        if self.format == "csv":
            return read_rows(self.out)
        rows: dict[str, LabelRow] = {}
        if self.out.exists():
            rows.update((r.file, r) for r in read_parquet(self.out))
        if self.rows_csv.exists():
            # Written after the table: these rows are the newer ones.
            rows.update((r.file, r) for r in read_rows(self.rows_csv))
        return list(rows.values())

    def start(self, rows: list[LabelRow]) -> None:
        """Begin the rows CSV with ``rows`` (none for a new run), atomically."""
        write_rows(self.rows_csv, rows)

    def appender(self) -> RowAppender:
        return RowAppender(self.rows_csv)

    def rows_written(self) -> list[LabelRow]:
        """Every row of this run's rows CSV so far."""
        return read_rows(self.rows_csv)

    def save(self, rows: list[LabelRow]) -> None:
        """Write the complete output with ``rows`` in this order, atomically."""
        if self.format == "csv":
            write_rows(self.out, rows)
            return
        write_parquet(self.out, rows)
        # Every row is in the table now; a crash before this line leaves both, which
        # read() reconciles.
        self.rows_csv.unlink(missing_ok=True)

    def stopped(self, rows: list[LabelRow]) -> None:
        """The run stopped before the end: make its finished ``rows`` readable in ``out``.

        The CSV already is (its rows are on disk as they finish); a table is written.
        """
        if self.format == "parquet":
            self.save(rows)
