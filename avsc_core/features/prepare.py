"""Decoding every clip of a dataset once, into the feature cache.

Training, evaluation and ``avsc adapt`` prepare their clips here; training reads
spectrograms and frames from the cache entry by entry, so RAM stays
bounded whatever the dataset size. Clips whose entries are all there are found without
reading their media (the cache's key index); the others are prepared in worker processes,
one per core by default (started with ``spawn``: TensorFlow must never be forked), after a
check that the cache's disk has room for them. Preparation is idempotent: a re-run after
an interruption finds the finished clips in the cache.
"""

from __future__ import annotations

import concurrent.futures
import functools
import multiprocessing
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from avsc_core.backbones import FRAMES
from avsc_core.config import FEATURE_KINDS, FeatureConfig, MediaConfig
from avsc_core.datasets import Clip
from avsc_core.errors import AvscError, MediaError, NoAudioError, NoVideoError
from avsc_core.features.cache import FeatureCache
from avsc_core.features.files import (
    cached_features,
    cached_frames,
    feature_fingerprint,
    frames_fingerprint,
)
from avsc_core.features.store import frames_bytes_estimate, spectrogram_bytes
from avsc_core.orphans import exit_with_parent
from avsc_core.outputs import nearest_existing
from avsc_core.progress import Cancelled, Progress, ProgressCallback

# What a file system may add to each entry file (its last, partly used block).
_BLOCK = 4096


