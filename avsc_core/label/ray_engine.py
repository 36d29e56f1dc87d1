"""Labelling on a Ray cluster: decoding as CPU tasks, the networks in a pool of actors.

``avsc label ... --engine ray [--address ADDR] [--workers N] [--gpus-per-worker G]``.
Each file is decoded by a Ray task (one CPU) that streams its batches of network inputs
(a Ray generator); ``N`` actors each load the model once and run the networks on those
batches; this process assembles each file's answer and writes its row through the same
:class:`~avsc_core.label.run.Recorder` as the local engine, so the CSV, its parameters
file, ``--resume`` and the answers over time are the same.

Why plain tasks and actors rather than Ray Data's ``map_batches`` with an actor pool:

- a failure must cost one row, not a block: Ray Data fails the whole dataset on an
  error, or (``max_errored_blocks``) drops the block's rows; here each file's failure is
  its own row, and a file whose decoder or network process died starts over on a fresh
  one (Ray restarts a dead network worker), a file that kills one twice gets a failed
  row;
- a file is a variable number of segments and its answer needs all of them, in order:
  here the batches of one file are tracked and joined without a shuffle or a group-by;
- rows are written as files finish, so an interrupted run resumes where it stopped;
- Ray core is the only dependency (Ray Data also needs pandas and more).

Memory stays flat whatever the number or the length of the files: at most
:data:`BATCHES_AHEAD` batches of a file wait for or are in the networks, its decoder
pauses :data:`BATCHES_AHEAD` batches ahead of this process (generator back-pressure), and
at most :data:`FILES_PER_DECODER` files per decoding CPU are under way. This process
never fetches the arrays themselves: the actors return the batch without them, with the
predictions.

On a cluster, every node needs the same avsc installed (``pip install 'avsc[cluster]'``),
and the model folder and the media at the same paths (a shared file system).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import ray
from ray.exceptions import ActorDiedError, RayActorError, RayError, RayTaskError

from avsc_core.bundle import MANIFEST
from avsc_core.bundle.manifest import sha256
from avsc_core.config import FeatureConfig
from avsc_core.errors import AvscError, failure_reason
from avsc_core.features import FeatureExtractor
from avsc_core.inference.classify import ResultBuilder
from avsc_core.inference.decoding import decode_file
from avsc_core.inference.inputs import SEGMENT_BATCH, InputPlan, SegmentBatch
from avsc_core.progress import Cancelled

if TYPE_CHECKING:
    from avsc_core.inference.predictor import Predictor, SegmentPredictions
    from avsc_core.label.run import RayOptions, Recorder

log = logging.getLogger(__name__)

# The network actors' names start with this (they show so in `ray list actors`).
ACTOR_NAME = "avsc-networks"
# A file whose decoder or network process died is tried this many more times, then failed.
RETRIES = 1
# Batches of one file waiting for, or in, the networks.
BATCHES_AHEAD = 2
# Files under way per CPU left for decoding.
FILES_PER_DECODER = 2
# Longest wait for news before polling the cancel flag again (s).
POLL_SECONDS = 0.5


@functools.lru_cache(maxsize=4)
def _extractor(features: FeatureConfig, sample_rate: int) -> FeatureExtractor:
    # A Ray worker process decodes many files: keep its CQT kernels between them.
    return FeatureExtractor(features, sample_rate)


def decode_batches(path: str, plan: InputPlan, batch_size: int) -> Iterator[Any]:
    """Ray task: one file's network inputs, streamed.

    Yields ``("info", MediaInfo)``, then for each batch ``("batch", None)`` followed by the
    :class:`SegmentBatch` itself (so that the driver reads the small markers and hands the
    batches to the actors unread), and last ``("done", None)`` or ``("error", reason)``.
    """
    extractor = _extractor(plan.features, plan.media.sample_rate)
    for kind, _, value in decode_file(0, path, plan, extractor, batch_size):
        if kind == "batch":
            yield ("batch", None)
            yield value
        else:
            yield (kind, value)


class NetworkWorker:
    """Ray actor: the model's networks, loaded once, run on batches of one file or another."""

    def __init__(self, model: str, runtime: str, segment_frames: int | None = None):
        from avsc_core.bundle import load_bundle
        from avsc_core.inference.predictor import Predictor

        self.model = model
        self.predictor = Predictor(load_bundle(model), runtime=runtime)
        if segment_frames is not None:  # as the driver's plan has them
            self.predictor.fit_frames(segment_frames)

    def identity(self) -> str:
        """The SHA-256 of the model's manifest, as this worker sees it."""
        return sha256(Path(self.model) / MANIFEST)

    def predict(self, batch: SegmentBatch) -> tuple[SegmentBatch, SegmentPredictions]:
        """The predictions, and ``batch`` without its arrays (all the driver needs)."""
        predictions = self.predictor.predict(batch.features, batch.frames)
        return dataclasses.replace(batch, features=None, frames=None), predictions


