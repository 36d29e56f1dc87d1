"""A file's network inputs, streamed in small batches of segments.

Decoding and feature extraction only: no TensorFlow is imported here, so ``avsc label``'s
decoder processes start quickly and stay small. The numbers are those of training
(:func:`avsc_core.features.file_features` and :func:`avsc_core.features.file_frames`):
the same spans and decoders as :func:`avsc_core.media.iter_segments`, and the same
:class:`avsc_core.features.FeatureExtractor`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avsc_core.config import FeatureConfig, MediaConfig
from avsc_core.errors import AvscError, MediaError
from avsc_core.features import FeatureExtractor
from avsc_core.media import MediaInfo, Span
from avsc_core.media.segments import open_segment_streams, tile_to_length
from avsc_core.progress import Cancelled

# A track whose loudest sample stays under -80 dBFS carries no scene to hear.
SILENCE_PEAK = 1e-4

# Segments decoded before the model runs on them: large enough for efficient batches,
# small enough that a long file never holds more than a few seconds of arrays.
SEGMENT_BATCH = 8


@dataclass(frozen=True)
class InputPlan:
    """What to decode for a model, and how.

    Attributes
    ----------
    media : MediaConfig
        Decoding settings, with the analysis segment length and hop.
    features : FeatureConfig
        The model's feature settings.
    kinds : tuple of str
        Spectrogram kinds the model's audio backbones take (empty for none).
    frames : bool
        Whether the model has a visual backbone.
    model_samples : int
        Audio samples of one model input; shorter segments are repeated up to it, as
        clips shorter than a segment were during training.
    video_threads : int
        Video decoder threads (0: FFmpeg's choice, the quickest for one file; 1: the
        least CPU time, see :func:`~avsc_core.media.video.iter_frames_at`).
    """

    media: MediaConfig
    features: FeatureConfig
    kinds: tuple[str, ...]
    frames: bool
    model_samples: int
    video_threads: int = 0


def analysis_media(
    model_media: MediaConfig,
    segment_seconds: float | None = None,
    hop_seconds: float | None = None,
    has_audio_backbone: bool = True,
    frames_per_second: float | None = None,
) -> MediaConfig:
    """The model's decoding settings with the requested segment length, hop and frame rate.

    Without ``segment_seconds`` the model's segment and hop are used; with it, the hop
    defaults to the new segment length (no overlap). ``frames_per_second`` (default: the
    model's, 2 for TAU models) is how many frames a second of video the visual networks
    see; a segment's visual answer is the mean over its frames, so fewer frames cost
    proportionally less and move that mean only a little.

    Raises
    ------
    AvscError
        A non-positive value, or a segment longer than the audio networks' fixed input.
    """
    for name, value in (("--segment-seconds", segment_seconds), ("--hop-seconds", hop_seconds),
                        ("--frames-per-second", frames_per_second)):
        if value is not None and not value > 0:
            raise AvscError(f"{name} must be positive, got {value:g}")
    segment = segment_seconds if segment_seconds is not None else model_media.segment_seconds
    if hop_seconds is None:
        hop_seconds = model_media.hop_seconds if segment_seconds is None else segment
    if has_audio_backbone and segment > model_media.segment_seconds + 1e-9:
        raise AvscError(
            f"--segment-seconds {segment:g}: this model's audio networks take "
            f"{model_media.segment_seconds:g}-s segments; use a length up to that "
            "(the clip answer already averages all segments)"
        )
    return dataclasses.replace(
        model_media, segment_seconds=segment, hop_seconds=hop_seconds,
        frames_per_second=frames_per_second or model_media.frames_per_second)


def make_plan(
    model_media: MediaConfig,
    features: FeatureConfig,
    kinds: tuple[str, ...],
    frames: bool,
    segment_seconds: float | None = None,
    hop_seconds: float | None = None,
    frames_per_second: float | None = None,
) -> InputPlan:
    """An :class:`InputPlan` for a model's settings and needs (see :func:`analysis_media`)."""
    media = analysis_media(model_media, segment_seconds, hop_seconds, bool(kinds),
                           frames_per_second)
    return InputPlan(media, features, tuple(kinds), frames, model_media.segment_samples)


def feeds_model(info: MediaInfo, plan: InputPlan) -> bool:
    """Whether a file with ``info``'s streams has any that ``plan`` uses."""
    return (bool(plan.kinds) and info.has_audio) or (plan.frames and info.has_video)


def stream_warnings(path: str | Path, info: MediaInfo, plan: InputPlan) -> list[str]:
    """Warnings for the model's branches that ``path`` cannot feed.

    Raises
    ------
    MediaError
        The file has none of the streams the model uses.
    """
    missing_audio = bool(plan.kinds) and not info.has_audio
    missing_video = plan.frames and not info.has_video
    if not feeds_model(info, plan):
        lacks = [what for what, missing in (("no audio track", missing_audio),
                                            ("no video stream", missing_video)) if missing]
        raise MediaError(path, f"{' and '.join(lacks)}: nothing this model can use")
    warnings = []
    if missing_audio:
        warnings.append(
            "no audio track: audio branch skipped, fused answer from the visual branch")
    if missing_video:
        warnings.append(
            "no video stream: visual branch skipped, fused answer from the audio branch")
    return warnings


def silence_warning(peaks: np.ndarray) -> str | None:
    """A warning when the whole audio track is silent (it still goes through the model)."""
    if peaks.size and float(peaks.max()) < SILENCE_PEAK:
        return "silent audio track: the audio branch hears nothing, its answer means little"
    return None


@dataclass
class SegmentBatch:
    """Consecutive segments of one file, ready for the model.

    ``features`` maps a kind to float32 ``(n, bins, frames, channels)`` and ``frames`` is
    uint8 ``(n, frames_per_segment, size, size, 3)``; either is ``None`` when the file
    lacks that stream or the model does not use it. ``peaks`` is each segment's largest
    absolute sample (``None`` without audio), to tell a silent track.
    """

    spans: list[Span]
    features: dict[str, np.ndarray] | None = None
    frames: np.ndarray | None = None
    peaks: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)


