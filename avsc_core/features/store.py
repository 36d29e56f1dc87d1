"""The compact file formats of the feature cache: float16 log spectrograms, JPEG frames.

A 10-s clip took 5.8 MB as float32 network inputs and raw frames (three ``(128, 305, 6)``
stacks of 0.94 MB and 20 frames of 150 KB); it now takes 0.72-0.85 MB (measured on real TAU
street clips and a 720p clip):

- spectrograms (``.f16``): the log spectrograms *before* deltas, float16,
  ``(segments, channels, bins, frames)`` (``(n, 2, 128, 309)``, 158 KB per 10 s).
  Deltas are recomputed on reading by :func:`~avsc_core.features.deltas.network_input`,
  the code extraction uses, so the only difference from fresh features is float16's
  rounding of the log spectrogram (relative error at most 2**-11, about 5e-4), which the
  central differences do not amplify.
- frames (``.jpg``): each sampled frame as a baseline JPEG at :data:`JPEG_QUALITY`
  (4:2:0 chroma), 12-20 KB per 224x224 frame of real street or 720p footage.

Both are one file: an 8-byte tag, the header length (4 bytes, little endian), a JSON
header, padding to :data:`_ALIGN` bytes, then the data. The data is memory-mapped, so
opening an entry reads only its header. Files are written atomically (a killed writer
leaves no half entry) and checked on opening (a file of the wrong length, e.g. from a
full disk, is refused).
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from avsc_core.atomic import atomic_write
from avsc_core.features.deltas import network_input

SPECTROGRAM_SUFFIX = ".f16"
FRAMES_SUFFIX = ".jpg"
# ImageNet itself (the visual backbones' pretraining data) is JPEG at about this quality;
# the mean absolute error is about 2 of 255 levels on real street frames (see the tests).
JPEG_QUALITY = 90
# A generous size of one 224x224 frame at JPEG_QUALITY, per pixel (3.6 bits; 720p footage
# measured 3.0), for estimating the disk space a preparation needs.
JPEG_BYTES_PER_PIXEL = 0.45

_SPECTROGRAM_TAG = b"AVSCF16\x01"
_FRAMES_TAG = b"AVSCJPG\x01"
_ALIGN = 16
_LENGTH = struct.Struct("<I")


class EntryError(ValueError):
    """A cache file that is not a complete entry of the expected kind."""


def _write(path: Path, tag: bytes, header: dict, chunks: Sequence[bytes]) -> None:
    blob = json.dumps(header, separators=(",", ":")).encode()
    used = len(tag) + _LENGTH.size + len(blob)
    blob += b" " * (-used % _ALIGN)
    with atomic_write(path, "wb") as handle:
        handle.write(tag + _LENGTH.pack(len(blob)) + blob)
        for chunk in chunks:
            handle.write(chunk)


def _read_header(path: Path, tag: bytes) -> tuple[dict, int, int]:
    """``(header, data offset, data length)`` of the entry at ``path``."""
    with open(path, "rb") as handle:
        prefix = handle.read(len(tag) + _LENGTH.size)
        if len(prefix) < len(tag) + _LENGTH.size or prefix[: len(tag)] != tag:
            raise EntryError(f"{path}: not a {tag[:-1].decode()} cache entry")
        (length,) = _LENGTH.unpack(prefix[len(tag):])
        try:
            header = json.loads(handle.read(length))
        except ValueError as exc:
            raise EntryError(f"{path}: damaged header ({exc})") from exc
        offset = len(prefix) + length
        size = os.fstat(handle.fileno()).st_size
    if not isinstance(header, dict):
        raise EntryError(f"{path}: damaged header")
    return header, offset, size - offset


def write_spectrograms(path: str | Path, log_spec: np.ndarray, deltas: bool) -> None:
    """Save ``(segments, channels, bins, frames)`` log spectrograms as float16.

    ``deltas`` says whether readers append deltas and delta-deltas (the
    :class:`~avsc_core.config.FeatureConfig` setting).
    """
    data = np.ascontiguousarray(log_spec, dtype="<f2")
    if data.ndim != 4:
        raise ValueError(f"expected (segments, channels, bins, frames), got {data.shape}")
    _write(Path(path), _SPECTROGRAM_TAG, {"shape": list(data.shape), "deltas": bool(deltas)},
           [data.tobytes()])


class SpectrogramFile:
    """A cached spectrogram entry, read as the audio networks' float32 input.

    ``entry[i]``, ``entry[(i,)]`` and ``entry[a:b]`` index segments, as the float32
    ``(segments, bins, frames, channels)`` array of :func:`avsc_core.features.file_features`
    would be indexed; only the segments asked for are read and get their deltas.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        header, offset, length = _read_header(self.path, _SPECTROGRAM_TAG)
        try:
            shape = tuple(int(n) for n in header["shape"])
            self.deltas = bool(header["deltas"])
        except (KeyError, TypeError, ValueError) as exc:
            raise EntryError(f"{path}: damaged header") from exc
        if len(shape) != 4 or length != math.prod(shape) * 2 or not shape[0]:
            raise EntryError(f"{path}: {length} bytes of data for shape {shape}")
        self._offset, self._stored_shape = offset, shape
        segments, channels, bins, frames = shape
        # What network_input makes of it: deltas lose 4 frames and triple the channels.
        self.shape = ((segments, bins, frames - 4, 3 * channels) if self.deltas
                      else (segments, bins, frames, channels))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int | slice | tuple[int]) -> np.ndarray:
        if isinstance(index, tuple):
            if len(index) != 1:
                raise IndexError("spectrogram entries are indexed by segment only")
            index = index[0]
        return network_input(np.asarray(self.log_spectrograms()[index], np.float32),
                             self.deltas)

    def log_spectrograms(self) -> np.ndarray:
        """The stored float16 ``(segments, channels, bins, frames)`` (memory-mapped)."""
        return self._log

    @cached_property
    def _log(self) -> np.memmap:
        # Mapped on first read: finding cached entries only needs their headers.
        return np.memmap(self.path, "<f2", "r", offset=self._offset, shape=self._stored_shape)