@dataclass
class _Actor:
    """A network worker: its calls under way, and whether it is back after dying."""

    handle: Any
    busy: int = 0
    # Counts its deaths seen here: the first failed call of each death is blamed on its
    # file; the calls that fail with it (queued, or sent while it restarted) are not.
    life: int = 0
    # A call that tells when it answers again, after a death; no batch is sent meanwhile.
    probe: Any = None


@dataclass
class _Call:
    ref: Any
    actor: _Actor
    life: int


@dataclass
class _File:
    """One file under way: its decoding stream and its batches in the networks."""

    index: int
    path: Path
    stream: Any = None
    attempt: int = 0
    builder: ResultBuilder | None = None
    # The next object of the stream is a batch (a "batch" marker came first).
    batch_next: bool = False
    decoded: bool = False
    # Network calls of its batches, in batch order.
    calls: collections.deque[_Call] = field(default_factory=collections.deque)


class _Pipeline:
    """The files under way on the cluster, from decoding to their rows."""

    def __init__(
        self,
        predictor: Predictor,
        plan: InputPlan,
        recorder: Recorder,
        actors: list[_Actor],
        max_files: int,
    ):
        self.plan = plan
        self.plan_ref = ray.put(plan)
        self.classes = predictor.bundle.classes
        self.recorder = recorder
        self.actors = actors
        self.max_files = max_files
        self.decode = ray.remote(decode_batches).options(
            num_cpus=1,
            # The pipeline retries a file itself, from its start: a retried stream would
            # repeat the batches already handed on.
            max_retries=0,
            # A marker and a batch object per batch: BATCHES_AHEAD batches ahead.
            _generator_backpressure_num_objects=2 * BATCHES_AHEAD,
        )
        self.files: dict[int, _File] = {}

    def start(self, file: _File) -> None:
        file.stream = self.decode.remote(os.path.abspath(file.path), self.plan_ref,
                                         SEGMENT_BATCH)
        self.files[file.index] = file

    def run(self, todo: list[tuple[int, Path]], cancel: Callable[[], bool] | None) -> None:
        pending = collections.deque(_File(index, path) for index, path in todo)
        while pending or self.files:
            if cancel is not None and cancel():
                raise Cancelled()
            while pending and len(self.files) < self.max_files:
                self.start(pending.popleft())
            owners: dict[Any, tuple[Any, str]] = {
                a.probe: (a, "probe") for a in self.actors if a.probe is not None}
            can_hand_on = len(owners) < len(self.actors)
            for file in self.files.values():
                if file.calls:
                    owners[file.calls[0].ref] = (file, "call")
                if (not file.decoded and len(file.calls) < BATCHES_AHEAD
                        and (can_hand_on or not file.batch_next)):
                    owners[file.stream] = (file, "stream")
            # fetch_local=False: a ready batch stays where it is, for an actor to read.
            ready, _ = ray.wait(list(owners), num_returns=1, timeout=POLL_SECONDS,
                                fetch_local=False)
            for waitable in ready:
                owner, what = owners[waitable]
                if what == "stream":
                    self._next_object(owner)
                elif what == "call":
                    self._next_answer(owner)
                else:
                    self._probed(owner)

    def _next_object(self, file: _File) -> None:
        try:
            ref = next(file.stream)
        except StopIteration:
            self._retry(file, "decoding stopped early (its Ray worker died)")
            return
        if file.batch_next:
            file.batch_next = False
            actor = min((a for a in self.actors if a.probe is None), key=lambda a: a.busy)
            actor.busy += 1
            file.calls.append(_Call(actor.handle.predict.remote(ref), actor, actor.life))
            return
        try:
            kind, value = ray.get(ref)
        except RayError as exc:
            log.debug("decoding %s crashed", file.path, exc_info=True)
            self._retry(file, f"decoding crashed ({_short(exc)})")
            return
        if kind == "info":
            try:
                file.builder = ResultBuilder(file.path, value, self.classes, self.plan)
            except Exception as exc:  # noqa: BLE001 - a failure belongs to this file only
                self._fail(file, failure_reason(exc))
        elif kind == "batch":
            file.batch_next = True
        elif kind == "done":
            file.decoded = True
            self._finish_if_complete(file)
        else:
            self._fail(file, value)

    def _next_answer(self, file: _File) -> None:
        call = file.calls.popleft()
        call.actor.busy -= 1
        try:
            batch, predictions = ray.get(call.ref)
        except RayTaskError as exc:
            # The networks raised on this file's inputs: its own failure, not retried.
            cause = exc.cause if isinstance(exc.cause, BaseException) else exc
            log.debug("the networks failed on %s", file.path, exc_info=True)
            self._fail(file, failure_reason(cause))
            return
        except RayActorError as exc:
            self._actor_died(file, call, exc)
            return
        except RayError as exc:
            # The batch was lost with its node: the file starts over.
            log.warning("the inputs of %s were lost (%s)", file.path, _short(exc))
            self._retry(file, f"its decoded inputs were lost ({_short(exc)})")
            return
        try:
            file.builder.add(batch, predictions)
        except Exception as exc:  # noqa: BLE001 - a failure belongs to this file only
            self._fail(file, failure_reason(exc))
            return
        self._finish_if_complete(file)

    def _actor_died(self, file: _File, call: _Call, exc: RayActorError) -> None:
        """A network call failed with its worker: Ray restarts the worker (reloading the
        model); no batch goes to it until it answers again, and the file starts over."""
        actor = call.actor
        if call.life != actor.life:
            self._retry(file, "", blame=False)  # it died on another file, already counted
            return
        log.warning("a network worker died while on %s (%s)", file.path, _short(exc))
        actor.life += 1
        actor.probe = actor.handle.identity.remote()
        self._retry(file, f"the network worker died on this file ({_short(exc)})")

    def _probed(self, actor: _Actor) -> None:
        try:
            ray.get(actor.probe)
        except ActorDiedError as exc:
            raise AvscError(f"a Ray network worker died and cannot restart ({exc}); the "
                            "finished rows are kept: --resume once the cluster is sound") from None
        except RayActorError:
            # Still restarting: calls sent meanwhile may fail rather than wait.
            actor.probe = actor.handle.identity.remote()
            return
        actor.probe = None

    def _finish_if_complete(self, file: _File) -> None:
        if not (file.decoded and not file.calls):
            return
        self._drop(file)
        try:
            result = file.builder.finish()
        except Exception as exc:  # noqa: BLE001 - "no segments could be decoded"
            self.recorder.record(file.index, None, failure_reason(exc))
        else:
            self.recorder.record(file.index, result, None)

    def _drop(self, file: _File) -> None:
        """Forget ``file``'s stream and calls (the calls' answers are not wanted)."""
        del self.files[file.index]
        if not file.decoded:
            ray.cancel(file.stream)
        for call in file.calls:
            call.actor.busy -= 1
        file.calls.clear()

    def _fail(self, file: _File, reason: str) -> None:
        self._drop(file)
        self.recorder.record(file.index, None, reason)

    def _retry(self, file: _File, reason: str, blame: bool = True) -> None:
        """Start ``file`` over; when ``blame``, that counts as one of its tries, and a
        file out of tries gets a failed row with ``reason``."""
        if blame and file.attempt >= RETRIES:
            self._fail(file, reason + f"; tried {RETRIES + 1} times")
            return
        self._drop(file)
        self.start(_File(file.index, file.path, attempt=file.attempt + blame))

    def close(self) -> None:
        """Stop the files still under way (after an error or a cancel)."""
        for file in list(self.files.values()):
            self._drop(file)


