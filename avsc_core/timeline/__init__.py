"""A file's answers over time, in the formats people open them with.

- :func:`segment_rows` / :class:`SegmentsCsv`: one CSV row per segment
  (``file,start,end,label,confidence,audio_label,visual_label``);
- :func:`write_vtt`: WebVTT captions (``<stem>.vtt``), one cue per segment whose text starts
  with the fused label, so any video player shows the scene over time;
- :func:`write_audacity`: an Audacity label track (``<stem>.txt``: start, end, label,
  tab-separated), to import beside the sound (File > Import > Labels).

The CLI (``classify``/``label`` ``--segments``, ``--vtt``, ``--audacity``: :mod:`.outputs`) and
the app's timeline export all write through these functions.
"""

from avsc_core.timeline.outputs import TimelineOutputs, check_timeline_outputs
from avsc_core.timeline.writers import (
    FORMATS,
    SEGMENT_HEADER,
    SegmentRow,
    SegmentsCsv,
    audacity_text,
    segment_rows,
    sidecar_names,
    sidecar_path,
    vtt_text,
    write_audacity,
    write_timeline,
    write_vtt,
)

__all__ = [
    "FORMATS",
    "SEGMENT_HEADER",
    "SegmentRow",
    "SegmentsCsv",
    "TimelineOutputs",
    "audacity_text",
    "check_timeline_outputs",
    "segment_rows",
    "sidecar_names",
    "sidecar_path",
    "vtt_text",
    "write_audacity",
    "write_timeline",
    "write_vtt",
]