def write_frames(path: str | Path, frames: np.ndarray, quality: int = JPEG_QUALITY) -> None:
    """Save uint8 RGB frames ``(segments, n, height, width, 3)`` as JPEG images."""
    import cv2  # imported on use: the cache's readers of spectrograms do without it

    frames = np.asarray(frames)
    if frames.ndim != 5 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 (segments, n, height, width, 3), got "
                         f"{frames.dtype} {frames.shape}")
    images = []
    for frame in frames.reshape(-1, *frames.shape[2:]):
        # OpenCV works in BGR; converting keeps the colour transform (and so the chroma
        # subsampling) acting on the channels it was made for.
        ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise ValueError(f"{path}: JPEG encoding failed")
        images.append(encoded.tobytes())
    offsets = np.concatenate([[0], np.cumsum([len(i) for i in images])]).tolist()
    header = {"shape": list(frames.shape), "quality": int(quality), "offsets": offsets}
    _write(Path(path), _FRAMES_TAG, header, images)


class FrameFile:
    """A cached frames entry, read as uint8 RGB frames.

    ``entry[s]`` is segment ``s``'s ``(n, height, width, 3)``, ``entry[s, f]`` its frame
    ``f``, ``entry[a:b]`` a ``(segments, n, height, width, 3)`` stack, as the array of
    :func:`avsc_core.features.file_frames` would be indexed; only those frames are decoded.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        header, offset, length = _read_header(self.path, _FRAMES_TAG)
        try:
            self.shape = tuple(int(n) for n in header["shape"])
            self.quality = int(header["quality"])
            offsets = np.asarray(header["offsets"], np.int64)
        except (KeyError, TypeError, ValueError) as exc:
            raise EntryError(f"{path}: damaged header") from exc
        if (len(self.shape) != 5 or not self.shape[0] or offsets.shape != (
                math.prod(self.shape[:2]) + 1,) or offsets[-1] != length):
            raise EntryError(f"{path}: {length} bytes of data for shape {self.shape}")
        self._offsets, self._offset, self._length = offsets, offset, length

    @cached_property
    def _bytes(self) -> np.memmap:
        # Mapped on first read: finding cached entries only needs their headers.
        return np.memmap(self.path, np.uint8, "r", offset=self._offset, shape=(self._length,))

    def __len__(self) -> int:
        return self.shape[0]

    def _frame(self, index: int) -> np.ndarray:
        import cv2

        start, end = self._offsets[index], self._offsets[index + 1]
        image = cv2.imdecode(self._bytes[start:end], cv2.IMREAD_COLOR)
        if image is None or image.shape != self.shape[2:]:
            raise EntryError(f"{self.path}: frame {index} does not decode")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def _segment(self, segment: int) -> np.ndarray:
        per = self.shape[1]
        return np.stack([self._frame(segment * per + f) for f in range(per)])

    def __getitem__(self, index: int | slice | tuple) -> np.ndarray:
        if isinstance(index, tuple):
            if len(index) == 2:
                segment = range(self.shape[0])[index[0]]
                return self._frame(segment * self.shape[1] + range(self.shape[1])[index[1]])
            if len(index) != 1:
                raise IndexError("frames entries are indexed by segment, then frame")
            index = index[0]
        segments = range(self.shape[0])[index]
        if isinstance(segments, int):
            return self._segment(segments)
        if not segments:
            return np.empty((0, *self.shape[1:]), np.uint8)
        return np.stack([self._segment(s) for s in segments])


def open_entry(path: str | Path) -> SpectrogramFile | FrameFile:
    """The reader of the cache entry at ``path``, by its suffix.

    Raises
    ------
    EntryError
        The file is not a complete entry. ``OSError`` when it cannot be read.
    """
    path = Path(path)
    if path.suffix == FRAMES_SUFFIX:
        return FrameFile(path)
    if path.suffix == SPECTROGRAM_SUFFIX:
        return SpectrogramFile(path)
    raise EntryError(f"{path}: not a cache entry (expected {SPECTROGRAM_SUFFIX} or "
                     f"{FRAMES_SUFFIX})")


def spectrogram_bytes(channels: int, bins: int, frames: int) -> int:
    """Data bytes of one segment's float16 log spectrogram."""
    return channels * bins * frames * 2


def frames_bytes_estimate(frames: int, size: int) -> int:
    """A generous estimate of one segment's JPEG frames, for disk-space checks."""
    return math.ceil(frames * size * size * JPEG_BYTES_PER_PIXEL)