def _short(exc: BaseException) -> str:
    return type(exc).__name__


def _connect(address: str | None) -> bool:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``, or start one here) unless this
    process already did; returns whether it was joined here (to leave it at the end)."""
    if ray.is_initialized():
        return False
    # Ray's notices (its start-up, its security advice) are not the user's business;
    # its errors reach this process as exceptions.
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        options["include_dashboard"] = False  # a Ray of this run only: nobody to look
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise AvscError(f"--address {address or os.environ.get('RAY_ADDRESS', '')}: "
                        f"cannot join the Ray cluster ({exc})") from None
    return True


def _start_actors(predictor: Predictor, options: RayOptions, identity: str) -> list[_Actor]:
    cpus = ray.cluster_resources().get("CPU", 0)
    if cpus < options.workers + 1:
        raise AvscError(f"--workers {options.workers}: the Ray cluster has {cpus:g} CPUs, "
                        "which leaves none for decoding; use fewer workers")
    gpus = ray.cluster_resources().get("GPU", 0)
    if options.gpus_per_worker * options.workers > gpus:
        raise AvscError(f"--gpus-per-worker {options.gpus_per_worker:g} x --workers "
                        f"{options.workers}: the Ray cluster has {gpus:g} GPUs")
    worker = ray.remote(NetworkWorker)
    run = uuid.uuid4().hex[:8]
    model = os.path.abspath(predictor.bundle.root)
    actors = [
        _Actor(worker.options(
            name=f"{ACTOR_NAME}-{run}-{i}",
            num_cpus=1,
            num_gpus=options.gpus_per_worker,
            # A dead worker comes back (reloading the model) and its files start over;
            # the pipeline, not Ray, retries them, so it knows which file each call was.
            max_restarts=-1,
            max_task_retries=0,
        ).remote(model, predictor.runtime, predictor.segment_frames))
        for i in range(options.workers)
    ]
    try:
        seen = ray.get([a.handle.identity.remote() for a in actors])
    except RayError as exc:
        for actor in actors:
            ray.kill(actor.handle)
        first_line = next((line for line in str(exc).splitlines() if line.strip()), "")
        raise AvscError(f"{model}: the Ray network workers cannot load the model "
                        f"({_short(exc)}: {first_line.strip()})") from None
    if any(s != identity for s in seen):
        for actor in actors:
            ray.kill(actor.handle)
        raise AvscError(f"{model}: the Ray workers see another model at this path "
                        "(its manifest differs); give every node the same model")
    return actors


class RayPool:
    """The cluster and the network workers of one run; use as a context manager.

    Entering joins the cluster (or starts a Ray here) and starts the workers, so that a
    cluster that cannot serve the run is refused before any output is written; leaving
    stops the workers, and the Ray it started.

    Raises
    ------
    AvscError
        From ``__enter__``: the cluster cannot be joined, has too few CPUs or GPUs for
        ``options``, or its workers cannot load the model.
    """

    def __init__(self, predictor: Predictor, options: RayOptions, identity: str):
        self.predictor = predictor
        self.options = options
        self.identity = identity
        self.actors: list[_Actor] = []
        self._joined_here = False

    def __enter__(self) -> Self:
        self._joined_here = _connect(self.options.address)
        try:
            self.actors = _start_actors(self.predictor, self.options, self.identity)
        except BaseException:
            self._leave()
            raise
        return self

    def label(
        self,
        todo: list[tuple[int, Path]],
        plan: InputPlan,
        recorder: Recorder,
        cancel: Callable[[], bool] | None,
    ) -> None:
        """Label ``todo`` (``(index, path)`` pairs), writing each row through ``recorder``.

        Raises
        ------
        Cancelled
            ``cancel()`` returned True; the rows written so far are kept.
        """
        if not todo:
            return
        decoders = max(1, int(ray.cluster_resources().get("CPU", 1)) - self.options.workers)
        pipeline = _Pipeline(self.predictor, plan, recorder, self.actors,
                             max_files=FILES_PER_DECODER * decoders)
        try:
            pipeline.run(todo, cancel)
        finally:
            pipeline.close()

    def __exit__(self, *exc: object) -> None:
        self._leave()

    def _leave(self) -> None:
        for actor in self.actors:
            ray.kill(actor.handle)
        self.actors = []
        if self._joined_here:
            ray.shutdown()
            self._joined_here = False
