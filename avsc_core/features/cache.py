"""An on-disk cache of spectrograms and frames, keyed by file content and settings.

Entries live under ``<root>/<content key>/<name>-<settings fingerprint><suffix>``, in the
compact formats of :mod:`avsc_core.features.store` (``.f16`` float16 log spectrograms,
``.jpg`` JPEG frames; about 0.8 MB per 10-s clip). The content key hashes the file's
bytes (not its name or date), so a renamed or copied file hits the cache and an edited
one misses it; :mod:`avsc_core.features.index` remembers the keys of files already hashed,
so an unchanged file is not read again. Writes are atomic, so a killed run leaves no half
entries; a damaged entry is recomputed.

Entries of earlier versions (``.npy`` float32 inputs and raw frames, 5.7 MB per clip) are
not read: their names differ, so they are never mistaken for new ones, and deleting the
``*.npy`` files of a cache folder frees their space.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import numpy as np

from avsc_core.backbones import FRAMES
from avsc_core.config import default_cache_dir
from avsc_core.features.index import FileStamp, KeyIndex
from avsc_core.features.store import (
    FRAMES_SUFFIX,
    JPEG_QUALITY,
    SPECTROGRAM_SUFFIX,
    EntryError,
    FrameFile,
    SpectrogramFile,
    open_entry,
    write_frames,
    write_spectrograms,
)

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def content_key(path: str | Path) -> str:
    """BLAKE2b digest of the file's bytes (hex, 32 characters)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class FeatureCache:
    """Spectrograms and frames cached per media file.

    Parameters
    ----------
    root : path, optional
        Cache folder; :func:`default_cache_dir` when omitted.
    index : bool
        Remember content keys in ``<root>/index.sqlite`` between runs (without it, every
        process hashes every file it looks up once).
    """

    def __init__(self, root: str | Path | None = None, index: bool = True):
        self.root = Path(root) if root is not None else default_cache_dir()
        self._index = KeyIndex(self.root) if index else None
        self._keys: dict[str, tuple[FileStamp, str]] = {}

    def key(self, path: str | Path) -> str:
        """The content key of ``path``: from memory or the index while the file is
        unchanged, else by hashing it."""
        stamp = FileStamp.of(path)
        known = self._known(stamp)
        if known is not None:
            return known
        hashed_ns = time.time_ns()
        key = content_key(path)
        if FileStamp.of(path) == stamp:  # a file changing while read has no stable key
            self._keys[stamp.path] = (stamp, key)
            if self._index is not None:
                self._index.put(stamp, key, hashed_ns)
        return key

    def known_key(self, path: str | Path) -> str | None:
        """The content key of ``path`` if known without reading the file, else ``None``."""
        return self._known(FileStamp.of(path))

    def _known(self, stamp: FileStamp) -> str | None:
        memo = self._keys.get(stamp.path)
        if memo is not None and memo[0] == stamp:
            return memo[1]
        key = self._index.get(stamp) if self._index is not None else None
        if key is not None:
            self._keys[stamp.path] = (stamp, key)
        return key

    def entry(self, path: str | Path, name: str, fingerprint: str,
              key: str | None = None) -> Path:
        """Where the ``name`` array of ``path`` (``"frames"`` or a spectrogram kind) for
        the settings ``fingerprint`` is kept; ``key`` saves looking up the content key."""
        suffix = FRAMES_SUFFIX if name == FRAMES else SPECTROGRAM_SUFFIX
        return self.root / (key or self.key(path)) / f"{name}-{fingerprint}{suffix}"

    def open(self, path: str | Path, name: str, fingerprint: str,
             key: str | None = None) -> SpectrogramFile | FrameFile | None:
        """The reader of a cached entry, or ``None`` when it is missing or damaged."""
        entry = self.entry(path, name, fingerprint, key)
        try:
            return open_entry(entry)
        except FileNotFoundError:
            return None
        except (OSError, EntryError) as exc:
            log.warning("ignoring damaged cache entry %s (%s)", entry, exc)
            return None

    def save_spectrograms(self, path: str | Path, kind: str, fingerprint: str,
                          log_spec: np.ndarray, deltas: bool) -> SpectrogramFile:
        """Store ``(segments, channels, bins, frames)`` log spectrograms; returns the
        reader of the new entry."""
        entry = self.entry(path, kind, fingerprint)
        write_spectrograms(entry, log_spec, deltas)
        return SpectrogramFile(entry)

    def save_frames(self, path: str | Path, fingerprint: str, frames: np.ndarray) -> FrameFile:
        """Store uint8 frames ``(segments, n, size, size, 3)`` as JPEG at
        :data:`~avsc_core.features.store.JPEG_QUALITY` (which ``fingerprint`` must reflect);
        returns the new entry's reader."""
        entry = self.entry(path, FRAMES, fingerprint)
        write_frames(entry, frames, JPEG_QUALITY)
        return FrameFile(entry)

    def close(self) -> None:
        """Close the index file (it reopens on the next lookup)."""
        if self._index is not None:
            self._index.close()
