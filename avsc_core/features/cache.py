"""An on-disk cache of decoded and computed arrays, keyed by file content and settings.

Entries live under ``<root>/<content key>/<name>-<settings fingerprint>.npy``. The content
key hashes the file's bytes (not its name or date), so a renamed or copied file hits the
cache and an edited one misses it. Writes are atomic, so a killed run leaves no half
entries; a corrupt entry is recomputed.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from avsc_core.atomic import save_npy

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def default_cache_dir() -> Path:
    """``$AVSC_CACHE_DIR`` or the user cache dir (platformdirs) + ``/features``."""
    env = os.environ.get("AVSC_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("avsc")) / "features"


def content_key(path: str | Path) -> str:
    """BLAKE2b digest of the file's bytes (hex, 32 characters)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class FeatureCache:
    """Arrays cached per media file.

    Parameters
    ----------
    root : path, optional
        Cache folder; :func:`default_cache_dir` when omitted.
    """

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()
        self._keys: dict[tuple[str, int, int], str] = {}

    def key(self, path: str | Path) -> str:
        # Hashing is the cost of a lookup; remember it while the file is unchanged.
        stat = os.stat(path)
        memo = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
        if memo not in self._keys:
            self._keys[memo] = content_key(path)
        return self._keys[memo]

    def entry(self, path: str | Path, name: str, fingerprint: str) -> Path:
        return self.root / self.key(path) / f"{name}-{fingerprint}.npy"

    def load(self, path: str | Path, name: str, fingerprint: str) -> np.ndarray | None:
        entry = self.entry(path, name, fingerprint)
        if not entry.exists():
            return None
        try:
            return np.load(entry, allow_pickle=False)
        except (OSError, ValueError) as exc:
            log.warning("ignoring corrupt cache entry %s (%s)", entry, exc)
            return None

    def save(self, path: str | Path, name: str, fingerprint: str, array: np.ndarray) -> None:
        save_npy(self.entry(path, name, fingerprint), array)

    def get_or_compute(
        self,
        path: str | Path,
        name: str,
        fingerprint: str,
        compute: Callable[[], np.ndarray],
    ) -> np.ndarray:
        """The cached array, or ``compute()`` stored for next time."""
        cached = self.load(path, name, fingerprint)
        if cached is not None:
            return cached
        array = compute()
        self.save(path, name, fingerprint, array)
        return array
