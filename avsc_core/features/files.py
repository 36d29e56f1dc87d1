"""Features and frames of whole files, segment by segment, through the cache."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from avsc_core.backbones import FRAMES
from avsc_core.config import FEATURE_KINDS, FeatureConfig, MediaConfig
from avsc_core.errors import NoAudioError, NoVideoError
from avsc_core.features.cache import FeatureCache
from avsc_core.features.extract import FeatureExtractor
from avsc_core.features.store import JPEG_QUALITY, FrameFile, SpectrogramFile
from avsc_core.media import MediaInfo, iter_segments, probe


def feature_fingerprint(*configs: MediaConfig | FeatureConfig) -> str:
    """The cache fingerprint of arrays computed with these settings."""
    joined = "-".join(c.fingerprint() for c in configs)
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def frames_fingerprint(media: MediaConfig) -> str:
    """The cache fingerprint of frames sampled with ``media`` and stored as JPEG at
    :data:`~avsc_core.features.store.JPEG_QUALITY` (another quality is another entry)."""
    joined = f"{feature_fingerprint(media)}-jpeg{JPEG_QUALITY}"
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def cached_features(
    path: str | Path,
    kinds: tuple[str, ...],
    media: MediaConfig,
    features: FeatureConfig,
    cache: FeatureCache,
    info: MediaInfo | None = None,
) -> dict[str, SpectrogramFile]:
    """The cache entries of ``path``'s spectrograms, computed and stored first if needed.

    Raises
    ------
    NoAudioError, MediaError
        See :func:`avsc_core.media.iter_segments`.
    """
    extractor = FeatureExtractor(features, media.sample_rate)
    fingerprint = feature_fingerprint(media, extractor.config)
    entries = {k: e for k in kinds if (e := cache.open(path, k, fingerprint)) is not None}
    missing = tuple(k for k in kinds if k not in entries)
    if missing:
        computed = _per_audio_segment(path, media, info, missing, extractor.log_spectrograms)
        for kind, stacked in computed.items():
            entries[kind] = cache.save_spectrograms(path, kind, fingerprint, stacked,
                                                    extractor.config.deltas)
    return {k: entries[k] for k in kinds}


def _per_audio_segment(
    path: str | Path,
    media: MediaConfig,
    info: MediaInfo | None,
    kinds: tuple[str, ...],
    compute: Callable[[np.ndarray, tuple[str, ...]], dict[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """``compute(audio, kinds)`` of every audio segment of ``path``, stacked kind by kind.

    Parameters
    ----------
    compute : callable
        One segment's float32 ``(channels, samples)`` audio and ``kinds`` to kind -> array,
        e.g. :meth:`FeatureExtractor.features` or :meth:`FeatureExtractor.log_spectrograms`.

    Returns
    -------
    dict
        kind -> the segments' arrays stacked along a new first axis.

    Raises
    ------
    NoAudioError, MediaError
        See :func:`avsc_core.media.iter_segments`.
    """
    per_kind: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
    for segment in iter_segments(path, media, info=info, video=False):
        if segment.audio is None:
            raise NoAudioError(path)
        for kind, value in compute(segment.audio, kinds).items():
            per_kind[kind].append(value)
    return {k: np.stack(v) for k, v in per_kind.items()}


def cached_frames(path: str | Path, media: MediaConfig, cache: FeatureCache,
                  info: MediaInfo | None = None) -> FrameFile:
    """The cache entry of ``path``'s sampled frames, sampled and stored first if needed.

    Raises
    ------
    NoVideoError, MediaError
        See :func:`avsc_core.media.iter_segments`.
    """
    fingerprint = frames_fingerprint(media)
    entry = cache.open(path, FRAMES, fingerprint)
    if entry is None:
        entry = cache.save_frames(path, fingerprint, _sample_frames(path, media, info))
    return entry


def _sample_frames(path: str | Path, media: MediaConfig, info: MediaInfo | None) -> np.ndarray:
    stacks = []
    for segment in iter_segments(path, media, info=info or probe(path), audio=False):
        if segment.frames is None:
            raise NoVideoError(path)
        stacks.append(segment.frames)
    return np.stack(stacks)


def file_features(
    path: str | Path,
    kinds: tuple[str, ...] = FEATURE_KINDS,
    media: MediaConfig | None = None,
    features: FeatureConfig | None = None,
    cache: FeatureCache | None = None,
    info: MediaInfo | None = None,
    extractor: FeatureExtractor | None = None,
) -> dict[str, np.ndarray]:
    """Network inputs of every segment of ``path``'s audio track.

    With a ``cache``, they are read from its float16 log spectrograms (computed and
    stored first if needed, see :func:`cached_features`), so the first call answers
    exactly as every later one.

    Returns
    -------
    dict
        kind -> float32 ``(segments, bins, frames, channels)``; ``(n, 128, 305, 6)`` with
        the default settings.

    Raises
    ------
    NoAudioError, MediaError
        See :func:`avsc_core.media.iter_segments`.
    """
    media = media or MediaConfig()
    if cache is not None:
        config = extractor.config if extractor is not None else features or FeatureConfig()
        entries = cached_features(path, kinds, media, config, cache, info)
        return {k: entry[:] for k, entry in entries.items()}
    extractor = extractor or FeatureExtractor(features, media.sample_rate)
    return _per_audio_segment(path, media, info, kinds, extractor.features)


def file_frames(
    path: str | Path,
    media: MediaConfig | None = None,
    cache: FeatureCache | None = None,
    info: MediaInfo | None = None,
) -> np.ndarray:
    """Sampled frames of every segment: uint8 ``(segments, frames, size, size, 3)``.

    With a ``cache``, they are its JPEG frames (sampled and stored first if needed, see
    :func:`cached_frames`), so the first call answers exactly as every later one.
    """
    media = media or MediaConfig()
    if cache is not None:
        return cached_frames(path, media, cache, info)[:]
    return _sample_frames(path, media, info)
