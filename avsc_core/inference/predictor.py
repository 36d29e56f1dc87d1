"""Probabilities from a two-phase bundle for a file's segments, per backbone and branch.

A branch whose modality is missing (no audio track, no video stream) is ``None``, and the
fused answer then comes from the branch that exists, exactly as the trained heads allow:
the ``audio`` and ``visual`` heads were trained for that case.

Each head's answers are scaled by the temperature training fitted for it
(:mod:`avsc_core.inference.calibration`), and each segment gets an unfamiliarity score
when the bundle has one (:mod:`avsc_core.inference.unfamiliar`).

The networks run in Keras, or in an optimised copy written by ``avsc export``
(:mod:`avsc_core.export`) when the bundle has one: ``runtime="auto"`` takes the fastest
export recorded in the manifest (:func:`avsc_core.inference.runtime.auto_order`), and Keras
when there is none. An export is used only when all of its networks are present.

Where they run (:func:`choose_runtime`, :func:`runtime_device`): when a GPU is visible,
``runtime="auto"`` takes the bundle's ONNX export on ONNX Runtime's CUDA provider if
``onnxruntime-gpu`` is installed, else Keras on TensorFlow's GPU, else (with a warning)
the CPU as without a GPU; ``device="cpu"`` (or ``AVSC_DEVICE=cpu``) keeps them on the CPU.
The choice is logged (``avsc --debug`` shows it). On a GPU, frames and spectrograms go to
the networks in large batches, and ``avsc label`` gathers the segments of several files
into one batch (:attr:`Predictor.batch_segments`, :meth:`Predictor.predict_many`).

On a CPU, an export's networks run in :attr:`Predictor.lanes` threads side by side
(TFLite, ONNX Runtime and OpenVINO compute without the GIL), each network on one thread: the frames
of each visual network are split between the lanes (an instance of the network per lane,
resized to its share of the frames: the same answers, since every frame goes through the
network on its own), and the audio networks go to the least loaded lane. Compared with
each network in turn on all cores, no operator waits for its slowest thread (which a
machine shared with other work makes frequent), and the lanes' work stays even.
:meth:`Predictor.submit` hands a file's work to the lanes and returns at once: ``avsc
label`` hands over the next file's before it waits for this one's answer, so that a lane
through with its share goes on to the next file instead of waiting for the others (on
the six street videos that took both cores from 1.83 to 1.94 busy on average).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from avsc_core.backbones import AUDIO, BRANCHES, FUSED, MODALITIES, VISUAL, inputs_needed
from avsc_core.bundle import Bundle
from avsc_core.errors import AvscError
from avsc_core.inference.backbones import (
    backbone_runner,
    run_audio_backbone,
    run_frames,
    run_visual_backbone,
    segment_means,
)
from avsc_core.inference.calibration import apply_temperature, temperatures
from avsc_core.inference.device import (
    gpu_visible,
    onnx_cuda,
    requested_device,
    tensorflow_gpus,
    usable_cores,
)
from avsc_core.inference.runtime import RESIZABLE, engine_title, overflows_here
from avsc_core.inference.unfamiliar import EMBEDDING, load_familiarity

log = logging.getLogger(__name__)

KERAS = "keras"

# Segments of several files gathered into one batch of network inputs on a GPU
# (16 ten-second segments: 320 frames per call of a visual network).
GPU_BATCH_SEGMENTS = 16
# Inputs per call of a Keras network: frames of a visual network, spectrograms of an
# audio one (exports have the batch they were written with).
CPU_BATCH = {VISUAL: 20, AUDIO: 16}
GPU_BATCH = {VISUAL: 320, AUDIO: 64}
# Fit the visual networks' calls to segments of at least 1/MIN_CALL_SHARE of the exported
# batch (Predictor.fit_frames).
MIN_CALL_SHARE = 4


@dataclass
class SegmentPredictions:
    """Per-segment probabilities ``(segments, classes)``; ``None`` where a branch cannot run.

    ``branches`` are calibrated, ``uncalibrated`` the same answers before temperature
    scaling. ``unfamiliar`` holds each segment's unfamiliarity score and
    ``unfamiliar_threshold`` the model's threshold for a file's score (both ``None`` when
    the bundle has no such score).
    """

    backbones: dict[str, np.ndarray] = field(default_factory=dict)
    branches: dict[str, np.ndarray | None] = field(default_factory=dict)
    uncalibrated: dict[str, np.ndarray | None] = field(default_factory=dict)
    unfamiliar: np.ndarray | None = None
    unfamiliar_threshold: float | None = None


def choose_runtime(bundle: Bundle, runtime: str = "auto", device: str = "auto") -> str:
    """The runtime :class:`Predictor` uses: ``"keras"`` or an export key (``"tflite-int8"``).

    Parameters
    ----------
    runtime : str
        ``"auto"`` (on a usable GPU: the ONNX export on ONNX Runtime's CUDA provider, else
        Keras on TensorFlow's GPU; on a CPU: the fastest export, else Keras),
        ``"keras"``, a format (``"tflite"``, ``"onnx"``: its fastest precision) or an
        export key.
    device : {"auto", "cpu", "gpu"}
        ``"cpu"`` never picks a runtime for its GPU; ``"auto"`` reads ``AVSC_DEVICE``.

    Raises
    ------
    AvscError
        When the requested export is not in the bundle, or ``device="gpu"`` and no
        runtime can use one.
    """
    return _choose(bundle, runtime, device)[0]


def _choose(bundle: Bundle, runtime: str, device: str) -> tuple[str, str | None]:
    """:func:`choose_runtime`'s choice, and the export auto passed over for it on this CPU
    (one whose int8 layers overflow here, which it would otherwise have run), if any."""
    from avsc_core.inference.runtime import AUTO_ORDER, FORMATS, auto_order

    exports = bundle.exports
    complete = [k for k in exports if _complete(bundle, exports[k])]
    order = auto_order(complete)
    ranked = sorted(complete, key=lambda k: order.index(k) if k in order else 99)
    # Auto passes over an export whose int8 layers overflow here; a format asked for takes
    # it last (Predictor then warns, as for such an export asked for by name).
    overflowing = [k for k in ranked if overflows_here(exports[k])]
    passed_over = ranked[0] if ranked and ranked[0] in overflowing else None
    ranked = [k for k in ranked if k not in overflowing]
    if runtime != "auto":
        ranked += overflowing
    device = requested_device(device)
    if runtime == KERAS:
        return KERAS, None
    if runtime == "auto":
        if device != "cpu" and gpu_visible():
            onnx = [k for k in ranked if runs_on_cuda(exports[k])]
            if onnx and onnx_cuda():
                return onnx[0], None
            if tensorflow_gpus():
                return KERAS, None
            log.warning(
                "a GPU is visible but no runtime here can use it (ONNX Runtime's CUDA "
                "provider needs onnxruntime-gpu and an ONNX export; Keras needs "
                "TensorFlow with CUDA): the networks run on the CPU")
        if device == "gpu":
            raise AvscError("--device gpu: no GPU this model's runtimes can use (install "
                            "onnxruntime-gpu and write an ONNX export, or TensorFlow "
                            "with CUDA)")
        chosen = ranked[0] if ranked else KERAS
        if passed_over:
            log.warning(
                "%s: %s runs the networks, not the %s export: without VNNI this CPU's int8 "
                "kernels overflow on it (labels would differ from fp32's; --runtime %s "
                "runs it anyway)", bundle.root, chosen, passed_over, passed_over)
        return chosen, passed_over
    if runtime in FORMATS:
        matching = [k for k in ranked if exports[k]["format"] == runtime]
        if device != "cpu" and gpu_visible():
            matching.sort(key=lambda k: not runs_on_cuda(exports[k]))
        if matching:
            return matching[0], None
    elif runtime in complete:
        return runtime, None
    have = ", ".join(complete) or "none"
    if runtime not in FORMATS and runtime not in AUTO_ORDER:
        raise AvscError(f"unknown runtime {runtime!r}: auto, keras, a format ("
                        f"{', '.join(FORMATS)}) or an export of this model ({have})")
    raise AvscError(
        f"{bundle.root}: no {runtime} export in this model (exports: {have}); "
        f"write one with 'avsc export --model {bundle.root} --format ...'"
    )


def runtime_device(bundle: Bundle, runtime: str, device: str = "auto") -> str:
    """Where ``runtime`` (as :func:`choose_runtime` returns it) runs: ``"cpu"`` or ``"gpu"``."""
    if requested_device(device) == "cpu" or not gpu_visible():
        return "cpu"
    if runtime == KERAS:
        return "gpu" if tensorflow_gpus() else "cpu"
    return "gpu" if runs_on_cuda(bundle.exports[runtime]) and onnx_cuda() else "cpu"


def runs_on_cuda(export: Mapping) -> bool:
    """Whether ONNX Runtime's CUDA provider is to run ``export`` (a manifest entry): the
    fp32 ONNX one. A calibrated int8 graph is written for OpenVINO on the CPU; on CUDA its
    QDQ layers run no faster than fp32 ones, only less exactly."""
    return export["format"] == "onnx" and export.get("precision") == "fp32"


# Most lanes a Predictor opens by default: each holds an instance of every visual network.
MAX_LANES = 4


def default_lanes(bundle: Bundle, runtime: str, device: str, threads: int) -> int:
    """Lanes for an export on the CPU: one per core (at most :data:`MAX_LANES`) when its
    visual networks' frames can be split between lanes (TFLite, OpenVINO), else one per
    visual network (ONNX Runtime: each runs whole in a lane); one for Keras and on a GPU, which schedule
    their own work."""
    if runtime == KERAS or device != "cpu" or threads < 2:
        return 1
    visual = [n for n in bundle.backbone_names
              if bundle.backbone_entry(n).get("modality") == VISUAL]
    if not visual:
        return 1
    if export_engine(bundle, runtime, device) in RESIZABLE:
        return min(threads, MAX_LANES)
    return max(1, min(len(visual), threads))


def export_engine(bundle: Bundle, runtime: str, device: str = "cpu") -> str:
    """The engine (:data:`~avsc_core.inference.runtime.ENGINES`) that runs export ``runtime``."""
    from avsc_core.inference.runtime import engine_for

    export = bundle.exports[runtime]
    return engine_for(export["format"], export.get("precision", "fp32"), device)


def _complete(bundle: Bundle, export: dict) -> bool:
    return set(export.get("backbones", {})) >= set(bundle.backbone_names) and set(
        export.get("heads", {})
    ) >= set(bundle.head_names)


class Predictor:
    """Runs the backbones and fusion heads of ``bundle`` on decoded arrays.

    Parameters
    ----------
    bundle : Bundle
    runtime : str
        See :func:`choose_runtime`; the choice is in :attr:`runtime`.
    threads : int, optional
        CPU threads of an exported runtime, shared by its lanes (all cores by default;
        give 1 per process when several run side by side). Keras keeps TensorFlow's own
        setting.
    device : {"auto", "cpu", "gpu"}
        See :func:`choose_runtime`; where the networks run is in :attr:`device`.
    lanes : int, optional
        Networks run side by side on the CPU (:func:`default_lanes` by default; 1 runs
        them one after the other, each on all ``threads``).
    batch_segments : int, optional
        Segments of several files ``avsc label`` gathers into one call of the networks
        (:data:`GPU_BATCH_SEGMENTS` on a GPU, 0 on a CPU: one file's batch at a time,
        since larger calls gain nothing there).
    """

    def __init__(self, bundle: Bundle, runtime: str = "auto", threads: int | None = None,
                 device: str = "auto", lanes: int | None = None,
                 batch_segments: int | None = None):
        self.bundle = bundle
        self.embedding_type = int(bundle.manifest.get("embedding_type", 2))
        # passed_over: the export auto did not run on this CPU, for describe().
        self.runtime, self.passed_over = _choose(bundle, runtime, device)
        self.device = runtime_device(bundle, self.runtime, device)
        # What runs the export's networks (None: Keras).
        self.engine = (None if self.runtime == KERAS
                       else export_engine(bundle, self.runtime, self.device))
        if self.runtime == KERAS and self.device == "cpu" and gpu_visible():
            _hide_gpus_from_tensorflow()
        cores = threads or usable_cores()
        self.lanes = max(1, lanes if lanes is not None
                         else default_lanes(bundle, self.runtime, self.device, cores))
        # Each network gets its lane's share of the cores.
        self.threads = threads if self.lanes == 1 else max(1, cores // self.lanes)
        self.batch_segments = (batch_segments if batch_segments is not None
                               else GPU_BATCH_SEGMENTS if self.device == "gpu" else 0)
        self.batch = GPU_BATCH if self.device == "gpu" else CPU_BATCH
        self.temperatures = temperatures(bundle.manifest)
        self.familiarity = load_familiarity(bundle)
        self._runners: dict[str, object] = {}
        # Visual backbone -> frames per call of its instance in each lane (None: it runs
        # whole, in one lane); (backbone, lane) -> that instance.
        self._split: dict[str, int | None] = {}
        self._replicas: dict[tuple[str, int], object] = {}
        # The lanes' threads, and the estimated seconds of work each has been given and
        # not yet done (under _pool_lock); a lock per network that runs whole in a lane.
        self._pools: list[ThreadPoolExecutor] = []
        self._pool_lock = threading.Lock()
        self._queued = [0.0] * self.lanes
        self._whole_locks: dict[str, threading.Lock] = {}
        # A segment's frames, as the last plan has them (see fit_frames); None: not
        # fitted, the export's batch.
        self.segment_frames: int | None = None
        # Seconds each backbone took last (visual first until measured): longest first.
        self._cost: dict[str, float] = {}
        log.info("networks: %s", self.describe())
        if (self.engine == "onnxruntime" and self.device == "cpu"
                and bundle.exports[self.runtime].get("precision") == "int8"):
            log.warning("%s: the %s export is written for OpenVINO, which is not installed; "
                        "ONNX Runtime runs it slower than fp32 (pip install openvino, in "
                        "avsc's export extra)", bundle.root, self.runtime)
        if self.runtime != KERAS and overflows_here(bundle.exports[self.runtime]):
            log.warning("%s: this CPU (or oneDNN's ONEDNN_MAX_CPU_ISA) has no VNNI, on which "
                        "the %s export's int8 layers overflow: its labels may differ from "
                        "fp32's (an onnx bf16 or tflite int8 export keeps them)",
                        bundle.root, self.runtime)

    def describe(self) -> str:
        """Which runtime runs the networks, where, and how (the line logged at start),
        and the export auto passed over on this CPU, if any."""
        line = self._describe_runtime()
        if self.passed_over:
            line += (f"; not the {self.passed_over} export, whose int8 layers overflow on "
                     "a CPU without VNNI")
        return line

    def _describe_runtime(self) -> str:
        if self.runtime == KERAS:
            where = ("TensorFlow's GPU " + ", ".join(tensorflow_gpus()) if self.device == "gpu"
                     else "the CPU")
            return f"Keras on {where}"
        if self.device == "gpu":
            return f"{self.runtime} export on the GPU (ONNX Runtime's CUDA provider)"
        resizable = self.engine in RESIZABLE
        engine = engine_title(self.engine)
        cores = self.threads or usable_cores()
        threads = f"{cores} thread{'s' if cores != 1 else ''}"
        if self.lanes == 1:
            return f"{self.runtime} export on the CPU ({engine}, {threads})"
        how = ("visual networks' frames split between them" if resizable
               else "networks shared out between them")
        return (f"{self.runtime} export on the CPU ({engine}, {self.lanes} lanes of "
                f"{threads} side by side, {how})")

    def _export_network(self, group: str, name: str, batch: int | None = None):
        from avsc_core.inference.runtime import open_network

        export = self.bundle.exports[self.runtime]
        entry = export[group][name]
        return open_network(export["format"], self.bundle.export_file(entry), entry,
                            self.threads, self.device, spin=self.lanes == 1, batch=batch,
                            engine=self.engine, exact=group == "heads")

    def backbone(self, name: str):
        """The runner of backbone ``name``: ``runner(x) -> {"emb1", "emb2", "probs"}``."""
        if name not in self._runners:
            if self.runtime == KERAS:
                self._runners[name] = backbone_runner(self.bundle.backbone(name))
            else:
                self._runners[name] = self._open_backbone(name)
        return self._runners[name]

    def _open_backbone(self, name: str):
        batch = self._visual_batch(name)
        if batch is not None:
            try:
                return self._export_network("backbones", name, batch=batch)
            except AvscError as exc:  # a graph that keeps its batch: padded calls
                log.debug("%s keeps its exported batch: %s", name, exc)
        return self._export_network("backbones", name)

    def fit_frames(self, frames: int) -> None:
        """Size the visual networks' calls for segments of ``frames`` frames.

        An exported network takes a fixed batch (a segment's frames at the model's rate,
        20); a file of one segment with fewer frames (fewer frames a second, shorter
        segments) would be padded to it, and the padding costs as much as real frames.
        Where the engine can resize its graph (TFLite, OpenVINO) the calls take
        ``frames`` instead, down to a quarter of the batch; smaller segments (DCASE's 1-s
        ones, two frames each) come many to a file and fill the batch, and calls that
        small cost more a frame. Elsewhere this changes nothing. Networks loaded for
        another size are loaded again.
        """
        visual = [n for n in self.bundle.backbone_names if self._feature(n) == "frames"]
        before = {name: self._visual_batch(name) for name in visual}
        self.segment_frames = int(frames)
        for name in visual:
            if self._visual_batch(name) != before[name]:
                self._runners.pop(name, None)
                self._split.pop(name, None)
                self._replicas = {k: v for k, v in self._replicas.items() if k[0] != name}

    def _visual_batch(self, name: str) -> int | None:
        """The batch visual backbone ``name`` is opened with (None: the export's)."""
        if (self.segment_frames is None or self.runtime == KERAS
                or self.engine not in RESIZABLE or self._feature(name) != "frames"):
            return None
        batch = int(self.bundle.exports[self.runtime]["backbones"][name]["batch"])
        # Per frame, OpenVINO's calls of 5 to 20 frames cost about the same (ConvNeXtTiny
        # int8 24-25 ms, InceptionV3 8.2-9.0 ms, one thread); calls of 1 or 2 cost more.
        fits = batch // MIN_CALL_SHARE <= self.segment_frames < batch
        return self.segment_frames if fits else None

    def head(self, name: str):
        """Fusion head ``name`` as a function: ``{backbone: embeddings} -> probs``."""
        key = f"head/{name}"
        if key not in self._runners:
            if self.runtime == KERAS:
                model = self.bundle.head(name)

                def run(embeddings: dict[str, np.ndarray]) -> np.ndarray:
                    return np.asarray(model.predict_on_batch(embeddings), np.float32)

            else:
                network = self._export_network("heads", name)

                def run(embeddings: dict[str, np.ndarray]) -> np.ndarray:
                    return network(embeddings)["probs"]

            self._runners[key] = run
        return self._runners[key]

    def _feature(self, name: str) -> str:
        return self.bundle.backbone_feature(name)

    def needs(self) -> tuple[tuple[str, ...], bool]:
        """Spectrogram kinds and whether frames are needed by the bundle's backbones."""
        return inputs_needed(self._feature(name) for name in self.bundle.backbone_names)

    def _run_backbone(self, name: str, x: np.ndarray, visual: bool,
                      runner=None) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        runner = runner or self.backbone(name)
        if visual:
            out = run_visual_backbone(runner, x, self.batch[VISUAL])
        else:
            out = run_audio_backbone(runner, x, self.batch[AUDIO])
        self._cost[name] = time.perf_counter() - start
        return out

    def _lane_pool(self, lane: int) -> ThreadPoolExecutor:
        """Lane ``lane``'s thread: one per lane, so that a lane's work runs in the order it
        was given and its instances of the networks are never called twice at once."""
        with self._pool_lock:
            while len(self._pools) <= lane:
                self._pools.append(ThreadPoolExecutor(
                    1, thread_name_prefix=f"avsc-network-{len(self._pools)}"))
            return self._pools[lane]

    def _frames_per_lane(self, name: str) -> int | None:
        """Frames per call of each lane's instance of visual backbone ``name``, or
        ``None`` when it runs whole in one lane (Keras, ONNX Runtime, or a graph that cannot
        take another batch)."""
        if name not in self._split:
            split = None
            if self.runtime != KERAS and self.lanes > 1:
                export = self.bundle.exports[self.runtime]
                batch = self._visual_batch(name) or int(export["backbones"][name]["batch"])
                per_lane = -(-batch // self.lanes)
                if self.engine in RESIZABLE and batch > 1:
                    try:
                        for lane in range(self.lanes):
                            self._replicas[(name, lane)] = self._export_network(
                                "backbones", name, batch=per_lane)
                        split = per_lane
                    except AvscError as exc:
                        log.debug("%s runs whole in one lane: %s", name, exc)
            self._split[name] = split
        return self._split[name]

    def _run_lane(self, work: list[tuple], lane: int, estimate: float) -> dict:
        out = {}
        try:
            for kind, name, x, extra in work:
                if kind == "frames":  # extra: this lane's instance of the network
                    runner = extra
                    start = time.perf_counter()
                    out[(name, lane)] = run_frames(runner, x, runner.batch_size)
                    out[("seconds", name, lane)] = time.perf_counter() - start
                else:
                    # One instance of a whole network serves every lane: two files' calls
                    # of it may be under way at once (see submit).
                    visual, runner = extra
                    with self._whole_locks[name]:
                        out[name] = self._run_backbone(name, x, visual, runner)
        finally:
            with self._pool_lock:
                self._queued[lane] -= estimate
        return out

    def backbone_outputs(
        self, features: dict[str, np.ndarray] | None, frames: np.ndarray | None
    ) -> dict[str, dict[str, np.ndarray]]:
        """``{backbone: {"emb1", "emb2", "probs"}}`` for the backbones the inputs can feed,
        in :attr:`lanes` threads side by side when there are several (see the module)."""
        return self._start_backbones(features, frames)()

    def _start_backbones(
        self, features: dict[str, np.ndarray] | None, frames: np.ndarray | None
    ) -> Pending[dict[str, dict[str, np.ndarray]]]:
        """Hand the backbones' work for these inputs to the lanes; return what waits for
        it and gives :meth:`backbone_outputs`' answer. With one lane the work is done
        here, before this returns."""
        jobs = []
        for name in self.bundle.backbone_names:
            feature = self._feature(name)
            if feature == "frames":
                if frames is not None:
                    jobs.append((name, frames, True))
            elif features is not None and feature in features:
                jobs.append((name, features[feature], False))
        if self.lanes == 1 or not jobs:
            done = {name: self._run_backbone(name, x, visual) for name, x, visual in jobs}
            return Pending([], lambda: done)
        lanes = self.lanes
        work: list[list[tuple]] = [[] for _ in range(lanes)]
        # Each lane starts with the work given to it before and not yet done, so that a
        # lane left with more by one call gets less by the next.
        with self._pool_lock:
            load = list(self._queued)
        added = [0.0] * lanes
        split: dict[str, tuple[int, int, int]] = {}
        whole = []
        for name, x, visual in jobs:
            per_lane = self._frames_per_lane(name) if visual else None
            if per_lane is None:
                whole.append((name, x, visual))
                continue
            flat = x.reshape((-1, *x.shape[2:]))
            step = -(-len(flat) // (lanes * per_lane)) * per_lane  # whole calls per lane
            pieces = [k for k in range(lanes) if k * step < len(flat)]
            split[name] = (x.shape[0], x.shape[1], len(pieces))
            cost = self._cost.get(name, 1e3)
            for k in pieces:
                piece = flat[k * step:(k + 1) * step]
                work[k].append(("frames", name, piece, self._replicas[(name, k)]))
                added[k] += cost * len(piece) / len(flat)
                load[k] += cost * len(piece) / len(flat)
        # Longest first, each to the lane with least to do (visual ones first until their
        # times are known).
        for name, x, visual in sorted(
                whole, key=lambda job: -self._cost.get(job[0], 1e3 if job[2] else 1.0)):
            runner = self.backbone(name)  # loaded here: loading is not thread-safe
            self._whole_locks.setdefault(name, threading.Lock())
            lane = int(np.argmin(load))
            work[lane].append(("whole", name, x, (visual, runner)))
            cost = self._cost.get(name, 1e3 if visual else 1.0)
            added[lane] += cost
            load[lane] += cost
        futures = []
        for lane, items in enumerate(work):
            if items:
                with self._pool_lock:
                    self._queued[lane] += added[lane]
                try:
                    futures.append(self._lane_pool(lane).submit(
                        self._run_lane, items, lane, added[lane]))
                except BaseException:
                    with self._pool_lock:
                        self._queued[lane] -= added[lane]
                    raise

        def collect() -> dict[str, dict[str, np.ndarray]]:
            out: dict = {}
            for future in futures:
                out.update(future.result())
            results = {}
            for name, _, _ in jobs:
                if name not in split:
                    results[name] = out[name]
                    continue
                segments, n_frames, pieces = split[name]
                parts = [out[(name, k)] for k in range(pieces)]
                self._cost[name] = sum(out[("seconds", name, k)] for k in range(pieces))
                results[name] = segment_means(
                    {key: np.concatenate([p[key] for p in parts]) for key in parts[0]},
                    segments, n_frames)
            return results

        return Pending(futures, collect)

    def submit(
        self,
        features: dict[str, np.ndarray] | None,
        frames: np.ndarray | None,
    ) -> Pending[SegmentPredictions]:
        """Start :meth:`predict` and return at once what gives its answer: call it (it
        waits for the lanes), or ask ``done()`` first whether that would wait.

        With several lanes, the backbones' work goes to the lanes' threads here and the
        fusion heads run in the thread that asks for the answer; with one, all of it is
        done before this returns. Submitting the next file's inputs before asking for
        this one's answer lets a lane that is through with its share of this file start
        on the next, instead of waiting for the other lanes (``avsc label`` does so).
        Each call's answers are those :meth:`predict` gives.
        """
        pending = self._start_backbones(features, frames)
        return Pending(pending.futures, lambda: self._finish(pending()))

    def predict(
        self,
        features: dict[str, np.ndarray] | None,
        frames: np.ndarray | None,
    ) -> SegmentPredictions:
        """Predict from spectrograms (kind -> ``(n, bins, frames, ch)``) and/or frames."""
        return self._finish(self.backbone_outputs(features, frames))

    def _finish(self, outputs: dict[str, dict[str, np.ndarray]]) -> SegmentPredictions:
        """The heads', calibration's and familiarity's answers from the backbones'."""
        result = SegmentPredictions()
        embeddings: dict[str, np.ndarray] = {}
        familiarity_inputs: dict[str, np.ndarray] = {}
        key = f"emb{self.embedding_type}"
        for name, out in outputs.items():
            result.backbones[name] = out["probs"]
            embeddings[name] = out[key]
            familiarity_inputs[name] = out[EMBEDDING]
        heads = self.bundle.manifest["heads"]
        raw = {branch: self._run_head(branch, heads, embeddings) for branch in BRANCHES}
        result.uncalibrated = with_fallback(raw)
        result.branches = with_fallback(
            {b: None if p is None else apply_temperature(p, self.temperatures.get(b, 1.0))
             for b, p in raw.items()}
        )
        if self.familiarity is not None:
            result.unfamiliar = self.familiarity.segment_scores(familiarity_inputs)
            result.unfamiliar_threshold = self.familiarity.threshold
        return result

    def predict_many(
        self, inputs: Sequence[tuple[dict[str, np.ndarray] | None, np.ndarray | None]]
    ) -> list[SegmentPredictions]:
        """:meth:`predict` for several ``(features, frames)`` batches (of one file or of
        several) with one call of each network per kind of batch.

        Batches with the same streams (the same spectrogram kinds, frames or not) are
        joined, predicted together and split again, so the answers are those of
        :meth:`predict` on each batch (every network treats its rows independently).
        """
        groups: dict[tuple, list[int]] = {}
        for i, (features, frames) in enumerate(inputs):
            groups.setdefault(_signature(features, frames), []).append(i)
        answers: list[SegmentPredictions | None] = [None] * len(inputs)
        for members in groups.values():
            if len(members) == 1:
                answers[members[0]] = self.predict(*inputs[members[0]])
                continue
            parts = [inputs[i] for i in members]
            features = (None if parts[0][0] is None else
                        {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]})
            frames = None if parts[0][1] is None else np.concatenate([p[1] for p in parts])
            joined = self.predict(features, frames)
            sizes = [_rows(*p) for p in parts]
            for i, piece in zip(members, split_predictions(joined, sizes)):
                answers[i] = piece
        return answers  # type: ignore[return-value]

    def _run_head(
        self, name: str, heads: dict, embeddings: dict[str, np.ndarray]
    ) -> np.ndarray | None:
        if name not in heads:
            return None
        inputs = heads[name]["inputs"]
        if not all(n in embeddings for n in inputs):
            return None
        return self.head(name)({n: embeddings[n] for n in inputs})


T = TypeVar("T")


class Pending(Generic[T]):
    """Work handed to the lanes: ``done()`` says whether it is through, calling it waits
    for the answer (and raises what the work raised)."""

    def __init__(self, futures: Sequence[Future], answer: Callable[[], T]):
        self.futures = list(futures)
        self._answer = answer

    def done(self) -> bool:
        return all(future.done() for future in self.futures)

    def __call__(self) -> T:
        return self._answer()


def _hide_gpus_from_tensorflow() -> None:
    """Keep Keras on the CPU (``device="cpu"``) although TensorFlow could see a GPU."""
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TensorFlow already started on its devices
        log.warning("TensorFlow has already started on the GPU: Keras stays there")


def _signature(features: dict[str, np.ndarray] | None, frames: np.ndarray | None) -> tuple:
    return (None if features is None else tuple(sorted((k, v.shape[1:]) for k, v in
                                                       features.items())),
            None if frames is None else frames.shape[1:])


def _rows(features: dict[str, np.ndarray] | None, frames: np.ndarray | None) -> int:
    if frames is not None:
        return len(frames)
    return len(next(iter(features.values()))) if features else 0


def split_predictions(joined: SegmentPredictions, sizes: Sequence[int]
                      ) -> list[SegmentPredictions]:
    """``joined`` cut into consecutive pieces of ``sizes`` segments."""
    bounds = np.cumsum([0, *sizes])

    def cut(a: np.ndarray | None, i: int) -> np.ndarray | None:
        return None if a is None else a[bounds[i]:bounds[i + 1]]

    return [
        SegmentPredictions(
            backbones={k: cut(v, i) for k, v in joined.backbones.items()},
            branches={k: cut(v, i) for k, v in joined.branches.items()},
            uncalibrated={k: cut(v, i) for k, v in joined.uncalibrated.items()},
            unfamiliar=cut(joined.unfamiliar, i),
            unfamiliar_threshold=joined.unfamiliar_threshold,
        )
        for i in range(len(sizes))
    ]


def with_fallback(branches: Mapping[str, np.ndarray | None]) -> dict[str, np.ndarray | None]:
    """The three branches' answers, ``fused`` taken from the branch that exists when the
    fused head cannot run (audio first, then visual).

    Everything that scores a model applies this rule (:class:`Predictor`, and the metrics
    training records), so that training and ``avsc evaluate`` agree on every clip.
    """
    answers = {branch: branches.get(branch) for branch in BRANCHES}
    for fallback in MODALITIES:
        if answers[FUSED] is None:
            answers[FUSED] = answers[fallback]
    return answers


def clip_probabilities(segment_probs: np.ndarray | None) -> np.ndarray | None:
    """A clip's probabilities: the mean over its segments."""
    if segment_probs is None:
        return None
    return segment_probs.mean(axis=0)
