"""A persistent index of content keys: file path, size and mtime -> the hash of its bytes.

The cache finds a file's entries by a hash of its content, which means reading every file
(100 GB for TAU 2021) before anything else can happen. The index remembers each file's
key with the size and modification time it had when hashed, so a later run over unchanged
files finds their entries with one ``stat`` each; a file whose size or mtime changed is
hashed again.

It is an SQLite database in the cache folder: every write is its own transaction, so
several preparation processes share it and a process killed at any moment leaves it as it
was after its last completed write. Any trouble with it (a read-only folder, a damaged
file) only costs speed: lookups then hash, as without an index.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

INDEX_NAME = "index.sqlite"
# A file written this soon before it was hashed may be written again within the same
# timestamp tick (2 s on FAT, coarser on some network file systems) without its mtime
# showing it, so such an entry is not trusted: the file is hashed again, and trusted once
# it has been hashed this long after its last change (git's "racy clean" rule).
RACY_NS = 2_000_000_000
# Preparation processes wait for each other's (millisecond) writes rather than fail.
_BUSY_SECONDS = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS content_keys (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hashed_ns INTEGER NOT NULL,
    key TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class FileStamp:
    """What identifies a file's version without reading it: absolute path, size, mtime."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | Path) -> FileStamp:
        stat = os.stat(path)
        return cls(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


class KeyIndex:
    """The index file ``<root>/index.sqlite``, opened on first use.

    One instance per process: an SQLite connection must not cross a ``fork``, and the
    preparation workers are started with ``spawn`` and build their own.
    """

    def __init__(self, root: Path):
        self.file = Path(root) / INDEX_NAME
        self._db: sqlite3.Connection | None = None
        self._disabled = False

    def get(self, stamp: FileStamp) -> str | None:
        """The key of the file version ``stamp``, when it was hashed safely after its
        last change; ``None`` otherwise."""
        row = self._execute(
            "SELECT key FROM content_keys WHERE path = ? AND size = ? AND mtime_ns = ? "
            "AND mtime_ns < hashed_ns - ?",
            (stamp.path, stamp.size, stamp.mtime_ns, RACY_NS),
        )
        return row[0] if row else None

    def put(self, stamp: FileStamp, key: str, hashed_ns: int) -> None:
        """Remember ``key`` for ``stamp``, hashed from a ``stat`` taken at ``hashed_ns``."""
        self._execute(
            "INSERT OR REPLACE INTO content_keys (path, size, mtime_ns, hashed_ns, key) "
            "VALUES (?, ?, ?, ?, ?)",
            (stamp.path, stamp.size, stamp.mtime_ns, hashed_ns, key),
        )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _execute(self, sql: str, values: tuple) -> tuple | None:
        for attempt in range(2):
            try:
                db = self._connect()
                return None if db is None else db.execute(sql, values).fetchone()
            except sqlite3.DatabaseError as exc:  # OperationalError (locked, read-only) too
                self.close()
                # Not an SQLite file at all (OperationalError is about access): the index
                # is only a cache of hashes, so a damaged one is started afresh, once.
                damaged = not isinstance(exc, sqlite3.OperationalError)
                if attempt == 0 and damaged and self._remove(exc):
                    continue
                self._disable(exc)
        return None

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is None and not self._disabled:
            try:
                self.file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                self._disable(exc)
                return None
            # Autocommit: each statement is a transaction of its own, committed at once.
            db = sqlite3.connect(self.file, timeout=_BUSY_SECONDS, isolation_level=None)
            try:
                db.execute(_SCHEMA)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def _remove(self, exc: Exception) -> bool:
        log.warning("replacing the damaged cache index %s (%s)", self.file, exc)
        try:
            self.file.unlink(missing_ok=True)
        except OSError:
            return False
        return True

    def _disable(self, exc: Exception) -> None:
        log.warning("cache index %s unusable (%s): files are hashed on every run",
                    self.file, exc)
        self._disabled = True
