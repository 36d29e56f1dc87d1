"""Labelling every media file of a folder into a CSV, resumable, with decoder processes.

>>> summary = label_folder("holiday/", "models/paper", "labels.csv", jobs=4)   # doctest: +SKIP
>>> summary.labelled, summary.failed                                           # doctest: +SKIP
(812, 3)

Rows are written as files finish (see :mod:`avsc_core.label.csv_out`), so an interrupted
run loses at most the files it was working on; ``resume=True`` skips every file already
in the CSV. A file the process died on is not retried but written as failed (see
:mod:`avsc_core.label.journal`). When the run completes, the CSV is rewritten in file
order. One run at a time writes a CSV: the others get
:class:`~avsc_core.locks.OutputBusyError`.

Two engines run the files: ``"local"`` (this process, with ``jobs - 1`` decoder
processes; with ``jobs=1`` a thread decodes the next file while the networks run on the
current one) and ``"ray"`` (decoding and networks spread over a Ray cluster, see
:mod:`avsc_core.label.ray_engine`). Both write through the same recorder, so the CSV,
its parameters, ``resume`` and the answers over time behave the same. ``shard`` labels
one part of the folder (:mod:`avsc_core.label.shards`), to be joined by
:func:`~avsc_core.label.merge.merge_shards`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avsc_core.blas import one_blas_thread
from avsc_core.errors import AvscError, UsageError
from avsc_core.inference.classify import (
    ClassifyResult,
    load_predictor,
    plan_for,
)
from avsc_core.inference.decoding import DecodeAhead, decode_in_turn
from avsc_core.inference.pipeline import Pipeline
from avsc_core.inference.review import check_min_confidence, review_reasons, review_text
from avsc_core.label.csv_out import LabelRow, RowAppender
from avsc_core.label.discover import find_media_files
from avsc_core.label.journal import DIED_REASON, InProgressJournal, files_in_progress
from avsc_core.label.params import (
    check_params_owner,
    check_resume,
    now,
    params_path,
    previous_params,
    run_params,
    write_params,
)
from avsc_core.label.shards import Shard
from avsc_core.label.store import LabelStore, resolve_format
from avsc_core.label.workers import DecoderPool
from avsc_core.locks import OutputLock
from avsc_core.outputs import check_output_file
from avsc_core.progress import Cancelled, Progress, ProgressCallback
from avsc_core.timeline import TimelineOutputs, check_timeline_outputs, sidecar_names

if TYPE_CHECKING:
    from avsc_core.bundle import Bundle
    from avsc_core.inference.inputs import InputPlan
    from avsc_core.inference.predictor import Predictor
    from avsc_core.label.ray_engine import RayPool

log = logging.getLogger(__name__)

RowCallback = Callable[[LabelRow, "ClassifyResult | None"], None]

ENGINES = ("local", "ray")
RAY_INSTALL = "pip install 'avsc[cluster]'"


@dataclass(frozen=True)
class LabelSummary:
    """What a :func:`label_folder` run did.

    ``already_done`` counts the files found in the CSV from an earlier run (``resume``);
    ``labelled`` and ``failed`` count this run's rows; ``found`` counts the files of the
    run (of its shard, with ``shard``).
    """

    out_csv: Path
    params: Path
    found: int
    already_done: int
    labelled: int
    failed: int
    seconds: float

    @property
    def files_per_second(self) -> float:
        return (self.labelled + self.failed) / self.seconds if self.seconds > 0 else 0.0


def row_for(file: str, result: ClassifyResult, min_confidence: float | None = None) -> LabelRow:
    """The CSV row of one classified file, with the reasons it needs review."""
    return LabelRow(
        file=file,
        label=result.label,
        confidence=result.confidence,
        audio_label=result.branch_label("audio") or "",
        visual_label=result.branch_label("visual") or "",
        needs_review=review_text(review_reasons(result, min_confidence)),
    )


class Recorder:
    """Writes rows durably; keeps the counts, the callbacks, the parameters file, the
    answers over time and the journal of files in progress current.

    Engines call :meth:`begin` before working on a file in this process and
    :meth:`record` once its answer (or its failure) is known.
    """

    def __init__(
        self,
        store: LabelStore,
        params: dict[str, Any],
        files: list[Path],
        folder: Path,
        earlier: list[LabelRow],
        progress: ProgressCallback | None,
        on_row: RowCallback | None,
        folder_files: int | None = None,
        sidecars: Mapping[str, str] | None = None,
    ):
        self.store = store
        # The names of the files' captions and label tracks, no two alike over the whole
        # folder (the other shards' files included).
        self.sidecars = sidecars
        self.out_csv = store.out
        self.params = params
        self.relative = [p.relative_to(folder).as_posix() for p in files]
        self.earlier = earlier
        self.done = {r.file for r in earlier}
        self.labelled_total = sum(r.ok for r in earlier)
        self.failed_total = len(earlier) - self.labelled_total
        self.labelled = self.failed = 0
        self.found_done = sum(f in self.done for f in self.relative)
        self.folder_files = folder_files
        self.progress = progress
        self.on_row = on_row
        self.appender: RowAppender | None = None
        self.timeline: TimelineOutputs | None = None
        self.journal = InProgressJournal(store.out)

    def todo(self, files: list[Path]) -> list[tuple[int, Path]]:
        return [(i, p) for i, p in enumerate(files) if self.relative[i] not in self.done]

    def open(self, timeline: dict[str, Path | None]) -> None:
        """Start writing: the earlier rows (or none), and the answers over time."""
        # A clean start, or the earlier rows without a line cut short by a crash.
        self.store.start(self.earlier)
        self.timeline = TimelineOutputs(**timeline, keep=set(self.done), names=self.sidecars)

    def record_deaths(self, died: list[str]) -> None:
        """Failed rows for the files an earlier run died on; then forget its journal."""
        index = {f: i for i, f in enumerate(self.relative)}
        for file in died:
            # A file since deleted or already in the CSV needs no row.
            if file in index and file not in self.done:
                self.record(index[file], None, DIED_REASON)
        self.journal.clear()

    def begin(self, index: int) -> None:
        """File ``index`` is about to be worked on: say so on disk first."""
        self.journal.begin(self.relative[index])

    def save_params(self, finished: bool) -> Path:
        self.params["finished"] = now() if finished else None
        self.params["counts"] = {
            "found": len(self.relative),
            "rows": len(self.done),
            "labelled": self.labelled_total,
            "failed": self.failed_total,
            "remaining": len(self.relative) - self.found_done,
        }
        if self.folder_files is not None:
            # What `label merge` checks the shards against when the folder is gone.
            self.params["counts"]["folder_files"] = self.folder_files
        return write_params(self.out_csv, self.params)

    def record(self, index: int, result: ClassifyResult | None, error: str | None) -> None:
        file = self.relative[index]
        row = (row_for(file, result, self.params.get("min_confidence")) if result is not None
               else LabelRow(file, error=error or ""))
        if result is not None and self.timeline is not None:
            # Before the label row: a crash in between leaves segment rows of a file with
            # no label row, which a resumed run drops (SegmentsCsv keeps only the rows of
            # the files in the labels CSV) and writes again; the other way round, a file
            # would keep its label row and lose its segments for good.
            self.timeline.add(file, result)
        if self.appender is None:
            self.appender = self.store.appender()
        self.appender.append(row)
        self.journal.end(file)
        self.done.add(file)
        self.found_done += 1
        if row.ok:
            self.labelled += 1
            self.labelled_total += 1
        else:
            self.failed += 1
            self.failed_total += 1
        if self.on_row:
            self.on_row(row, result)
        if self.progress:
            self.progress(Progress("label", self.found_done, len(self.relative),
                                   {"file": file, "label": row.label, "error": row.error}))

    def close(self) -> None:
        """Stop writing. The files still in progress were not at fault (the run was
        cancelled or failed in an orderly way): a resumed run labels them again."""
        if self.appender is not None:
            self.appender.close()
            self.appender = None
        if self.timeline is not None:
            self.timeline.close()
            self.timeline = None
        self.journal.clear()

    def ordered_rows(self) -> list[LabelRow]:
        """Every row written, in file order (rows of vanished files last)."""
        rows = {r.file: r for r in self.store.rows_written()}
        order = {f: i for i, f in enumerate(self.relative)}
        return sorted(rows.values(), key=lambda r: (order.get(r.file, len(order)), r.file))


# With ``--jobs 1``, decode the next file in a thread while the networks run on the
# current one (:class:`~avsc_core.inference.decoding.DecodeAhead`). False decodes each file
# only once the one before it is done (what ``benchmarks/label.py`` compares against).
DECODE_AHEAD = True


def _label_in_process(
    todo: list[tuple[int, Path]],
    predictor: Predictor,
    plan: InputPlan,
    recorder: Recorder,
    cancel: Callable[[], bool] | None,
) -> None:
    networks = Pipeline(predictor, plan, dict(todo), recorder.record, recorder.begin)
    with contextlib.ExitStack() as stack:
        if DECODE_AHEAD:
            events = stack.enter_context(DecodeAhead(todo, plan)).events(cancel)
        else:
            events = decode_in_turn(todo, plan)
        for _ in networks.run(events, cancel):
            pass


def _label_with_decoders(
    todo: list[tuple[int, Path]],
    workers: int,
    predictor: Predictor,
    plan: InputPlan,
    recorder: Recorder,
    cancel: Callable[[], bool] | None,
) -> None:
    networks = Pipeline(predictor, plan, dict(todo), recorder.record, recorder.begin)
    with DecoderPool(workers, plan) as pool:
        for event in pool.run(todo, cancel):
            networks.event(event)
            if cancel and cancel():
                raise Cancelled()
        networks.flush()


@dataclass(frozen=True)
class RayOptions:
    """How ``engine="ray"`` runs (see :class:`avsc_core.label.ray_engine.RayPool`)."""

    address: str | None = None
    workers: int = 1
    gpus_per_worker: float = 0.0


def _engine_options(
    engine: str,
    jobs: int,
    address: str | None,
    workers: int | None,
    gpus_per_worker: float | None,
) -> RayOptions | None:
    """The Ray options for ``engine="ray"`` (``None`` for the local engine), checked.

    Raises
    ------
    AvscError
        An unknown engine, options of the other engine, bad numbers, or Ray not installed.
    """
    if engine not in ENGINES:
        raise AvscError(f"--engine {engine}: use one of {', '.join(ENGINES)}")
    if jobs < 1:
        raise AvscError(f"--jobs must be at least 1, got {jobs}")
    ray_only = [name for name, value in (("--address", address), ("--workers", workers),
                                         ("--gpus-per-worker", gpus_per_worker))
                if value is not None]
    if engine == "local":
        if ray_only:
            raise UsageError(f"{', '.join(ray_only)}: only with --engine ray")
        return None
    if jobs != 1:
        raise UsageError("--jobs is for --engine local; with --engine ray, --workers N "
                         "sets the network workers and decoding uses the cluster's CPUs")
    options = RayOptions(address, 1 if workers is None else workers,
                         0.0 if gpus_per_worker is None else gpus_per_worker)
    if options.workers < 1:
        raise AvscError(f"--workers must be at least 1, got {options.workers}")
    if options.gpus_per_worker < 0:
        raise AvscError(f"--gpus-per-worker must not be negative, got {options.gpus_per_worker:g}")
    if importlib.util.find_spec("ray") is None:
        raise AvscError(f"--engine ray needs Ray, which is not installed: {RAY_INSTALL}")
    return options


def _check_outputs(out_csv: Path) -> None:
    """Refuse, before any heavy work, a CSV or parameters file that cannot be written."""
    if out_csv.is_dir():
        raise AvscError(f"{out_csv}: is a folder; --out takes a CSV file name")
    check_output_file(out_csv, "labels CSV")
    # The journal and the lock live in the same folder, which this checks as well.
    check_output_file(params_path(out_csv), "labelling parameters")
    check_params_owner(out_csv)


def _earlier_run(store: LabelStore, resume: bool) -> tuple[list[LabelRow], list[str]]:
    """The rows already in the output and the files its last run died on."""
    if not store.exists():
        return [], []
    if not resume:
        raise AvscError(f"{store.out}: already exists; add --resume to continue it "
                        "or choose another --out")
    return store.read(), files_in_progress(store.out)


def label_folder(
    folder: str | Path,
    model: Bundle | Predictor | str | Path,
    out_csv: str | Path,
    recursive: bool = False,
    resume: bool = False,
    jobs: int = 1,
    segment_seconds: float | None = None,
    hop_seconds: float | None = None,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
    on_row: RowCallback | None = None,
    *,
    frames_per_second: float | None = None,
    shard: Shard | str | None = None,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    format: str | None = None,
    segments_csv: str | Path | None = None,
    vtt_dir: str | Path | None = None,
    audacity_dir: str | Path | None = None,
    min_confidence: float | None = None,
    runtime: str = "auto",
) -> LabelSummary:
    """Label every media file of ``folder`` into ``out_csv``, with its parameters file.

    The parameters file is ``labels.params.json`` for ``labels.csv`` (see
    :mod:`avsc_core.label.params`). The run holds :class:`~avsc_core.locks.OutputLock`
    on ``out_csv`` from before the model is loaded to the end.

    Parameters
    ----------
    folder : str or Path
        Where the files are; CSV paths are relative to it.
    model : Bundle, Predictor, str or Path
    out_csv : str or Path
        The labels CSV (``file,label,confidence,audio_label,visual_label,error``), or a
        Parquet table with the same columns (see ``format``).
    recursive : bool
        Also label the files of subfolders.
    resume : bool
        Continue an existing ``out_csv``, skipping the files already in it; the files the
        earlier run died on get a failed row instead of being read again. Without it an
        existing ``out_csv`` is an error.
    jobs : int
        With ``jobs >= 2``, ``jobs - 1`` processes decode files while this one runs the
        model (local engine); with 1, a thread of this process decodes the next file
        while the model runs on the current one. On a GPU, the segments of several files
        go through the networks together (``Predictor.batch_segments``).
    segment_seconds, hop_seconds, frames_per_second : float, optional
        As for :func:`avsc_core.inference.classify.classify_file`; the parameters file
        records them, and a resumed run must use the same.
    progress : callable, optional
        First ``Progress("label", done, found, {"found", "already_done"})`` (with
        ``shard``, also ``"folder_files"``: the files of the whole folder), then one event
        per finished file with ``{"file", "label", "error"}``.
    cancel : callable, optional
        Polled between files and while decoding; when it returns True the finished rows
        are kept, the files in progress dropped, and :class:`Cancelled` is raised.
    on_row : callable, optional
        ``on_row(row, result)`` after each row is on disk (``result`` is ``None`` for a
        file that failed).
    shard : Shard or str, optional
        Label only shard ``"I/N"`` of the files (1-based, see
        :mod:`avsc_core.label.shards`); the parameters file records it.
    engine : {"local", "ray"}
        Where the files are decoded and the networks run.
    address, workers, gpus_per_worker : optional
        ``engine="ray"`` only: the cluster to join (default: ``RAY_ADDRESS``, else a
        Ray started on this machine), the number of network workers (1) and the GPUs
        each one takes (0).
    format : {"csv", "parquet"}, optional
        The output's format; by default from ``out_csv``'s suffix (``.parquet``), else
        CSV (see :mod:`avsc_core.label.store`).
    segments_csv, vtt_dir, audacity_dir : str or Path, optional
        Also write the answers over time, as ``classify`` does: one CSV row per segment,
        WebVTT captions and Audacity label tracks (``<dir>/<file relative to folder>``
        with its suffix replaced). With ``resume`` the segments CSV keeps the rows of the
        files already labelled.
    min_confidence : float, optional
        A fused confidence under this marks the file ``low confidence`` in the
        ``needs_review`` column, beside ``branches disagree`` and ``unfamiliar``
        (:func:`avsc_core.inference.review.review_reasons`).
    runtime : str
        What runs the networks when ``model`` is a bundle or its folder
        (:func:`~avsc_core.inference.predictor.choose_runtime`; a Predictor keeps its own).
        The parameters file records it, and on a resumed run the ones before it
        (``earlier_runtimes``).

    While the files are labelled, numpy's BLAS runs on one thread in the whole process
    (:func:`avsc_core.blas.one_blas_thread`); the earlier setting is back afterwards.

    Raises
    ------
    OutputBusyError
        Another run (the command line or the app) is writing ``out_csv``.
    AvscError
        Bad folder, no media files, an output that cannot be written, an existing CSV
        without ``resume``, a CSV with rows but no parameters file, a CSV started with
        another model or other settings (another shard among them), a model that cannot
        be loaded, a bad shard, engine or format, Ray or pyarrow not installed.
    """
    folder, out_csv = Path(folder), Path(out_csv)
    check_min_confidence(min_confidence)
    ray_options = _engine_options(engine, jobs, address, workers, gpus_per_worker)
    shard = None if shard is None else Shard.parse(shard)
    store = LabelStore(out_csv, resolve_format(out_csv, format))
    timeline = {name: None if value is None else Path(value) for name, value in
                (("segments_csv", segments_csv), ("vtt_dir", vtt_dir),
                 ("audacity_dir", audacity_dir))}
    all_files = find_media_files(folder, recursive)
    files = all_files if shard is None else shard.select(all_files, folder)
    _check_outputs(out_csv)
    check_timeline_outputs(**timeline)
    if not all_files:
        hint = "" if recursive else " (add --recursive to look in subfolders)"
        raise AvscError(f"{folder}: no audio or video files found{hint}")
    with OutputLock(out_csv):
        earlier, died = _earlier_run(store, resume)
        predictor = load_predictor(model, runtime)
        # On a CPU the networks keep the cores busy while files decode: a single-threaded
        # video decoder costs the least CPU (0.083 against 0.094 CPU-s a 400x225 street
        # clip with frame threads, 0.30 against 0.35 at 720p), and so labels the most
        # files. On a GPU decoding is what the networks wait for: FFmpeg's threads.
        plan = plan_for(predictor, segment_seconds, hop_seconds, frames_per_second)
        if predictor.device == "cpu":
            plan = dataclasses.replace(plan, video_threads=1)
        params = run_params(out_csv, predictor.bundle, plan.media, folder, recursive, jobs,
                            shard=None if shard is None else str(shard), format=store.format,
                            engine=engine, runtime=predictor.runtime)
        params["min_confidence"] = min_confidence
        if ray_options is not None:
            params.update(workers=ray_options.workers,
                          gpus_per_worker=ray_options.gpus_per_worker)
        previous = previous_params(out_csv) if earlier else None
        if previous is not None:  # avsc before --frames-per-second ran at the model's rate
            previous.setdefault("frames_per_second", predictor.bundle.media.frames_per_second)
        check_resume(out_csv, len(earlier), previous, params)
        params["started"] = previous.get("started", now()) if previous else now()
        if previous:
            params["resumed"] = now()
            # Rows written by another runtime (an export made since, a GPU machine) stay.
            before = {*previous.get("earlier_runtimes", []), previous.get("runtime")}
            before -= {None, predictor.runtime}
            if before:
                params["earlier_runtimes"] = sorted(before)
        recorder = Recorder(store, params, files, folder, earlier, progress, on_row,
                            folder_files=None if shard is None else len(all_files),
                            sidecars=sidecar_names(
                                [p.relative_to(folder).as_posix() for p in all_files],
                                flat=False))
        if ray_options is None or not recorder.todo(files):
            return _run(recorder, files, died, predictor, plan, jobs, cancel, timeline)
        from avsc_core.label.ray_engine import RayPool

        with RayPool(predictor, ray_options, params["model_sha256"]) as pool:
            return _run(recorder, files, died, predictor, plan, jobs, cancel, timeline, pool)


def _run(
    recorder: Recorder,
    files: list[Path],
    died: list[str],
    predictor: Predictor,
    plan: InputPlan,
    jobs: int,
    cancel: Callable[[], bool] | None,
    timeline: dict[str, Path | None],
    ray_pool: RayPool | None = None,
) -> LabelSummary:
    """The labelling itself, once the CSV is locked and the run's settings checked."""
    started = time.monotonic()
    already_done = recorder.found_done
    recorder.open(timeline)
    params_file = recorder.save_params(finished=False)
    if recorder.progress:
        info = {"found": len(files), "already_done": already_done}
        if recorder.folder_files is not None:
            info["folder_files"] = recorder.folder_files
        recorder.progress(Progress("label", already_done, len(files), info))
    completed = False
    try:
        recorder.record_deaths(died)
        todo = recorder.todo(files)
        workers = min(jobs - 1, len(todo))
        # The networks keep the cores busy, so numpy's products in this process run on
        # one thread for the whole run (see avsc_core.blas); decoder processes and Ray's
        # tasks compute spectrograms, which limit themselves.
        with one_blas_thread():
            if ray_pool is not None:
                ray_pool.label(todo, plan, recorder, cancel)
            elif workers >= 1 and len(todo) > 1:
                _label_with_decoders(todo, workers, predictor, plan, recorder, cancel)
            else:
                _label_in_process(todo, predictor, plan, recorder, cancel)
        completed = True
    finally:
        recorder.close()
        recorder.save_params(finished=False)
        if not completed:
            recorder.store.stopped(recorder.ordered_rows())
    recorder.store.save(recorder.ordered_rows())
    recorder.save_params(finished=True)
    return LabelSummary(
        out_csv=recorder.out_csv,
        params=params_file,
        found=len(files),
        already_done=already_done,
        labelled=recorder.labelled,
        failed=recorder.failed,
        seconds=time.monotonic() - started,
    )
