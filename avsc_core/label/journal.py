"""The files a labelling run is working on, on disk, so a file that kills it is not retried.

A file can take the whole process down, beyond any ``except``: a decoder bug that crashes
FFmpeg, the out-of-memory killer, a SIGKILL. Without a record, every ``--resume`` would
meet that file first and die again. So before the process works on a file it names it in
a journal beside the CSV (``.labels.csv.inprogress``, JSON, written atomically), and takes
it out once the file's row is on disk. A journal left behind therefore names the files
the process was working on when it died; the next run writes them as failed rows
(:data:`DIED_REASON`) instead of reading them again.

A run that stops in an orderly way (Ctrl-C, cancel, an error) clears the journal: its
files in progress were not at fault and are labelled again on ``--resume``.
"""

from __future__ import annotations

import json
from pathlib import Path

from avsc_core.atomic import write_json

DIED_REASON = ("the labelling process died while working on this file on an earlier run; "
               "not retried (delete this row and resume to try it again)")


def journal_path(out_csv: str | Path) -> Path:
    """The journal of ``out_csv``: ``.<name>.inprogress`` in the same folder."""
    out_csv = Path(out_csv)
    return out_csv.with_name(f".{out_csv.name}.inprogress")


def files_in_progress(out_csv: Path) -> list[str]:
    """The files (CSV paths) an earlier run on ``out_csv`` was working on when it died."""
    try:
        data = json.loads(journal_path(out_csv).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict) or data.get("labels") != out_csv.name:
        return []
    files = data.get("files")
    return [f for f in files if isinstance(f, str)] if isinstance(files, list) else []


class InProgressJournal:
    """The set of files this run is working on, kept on disk as it changes."""

    def __init__(self, out_csv: Path):
        self.path = journal_path(out_csv)
        self.labels = out_csv.name
        self._files: list[str] = []

    def begin(self, file: str) -> None:
        """Note ``file`` before any work on it starts (on disk when this returns)."""
        if file not in self._files:
            self._files.append(file)
            self._save()

    def end(self, file: str) -> None:
        """``file``'s row is on disk: it no longer needs the journal."""
        if file in self._files:
            self._files.remove(file)
            self._save()

    def clear(self) -> None:
        """Forget every file, this run's and any an earlier run left behind."""
        self._files = []
        self._save()

    def _save(self) -> None:
        if self._files:
            write_json(self.path, {"labels": self.labels, "files": self._files})
        else:
            self.path.unlink(missing_ok=True)
