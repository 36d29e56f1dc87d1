"""Decoding every clip of a dataset once, into the feature cache.

Training reads spectrograms and frames from the cache through memory maps, so RAM stays
bounded whatever the dataset size. Preparation runs in worker processes when ``jobs > 1``
(started with ``spawn``: TensorFlow must never be forked) and is idempotent: a re-run after
an interruption finds the finished clips in the cache.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from avsc_core.config import FEATURE_KINDS, FeatureConfig, MediaConfig
from avsc_core.datasets import Clip
from avsc_core.errors import AvscError, MediaError, NoAudioError, NoVideoError
from avsc_core.progress import Cancelled, Progress, ProgressCallback


@dataclass(frozen=True)
class PreparedClip:
    """Where one clip's arrays are cached.

    ``features`` maps a kind to a ``(segments, bins, frames, channels)`` ``.npy`` file;
    ``frames`` is a ``(segments, n, size, size, 3)`` ``.npy`` file. Either is empty/None
    when the clip lacks that stream. ``segments`` is the number of segments both share.
    """

    clip: Clip
    segments: int
    features: dict[str, Path] = field(default_factory=dict)
    frames: Path | None = None

    @property
    def has_audio(self) -> bool:
        return bool(self.features)

    @property
    def has_video(self) -> bool:
        return self.frames is not None


@dataclass
class Preparation:
    """Result of :func:`prepare_clips`: usable clips and the ones that failed (with why)."""

    clips: list[PreparedClip]
    failures: list[tuple[Clip, str]]


def _prepare_one(
    clip: Clip,
    media: MediaConfig,
    features: FeatureConfig,
    cache_root: str | None,
    kinds: tuple[str, ...],
    frames: bool,
) -> PreparedClip:
    from avsc_core.features import FeatureCache, file_features, file_frames
    from avsc_core.features.files import feature_fingerprint

    cache = FeatureCache(cache_root)
    segment_counts = []
    feature_paths: dict[str, Path] = {}
    frames_path = None
    if clip.audio_path is not None and kinds:
        try:
            arrays = file_features(clip.audio_path, kinds, media, features, cache)
        except NoAudioError:
            if clip.video_path is None:
                raise
            # A video without sound still trains the visual branch.
        else:
            fingerprint = feature_fingerprint(media, features)
            for kind in kinds:
                feature_paths[kind] = cache.entry(clip.audio_path, kind, fingerprint)
            segment_counts.append(len(arrays[kinds[0]]))
    if clip.video_path is not None and frames:
        try:
            array = file_frames(clip.video_path, media, cache)
        except NoVideoError:
            if not feature_paths:
                raise
        else:
            frames_path = cache.entry(clip.video_path, "frames", feature_fingerprint(media))
            segment_counts.append(len(array))
    if not segment_counts:
        raise MediaError(clip.path, "nothing to learn from (no usable audio or video)")
    return PreparedClip(clip, min(segment_counts), feature_paths, frames_path)


def prepare_clips(
    clips: list[Clip],
    media: MediaConfig,
    features: FeatureConfig,
    cache_root: str | Path | None = None,
    kinds: tuple[str, ...] = FEATURE_KINDS,
    frames: bool = True,
    jobs: int = 1,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Preparation:
    """Cache the features and frames of ``clips``; failures are collected, not raised.

    Parameters
    ----------
    kinds : tuple of str
        Spectrogram kinds to compute (empty for none).
    frames : bool
        Whether to sample video frames.
    jobs : int
        Worker processes.
    cancel : callable, optional
        Polled between clips; when it returns True, :class:`Cancelled` is raised.
    """
    root = str(cache_root) if cache_root is not None else None
    done: dict[int, PreparedClip] = {}
    failures: list[tuple[Clip, str]] = []
    total = len(clips)

    def record(index: int, result: PreparedClip | None, error: str | None) -> None:
        if result is not None:
            done[index] = result
        else:
            failures.append((clips[index], error or "unknown error"))
        if progress:
            progress(
                Progress(
                    "prepare",
                    len(done) + len(failures),
                    total,
                    {"file": str(clips[index].path), "error": error},
                )
            )

    if jobs <= 1 or total <= 1:
        for i, clip in enumerate(clips):
            if cancel and cancel():
                raise Cancelled()
            try:
                record(i, _prepare_one(clip, media, features, root, kinds, frames), None)
            except AvscError as exc:
                record(i, None, str(exc))
    else:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
            futures = {
                pool.submit(_prepare_one, clip, media, features, root, kinds, frames): i
                for i, clip in enumerate(clips)
            }
            try:
                for future in concurrent.futures.as_completed(futures):
                    if cancel and cancel():
                        raise Cancelled()
                    i = futures[future]
                    try:
                        record(i, future.result(), None)
                    except AvscError as exc:
                        record(i, None, str(exc))
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    return Preparation([done[i] for i in sorted(done)], failures)