@dataclass(frozen=True)
class PreparedClip:
    """Where one clip's arrays are cached.

    ``features`` maps a kind to a spectrogram entry, ``frames`` is a frames entry; open
    them with :func:`avsc_core.features.store.open_entry`, which reads them as the float32
    ``(segments, bins, frames, channels)`` and uint8 ``(segments, n, size, size, 3)``
    arrays they hold. Either is empty/None when the clip lacks that stream. ``segments``
    is the number of segments both share.
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


@dataclass(frozen=True)
class _Task:
    """What every clip of one preparation gets (sent to the worker processes), with the
    settings fingerprints of its entries (hashed once, not once per clip)."""

    media: MediaConfig
    features: FeatureConfig
    root: str
    kinds: tuple[str, ...]
    frames: bool
    spectrogram_fingerprint: str
    frames_fingerprint: str

    @classmethod
    def of(cls, media: MediaConfig, features: FeatureConfig, root: str,
           kinds: tuple[str, ...], frames: bool) -> _Task:
        return cls(media, features, root, tuple(kinds), frames,
                   feature_fingerprint(media, features), frames_fingerprint(media))

    def clip_bytes(self, clip: Clip) -> int:
        """A generous estimate of the cache space one 10-s segment of ``clip`` takes."""
        size = 0
        if clip.audio_path is not None and self.kinds:
            frames = self.features.n_frames(self.media.segment_samples)
            size += len(self.kinds) * (_BLOCK + spectrogram_bytes(
                self.media.channels, self.features.n_bins, frames))
        if clip.video_path is not None and self.frames:
            size += _BLOCK + frames_bytes_estimate(self.media.frames_per_segment,
                                                   self.media.frame_size)
        return size


def _prepare(clip: Clip, task: _Task, cache: FeatureCache) -> PreparedClip:
    segment_counts = []
    feature_paths: dict[str, Path] = {}
    frames_path = None
    if clip.audio_path is not None and task.kinds:
        try:
            entries = cached_features(clip.audio_path, task.kinds, task.media, task.features,
                                      cache)
        except NoAudioError:
            if clip.video_path is None:
                raise
            # A video without sound still trains the visual branch.
        else:
            feature_paths = {kind: entry.path for kind, entry in entries.items()}
            segment_counts.append(len(entries[task.kinds[0]]))
    if clip.video_path is not None and task.frames:
        try:
            entry = cached_frames(clip.video_path, task.media, cache)
        except NoVideoError:
            if not feature_paths:
                raise
        else:
            frames_path = entry.path
            segment_counts.append(len(entry))
    if not segment_counts:
        raise MediaError(clip.path, "nothing to learn from (no usable audio or video)")
    return PreparedClip(clip, min(segment_counts), feature_paths, frames_path)


@functools.cache
def _worker_cache(root: str) -> FeatureCache:
    """The cache of a worker process, kept for all its clips (one index connection)."""
    return FeatureCache(root)


def _prepare_in_worker(clip: Clip, task: _Task) -> PreparedClip:
    return _prepare(clip, task, _worker_cache(task.root))


def _cached(clip: Clip, task: _Task, cache: FeatureCache) -> PreparedClip | None:
    """The clip's entries when all of them are cached and its files' keys are known
    without reading them; ``None`` when the clip must be prepared."""
    counts = []
    feature_paths: dict[str, Path] = {}
    frames_path = None
    wanted = []
    if clip.audio_path is not None and task.kinds:
        wanted += [(clip.audio_path, kind, task.spectrogram_fingerprint) for kind in task.kinds]
    if clip.video_path is not None and task.frames:
        wanted.append((clip.video_path, FRAMES, task.frames_fingerprint))
    for path, name, fingerprint in wanted:
        try:
            key = cache.known_key(path)
        except OSError:
            return None  # the worker reports why the file cannot be read
        entry = None if key is None else cache.open(path, name, fingerprint, key)
        if entry is None:
            return None
        counts.append(len(entry))
        if name == FRAMES:
            frames_path = entry.path
        else:
            feature_paths[name] = entry.path
    if not counts:
        return None
    return PreparedClip(clip, min(counts), feature_paths, frames_path)


def _size(n: float) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.1f} GB"
    if n >= 1e6:
        return f"{n / 1e6:.1f} MB"
    return f"{n / 1e3:.0f} KB"


def check_space(root: Path, needed: int, clips: int) -> None:
    """Refuse to start when the disk holding the cache folder ``root`` has less than
    ``needed`` bytes free (for ``clips`` clips)."""
    free = shutil.disk_usage(nearest_existing(root)).free
    if needed > free:
        raise AvscError(
            f"{root}: the feature cache needs about {_size(needed)} for {clips} clips and "
            f"the disk has {_size(free)} free; free some space or choose another cache "
            "folder (--cache-dir)"
        )


def prepare_clips(
    clips: list[Clip],
    media: MediaConfig,
    features: FeatureConfig,
    cache_dir: str | Path | None = None,
    kinds: tuple[str, ...] = FEATURE_KINDS,
    frames: bool = True,
    jobs: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Preparation:
    """Cache the features and frames of ``clips``; failures are collected, not raised.

    Parameters
    ----------
    cache_dir : path, optional
        The cache folder (:func:`avsc_core.features.default_cache_dir` when omitted).
    kinds : tuple of str
        Spectrogram kinds to compute (empty for none).
    frames : bool
        Whether to sample video frames.
    jobs : int, optional
        Worker processes for the clips not cached yet; all cores when omitted.
    cancel : callable, optional
        Polled between clips; when it returns True, :class:`Cancelled` is raised.

    Raises
    ------
    AvscError
        Before any decoding, when the cache's disk lacks the space the clips not cached
        yet need (one 10-s segment each: longer files need proportionally more).
    """
    cache = FeatureCache(cache_dir)
    try:
        task = _Task.of(media, features, str(cache.root), kinds, frames)
        return _prepare_all(clips, task, cache, jobs, progress, cancel)
    finally:
        cache.close()


def _prepare_all(
    clips: list[Clip],
    task: _Task,
    cache: FeatureCache,
    jobs: int | None,
    progress: ProgressCallback | None,
    cancel: Callable[[], bool] | None,
) -> Preparation:
    done: dict[int, PreparedClip] = {}
    failures: list[tuple[Clip, str]] = []
    total = len(clips)
    todo = []
    for i, clip in enumerate(clips):
        found = _cached(clip, task, cache)
        if found is None:
            todo.append(i)
        else:
            done[i] = found
    check_space(cache.root, sum(task.clip_bytes(clips[i]) for i in todo), len(todo))
    if progress:
        progress(Progress("prepare", len(done), total, {"cached": len(done)}))

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

    workers = min(jobs or os.cpu_count() or 1, len(todo))
    if workers <= 1:
        for i in todo:
            if cancel and cancel():
                raise Cancelled()
            try:
                record(i, _prepare(clips[i], task, cache), None)
            except AvscError as exc:
                record(i, None, str(exc))
    else:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
                workers, mp_context=context, initializer=exit_with_parent) as pool:
            futures = {pool.submit(_prepare_in_worker, clips[i], task): i for i in todo}
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
