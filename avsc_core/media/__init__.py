"""Reading media files: audio tracks, sampled frames and fixed-length segments (PyAV)."""

from avsc_core.formats import AUDIO_EXTENSIONS, MEDIA_EXTENSIONS, VIDEO_EXTENSIONS
from avsc_core.media.audio import iter_audio_blocks, read_audio
from avsc_core.media.probe import MediaInfo, probe
from avsc_core.media.segments import Segment, Span, iter_segments, segment_spans
from avsc_core.media.video import iter_frames_at, sample_frames, sample_times

__all__ = [
    "AUDIO_EXTENSIONS",
    "MEDIA_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "MediaInfo",
    "Segment",
    "Span",
    "iter_audio_blocks",
    "iter_frames_at",
    "iter_segments",
    "probe",
    "read_audio",
    "sample_frames",
    "sample_times",
    "segment_spans",
]
