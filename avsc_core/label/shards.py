"""Splitting a folder's files into shards, so that several machines label one archive.

``avsc label ... --shard I/N`` labels shard ``I`` of ``N``; shards are numbered from 1
(``1/4`` to ``4/4``), the way a SLURM array ``--array=1-4`` counts. A file belongs to
shard ``blake2b(its path relative to FOLDER) mod N + 1``: the same file always lands in
the same shard, whichever machine lists the folder and in whatever order, and a file
added later does not move the others (a resumed shard only labels its new files).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from avsc_core.errors import AvscError

_FORMAT = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


def shard_number(file: str, count: int) -> int:
    """The shard (1 to ``count``) of ``file``, a ``/``-separated path relative to FOLDER."""
    # Undecodable name bytes (Linux) round-trip through surrogate escapes, as in the CSV.
    digest = hashlib.blake2b(file.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count + 1


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (``1 <= index <= count``)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str | Shard) -> Shard:
        """``"2/4"`` -> ``Shard(2, 4)``.

        Raises
        ------
        AvscError
            Not ``I/N`` with ``1 <= I <= N``.
        """
        if isinstance(text, Shard):
            return text
        match = _FORMAT.fullmatch(text)
        if match is None:
            raise AvscError(f"--shard {text}: expected I/N, e.g. 1/4 (shard 1 of 4)")
        index, count = int(match[1]), int(match[2])
        if count < 1:
            raise AvscError(f"--shard {text}: the number of shards must be at least 1")
        if not 1 <= index <= count:
            raise AvscError(f"--shard {text}: shards are numbered from 1 to {count} "
                            f"(1/{count} ... {count}/{count})")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, file: str) -> bool:
        """Whether ``file`` (relative to FOLDER, ``/``-separated) is in this shard."""
        return shard_number(file, self.count) == self.index

    def select(self, files: list[Path], folder: Path) -> list[Path]:
        """The ``files`` under ``folder`` that are in this shard, in their order."""
        return [p for p in files if self.holds(p.relative_to(folder).as_posix())]
