"""Classifying many files with the networks kept busy.

>>> for outcome in classify_files(["a.mp4", "b.mp4"], "models/paper"):   # doctest: +SKIP
...     print(outcome.path, outcome.result.label if outcome.ok else outcome.error)

:class:`Pipeline` takes the events of the files' decoding (:mod:`avsc_core.inference.decoding`)
and runs the model on their batches as they come: each batch is handed to the predictor's
lanes (:meth:`~avsc_core.inference.predictor.Predictor.submit`) before the answer for the
one before it is taken (:data:`IN_FLIGHT`), so that a lane through with its share of a
file goes on to the next file's instead of waiting for the others, while a thread decodes
the next file. Each file's result, or the reason it failed, comes out in file order.
``avsc classify`` with several files (:func:`classify_files`) and ``avsc label``
(:mod:`avsc_core.label.run`, which also writes a journal of the files in work) both run
files this way.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from avsc_core.errors import failure_reason
from avsc_core.inference.classify import (
    ClassifyResult,
    ResultBuilder,
    load_predictor,
    plan_for,
)
from avsc_core.inference.decoding import DecodeAhead, Decoded
from avsc_core.inference.inputs import InputPlan, SegmentBatch
from avsc_core.progress import Cancelled, ProgressCallback

if TYPE_CHECKING:
    from avsc_core.bundle import Bundle
    from avsc_core.inference.predictor import Pending, Predictor, SegmentPredictions

log = logging.getLogger(__name__)

# Batches handed to the networks whose answers are not yet taken: 2 lets the lanes start
# on the next file while the last of a file's networks runs (1: each file's networks
# finish before the next file's start).
IN_FLIGHT = 2

# Called with a file's index, its result (None when it failed) and the reason it failed.
RecordCallback = Callable[[int, "ClassifyResult | None", "str | None"], None]
# Called with the file's builder so far and the batch it has just taken.
AnsweredCallback = Callable[[ResultBuilder, SegmentBatch], None]


class Pipeline:
    """Runs the model on the decoded batches of files and records each file's result.

    Feed it :class:`~avsc_core.inference.decoding.Decoded` events (:meth:`run`, or
    :meth:`event` for each, then :meth:`flush`). Batches go through the networks as they come, one call per
    batch, :data:`IN_FLIGHT` at a time. With ``predictor.batch_segments`` (on a GPU),
    batches of several files are gathered up to that many segments and go through
    together (:meth:`Predictor.predict_many`). A file is recorded once all its batches
    have been answered and every file before it has been recorded.

    Parameters
    ----------
    predictor, plan
        The model and what its inputs were decoded with.
    paths : dict
        File index -> path, for the results and the log.
    record : callable
        ``record(index, result, reason)``: a file is through (``result`` None when it
        failed, ``reason`` saying why, without the file's name).
    begin : callable, optional
        ``begin(index)``: from now on this process works on the file (decodes it, or runs
        the model on its batches); a labelling run's journal blames it if the process dies.
    answered : callable, optional
        ``answered(builder, batch)``: the model has answered a batch of the file whose
        :class:`~avsc_core.inference.classify.ResultBuilder` this is.
    """

    def __init__(self, predictor: Predictor, plan: InputPlan, paths: dict[int, str | Path],
                 record: RecordCallback, begin: Callable[[int], None] | None = None,
                 answered: AnsweredCallback | None = None):
        self.predictor = predictor
        self.plan = plan
        self.paths = paths
        self._record = record
        self._begin = begin
        self._answered = answered
        self.batch_segments = int(getattr(predictor, "batch_segments", 0) or 0)
        self.builders: dict[int, ResultBuilder] = {}
        self.failed: set[int] = set()  # failed here; later news of the file is moot
        self.pending: list[tuple[int, SegmentBatch]] = []
        self.pending_segments = 0
        # Batches in the lanes, oldest first, with what gives their answer.
        self.in_flight: list[tuple[int, SegmentBatch, Pending[SegmentPredictions]]] = []
        # Files decoded (or failed to decode: the reason) whose records wait, in order,
        # for their batches' answers or for an earlier file's.
        self.finished: list[tuple[int, str | None]] = []

    def run(self, events: Iterable[Decoded], cancel: Callable[[], bool] | None = None
            ) -> Iterator[None]:
        """Take every event, then :meth:`flush`. Yields after each event and after the
        flush: the files recorded meanwhile can be handed on there.

        Raises
        ------
        Cancelled
            ``cancel()`` returned True (polled before each event).
        """
        for event in events:
            if cancel is not None and cancel():
                raise Cancelled()
            self.event(event)
            yield
        self.flush()
        yield

    def fail(self, index: int, exc: BaseException) -> None:
        """The model failed on file ``index``: it is recorded with the reason, in its turn."""
        log.debug("classifying %s failed", self.paths[index], exc_info=exc)
        self.builders.pop(index, None)
        self.in_flight = [item for item in self.in_flight if item[0] != index]
        self.failed.add(index)
        entry = (index, failure_reason(exc))
        for k, (i, _) in enumerate(self.finished):
            if i == index:
                self.finished[k] = entry
                break
        else:
            self.finished.append(entry)

    def event(self, event: Decoded) -> None:
        """Take one event of the decoding; record the files it lets through."""
        # Answers the lanes are through with first: their files are recorded (and leave
        # the journal) before another file is taken on.
        self._take_ready()
        index = event.index
        if index in self.failed:
            return
        if event.kind in ("start", "batch") and self._begin is not None:
            self._begin(index)
        try:
            if event.kind == "info":
                self.builders[index] = ResultBuilder(
                    self.paths[index], event.value, self.predictor.bundle.classes, self.plan)
            elif event.kind == "batch":
                batch = event.value
                if self.batch_segments:
                    self.pending.append((index, batch))
                    self.pending_segments += len(batch.spans)
                else:
                    self.in_flight.append(
                        (index, batch, self.predictor.submit(batch.features, batch.frames)))
            elif event.kind == "done":
                self.finished.append((index, None))
            elif event.kind == "error":
                self.builders.pop(index, None)
                self.pending = [(i, b) for i, b in self.pending if i != index]
                self.pending_segments = sum(len(b.spans) for _, b in self.pending)
                self.in_flight = [item for item in self.in_flight if item[0] != index]
                self.finished.append((index, event.value))
        except Exception as exc:  # noqa: BLE001 - the model failing on one file
            self.fail(index, exc)
        if len(self.in_flight) >= IN_FLIGHT:
            self._take_answers(IN_FLIGHT - 1)
        elif self.finished:
            self._record_finished()
        if self.batch_segments and self.pending_segments >= self.batch_segments:
            self.flush()

    def _waiting(self, index: int) -> bool:
        """Whether a batch of file ``index`` is still waiting for the networks."""
        return (any(i == index for i, _ in self.pending)
                or any(i == index for i, _, _ in self.in_flight))

    def _take_ready(self) -> None:
        """Take the answers at the head of the batches in flight that are through."""
        ready = 0
        while ready < len(self.in_flight) and self.in_flight[ready][2].done():
            ready += 1
        if ready:
            self._take_answers(len(self.in_flight) - ready)

    def _add(self, index: int, batch: SegmentBatch, predictions: SegmentPredictions) -> None:
        builder = self.builders[index]
        builder.add(batch, predictions)
        if self._answered is not None:
            self._answered(builder, batch)

    def _take_answers(self, keep: int) -> None:
        """Wait for the answers of the batches in flight but the last ``keep``; record
        the files they finish."""
        while len(self.in_flight) > keep:
            index, batch, answer = self.in_flight.pop(0)
            try:
                self._add(index, batch, answer())
            except Exception as exc:  # noqa: BLE001 - the model failing on one file
                self.fail(index, exc)
        self._record_finished()

    def _record_finished(self) -> None:
        """Record the decoded files whose batches have all been answered, in order, up
        to the first that still waits."""
        while self.finished:
            index, error = self.finished[0]
            if error is None and self._waiting(index):
                return
            self.finished.pop(0)
            result = None
            if error is None:
                try:
                    result = self.builders.pop(index).finish()
                except Exception as exc:
                    log.debug("classifying %s failed", self.paths[index], exc_info=exc)
                    self.failed.add(index)
                    error = failure_reason(exc)
            self._record(index, result, error)

    def flush(self) -> None:
        """Run the gathered batches through the networks, take the answers of those in
        flight; record the files they finish."""
        self._take_answers(0)
        pending, self.pending, self.pending_segments = self.pending, [], 0
        pending = [(i, b) for i, b in pending if i not in self.failed]
        answers = None
        if pending:
            try:
                answers = self.predictor.predict_many(
                    [(b.features, b.frames) for _, b in pending])
            except Exception:
                log.debug("a gathered batch failed; running its files one by one",
                          exc_info=True)
        for k, (index, batch) in enumerate(pending):
            if index in self.failed:
                continue
            try:
                predictions = (answers[k] if answers is not None else
                               self.predictor.predict(batch.features, batch.frames))
                self._add(index, batch, predictions)
            except Exception as exc:  # noqa: BLE001
                self.fail(index, exc)
        self._record_finished()


@dataclass
class FileOutcome:
    """One file of :func:`classify_files`: its result, or why it failed (``error`` names
    the file, ``reason`` does not)."""

    path: Path
    result: ClassifyResult | None = None
    error: str | None = field(default=None)
    reason: str | None = field(default=None)

    @property
    def ok(self) -> bool:
        return self.result is not None


def classify_files(
    paths: Iterable[str | Path],
    model: Bundle | Predictor | str | Path,
    segment_seconds: float | None = None,
    hop_seconds: float | None = None,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    frames_per_second: float | None = None,
) -> Iterator[FileOutcome]:
    """Classify several files with one loaded model, yielding each file's outcome in order.

    The next file is decoded while the networks run on the one before (see
    :class:`Pipeline`), so the answers are those of
    :func:`~avsc_core.inference.classify.classify_file` for each file, sooner. A file
    that fails yields a :class:`FileOutcome` with ``error`` (one line naming the file and
    the reason) and the others still run. Settings errors (a bad model, a bad segment
    length) and :class:`Cancelled` are raised. The parameters are
    :func:`~avsc_core.inference.classify.classify_file`'s; ``progress`` receives
    ``Progress("classify", segments done, segments total, {"file", "start", "end"})`` for
    each segment of a file, once the model has run on it.
    """
    predictor = load_predictor(model)
    plan = plan_for(predictor, segment_seconds, hop_seconds, frames_per_second)
    # The paths as given: a result names its file so (``file`` in the JSON).
    todo = list(enumerate(paths))
    files = dict(todo)
    outcomes: deque[FileOutcome] = deque()

    def record(index: int, result: ClassifyResult | None, reason: str | None) -> None:
        path = Path(files[index])
        if result is not None:
            outcomes.append(FileOutcome(path, result=result))
        else:
            outcomes.append(FileOutcome(path, error=f"{path}: {reason}", reason=reason))

    def answered(builder: ResultBuilder, batch: SegmentBatch) -> None:
        builder.report(batch, progress)

    pipeline = Pipeline(predictor, plan, files, record,
                        answered=None if progress is None else answered)
    with DecodeAhead(todo, plan) as ahead:
        for _ in pipeline.run(ahead.events(cancel), cancel):
            while outcomes:
                yield outcomes.popleft()
