"""Where ``classify`` and ``label`` write answers over time: ``--segments``, ``--vtt``,
``--audacity``.

One writer for both commands (:class:`TimelineOutputs`), through the functions of
:mod:`avsc_core.timeline.writers`; ``label`` names files relative to the labelled folder
and keeps, on a resumed run, the rows of the files already labelled.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from avsc_core.outputs import check_output_file, check_output_folder
from avsc_core.timeline.writers import (
    SegmentsCsv,
    segment_rows,
    sidecar_path,
    write_audacity,
    write_vtt,
)

if TYPE_CHECKING:
    from avsc_core.inference.classify import ClassifyResult


def check_timeline_outputs(
    segments_csv: Path | None, vtt_dir: Path | None, audacity_dir: Path | None
) -> None:
    """Refuse unwritable outputs before any work (see :mod:`avsc_core.outputs`)."""
    if segments_csv is not None:
        check_output_file(segments_csv, "segments CSV")
    for folder, what in ((vtt_dir, "captions folder"), (audacity_dir, "label-track folder")):
        if folder is not None:
            check_output_folder(folder, what)


class TimelineOutputs:
    """Writes each labelled file's answers over time where asked.

    Parameters
    ----------
    segments_csv, vtt_dir, audacity_dir : Path, optional
        As ``--segments``, ``--vtt`` and ``--audacity``; ``None`` writes nothing.
    keep : set of str, optional
        Files whose rows an earlier run wrote and that stay labelled (a resumed ``label``
        run): the segments CSV keeps their rows and drops the others'. None for a new run.
    names : mapping, optional
        The name each file's sidecars take (:func:`~avsc_core.timeline.writers.sidecar_names`);
        by default the file's path without its extension.
    """

    def __init__(
        self,
        segments_csv: Path | None,
        vtt_dir: Path | None,
        audacity_dir: Path | None,
        keep: set[str] | None = None,
        names: Mapping[str, str] | None = None,
    ):
        self.names = dict(names or {})
        self.vtt_dir = vtt_dir
        self.audacity_dir = audacity_dir
        self.csv = SegmentsCsv(segments_csv, keep=keep) if segments_csv is not None else None

    def add(self, file: str, result: ClassifyResult) -> None:
        """Write the answers over time of ``file``, the name its rows and sidecars take."""
        if self.csv is None and self.vtt_dir is None and self.audacity_dir is None:
            return
        rows = segment_rows(result.to_dict(), file=file)
        if self.csv is not None:
            self.csv.add(rows)
        name = self.names.get(file) or PurePath(file).with_suffix("").as_posix()
        if self.vtt_dir is not None:
            write_vtt(sidecar_path(self.vtt_dir, name, ".vtt"), rows)
        if self.audacity_dir is not None:
            write_audacity(sidecar_path(self.audacity_dir, name, ".txt"), rows)

    def close(self) -> None:
        if self.csv is not None:
            self.csv.close()
            self.csv = None