def _batch(
    spans: list[Span],
    features: dict[str, list[np.ndarray]],
    frames: list[np.ndarray],
    peaks: list[float],
    warnings: list[str],
) -> SegmentBatch:
    return SegmentBatch(
        spans=list(spans),
        features={k: np.stack(v) for k, v in features.items()} if peaks and features else None,
        frames=np.stack(frames) if frames else None,
        peaks=np.array(peaks, np.float32) if peaks else None,
        warnings=list(warnings),
    )


def iter_input_batches(
    path: str | Path,
    plan: InputPlan,
    info: MediaInfo,
    extractor: FeatureExtractor | None = None,
    batch_size: int = SEGMENT_BATCH,
    cancel: Callable[[], bool] | None = None,
) -> Iterator[SegmentBatch]:
    """Decode ``path`` segment by segment and yield batches of network inputs.

    Only the streams the model uses and the file has are decoded.

    Raises
    ------
    MediaError
        The file cannot be decoded.
    Cancelled
        ``cancel()`` returned True (polled before each segment).
    """
    extractor = extractor or FeatureExtractor(plan.features, plan.media.sample_rate)
    use_audio = bool(plan.kinds) and info.has_audio
    use_video = plan.frames and info.has_video
    streams = open_segment_streams(path, plan.media, info, audio=use_audio, video=use_video,
                                   video_threads=plan.video_threads)
    spans: list[Span] = []
    features: dict[str, list[np.ndarray]] = {k: [] for k in plan.kinds} if use_audio else {}
    frames: list[np.ndarray] = []
    peaks: list[float] = []
    warnings: list[str] = []
    try:
        for span in streams.spans:
            if cancel is not None and cancel():
                raise Cancelled()
            spans.append(span)
            # The audio is analysed while the frame thread decodes this segment's frames.
            if streams.audio is not None:
                audio, new_warnings = next(streams.audio)
                warnings.extend(new_warnings)
                peaks.append(float(np.max(np.abs(audio))) if audio.size else 0.0)
                if audio.shape[-1] < plan.model_samples:
                    audio = tile_to_length(audio, plan.model_samples, axis=-1)
                for kind, value in extractor.features(audio, plan.kinds).items():
                    features[kind].append(value)
            if streams.frames is not None:
                _, segment_frames, new_warnings = next(streams.frames)
                warnings.extend(new_warnings)
                frames.append(segment_frames)
            if len(spans) == batch_size:
                yield _batch(spans, features, frames, peaks, warnings)
                spans, frames, peaks, warnings = [], [], [], []
                features = {k: [] for k in features}
        if spans:
            yield _batch(spans, features, frames, peaks, warnings)
    finally:
        streams.close()
