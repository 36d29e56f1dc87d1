"""Scoring the way DCASE 2021 Task 1B ranks systems: short segments, and its output file.

The challenge scores 1-second segments by multi-class log loss (accuracy beside it),
while the papers report the accuracy of 10-second clips (``PAPERS.md``). ``avsc evaluate
--segment-seconds 1`` decodes every clip again in segments of that length, as ``avsc
classify --segment-seconds 1`` would (a segment shorter than the model's input is
repeated up to it), and scores each segment as one answer.

The challenge's system output (:func:`write_submission`) is a tab-separated file with a
header row: ``filename``, ``scene_label``, then one probability column per class.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from avsc_core.atomic import atomic_write
from avsc_core.inference.inputs import InputPlan, feeds_model, iter_input_batches
from avsc_core.media import Span, probe

if TYPE_CHECKING:
    from avsc_core.datasets import Clip
    from avsc_core.features import FeatureExtractor
    from avsc_core.inference.predictor import Predictor, SegmentPredictions


def _batches(path: Path, plan: InputPlan, extractor: FeatureExtractor | None):
    """``path``'s batches for ``plan``, or ``None`` when the file lacks what it asks for."""
    info = probe(path)
    return iter_input_batches(path, plan, info, extractor) if feeds_model(info, plan) else None


def segment_predictions(
    clip: Clip, predictor: Predictor, plan: InputPlan, extractor: FeatureExtractor | None = None
) -> Iterator[tuple[list[Span], SegmentPredictions]]:
    """The model's answers for ``clip``'s segments of ``plan``, batch by batch.

    A clip whose sound and pictures are separate files (TAU 2021) is decoded from both,
    segment by segment side by side; segments beyond the shorter file are dropped, as
    training drops them.

    Raises
    ------
    MediaError
        A file cannot be decoded.
    """
    if clip.audio_path == clip.video_path:
        sources = [(clip.path, plan)]
    else:
        sources = [
            (path, part)
            for path, part in (
                (clip.audio_path, dataclasses.replace(plan, frames=False)),
                (clip.video_path, dataclasses.replace(plan, kinds=())),
            )
            if path is not None and (part.kinds or part.frames)
        ]
    streams = [s for s in (_batches(path, part, extractor) for path, part in sources) if s]
    for batches in zip(*streams):
        n = min(len(b.spans) for b in batches)
        features = next((b.features for b in batches if b.features is not None), None)
        frames = next((b.frames for b in batches if b.frames is not None), None)
        yield batches[0].spans[:n], predictor.predict(
            None if features is None else {k: v[:n] for k, v in features.items()},
            None if frames is None else frames[:n],
        )


def item_name(file: str, span: Span, segments: int) -> str:
    """The ``filename`` of one scored segment: the file itself when it is one segment (a
    1-s file of the challenge's evaluation set), else a media fragment ``file#t=3,4``."""
    if segments == 1:
        return file
    return f"{file}#t={span.start:g},{span.end:g}"


def write_submission(
    path: str | Path, classes: Sequence[str], rows: Iterable[tuple[str, np.ndarray]]
) -> None:
    """Write the challenge's output file at ``path`` (replaced only when complete).

    Parameters
    ----------
    classes : sequence of str
        The model's classes, in the order of each row's probabilities.
    rows : iterable of (str, ndarray)
        ``(filename, probabilities)`` per scored item; the label written is the most
        probable class.
    """
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["filename", "scene_label", *classes])
        for filename, probs in rows:
            probs = np.asarray(probs, np.float64)
            probs = probs / probs.sum()
            writer.writerow(
                [filename, classes[int(np.argmax(probs))], *(repr(float(p)) for p in probs)]
            )
