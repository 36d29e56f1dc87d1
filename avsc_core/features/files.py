"""Features and frames of whole files, segment by segment, through the cache."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from avsc_core.config import FEATURE_KINDS, FeatureConfig, MediaConfig
from avsc_core.errors import NoAudioError, NoVideoError
from avsc_core.features.cache import FeatureCache
from avsc_core.features.extract import FeatureExtractor
from avsc_core.media import MediaInfo, iter_segments, probe


def feature_fingerprint(*configs: MediaConfig | FeatureConfig) -> str:
    """The cache fingerprint of arrays computed with these settings."""
    joined = "-".join(c.fingerprint() for c in configs)
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


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
    extractor = extractor or FeatureExtractor(features, media.sample_rate)
    fingerprint = feature_fingerprint(media, extractor.config)
    result: dict[str, np.ndarray] = {}
    missing = list(kinds)
    if cache is not None:
        for kind in kinds:
            cached = cache.load(path, kind, fingerprint)
            if cached is not None:
                result[kind] = cached
        missing = [k for k in kinds if k not in result]
    if missing:
        per_kind: dict[str, list[np.ndarray]] = {k: [] for k in missing}
        for segment in iter_segments(path, media, info=info, video=False):
            if segment.audio is None:
                raise NoAudioError(path)
            for kind, value in extractor.features(segment.audio, tuple(missing)).items():
                per_kind[kind].append(value)
        for kind, values in per_kind.items():
            result[kind] = np.stack(values)
            if cache is not None:
                cache.save(path, kind, fingerprint, result[kind])
    return {k: result[k] for k in kinds}


def file_frames(
    path: str | Path,
    media: MediaConfig | None = None,
    cache: FeatureCache | None = None,
    info: MediaInfo | None = None,
) -> np.ndarray:
    """Sampled frames of every segment: uint8 ``(segments, frames, size, size, 3)``."""
    media = media or MediaConfig()

    def compute() -> np.ndarray:
        segments = iter_segments(path, media, info=info or probe(path), audio=False)
        stacks = []
        for segment in segments:
            if segment.frames is None:
                raise NoVideoError(path)
            stacks.append(segment.frames)
        return np.stack(stacks)

    if cache is None:
        return compute()
    return cache.get_or_compute(path, "frames", feature_fingerprint(media), compute)
