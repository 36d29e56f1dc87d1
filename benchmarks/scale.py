"""Scale rehearsal: a synthetic TAU 2021 development set at TAU's media format, prepared,
looked up again, read and trained on, with every figure extrapolated to the real 12,291 clips.

    python benchmarks/scale.py [--clips 200] [--work DIR] [--presets tiny paper]
                               [--seconds 10] [--serial-clips 10] [--train-seconds 10] [--gpu]

The dataset is written in the real ``tau2021`` layout (``meta.csv``, ``audio/*.wav``,
``video/*.mp4``, ``evaluation_setup/fold1_{train,evaluate,test}.csv``) at TAU's format:
1280x720 30 fps H.264 video (with the same sound as AAC) and 48 kHz 24-bit stereo wav, the
synthetic scenes of :mod:`avsc_core.sampledata`, ``--clips`` clips spread over the ten
classes. With ``--work DIR`` it stays in ``DIR`` and later runs reuse (and extend) it; the
caches are rebuilt on every run, since their preparation is what is measured.

Printed, after the CPU line:

- preparation (``prepare_clips``) wall seconds and CPU seconds per clip with 1 process
  (``--serial-clips`` clips, after a one-clip warm-up) and with one per core (all clips,
  the workers' start-up included, as in a real run);
- cache MB per clip, and the second run's lookup of every clip's entries (``load_tau2021``
  and ``prepare_clips`` over the unchanged dataset: the index answers, no media is read);
- the input pipeline alone (``item_dataset``, no model): frames/s and spectrograms/s from
  that cache;
- training steps/s of each backbone of each preset (the compiled ``DeviceTrainer`` step of
  Phase I fed by the same pipeline, after warm-up steps), for ``--train-seconds`` each;
- each figure extrapolated to TAU 2021 (hours and GB).

``--gpu`` (on a machine with a GPU) trains in mixed precision and reports the backbones'
frames/s (spectrograms/s for the audio ones); its defaults (paper preset only, 200 clips)
are sized for a run of under 8 minutes on a many-core GPU machine.

Without ImageNet weights in the cache the paper's visual backbones are measured with random
weights (the speed is the same); the table says which.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from avsc_core.config import FEATURE_KINDS, FeatureConfig, MediaConfig
from avsc_core.datasets import TAU_CLASSES
from avsc_core.datasets.tau2021 import EVALUATE_FOLD, TRAIN_FOLD, load_tau2021
from avsc_core.features.prepare import PreparedClip, prepare_clips
from avsc_core.progress import Progress
from benchmarks.cache import cpu_seconds
from benchmarks.label import cpu_line

# TAU Urban Audio-Visual Scenes 2021, development set: all clips, and the ones a paper-preset
# epoch trains on (fold1_train's 8,646 less the 15 % held out for validation, as in the
# README's recipe table).
TAU_CLIPS = 12_291
TAU_TRAIN_CLIPS = 7_349
TAU_GB = 100.0
WIDTH, HEIGHT, FPS, SAMPLE_RATE = 1280, 720, 30, 48_000
CITIES = ("amsterdam", "barcelona", "helsinki", "lisbon", "london", "lyon", "milan", "paris",
          "prague", "stockholm", "vienna")
# Clips per recording location: a location's clips share a split, as in TAU.
PER_LOCATION = 2
HEADER_META = ("filename_audio", "filename_video", "scene_label", "identifier")


# --------------------------------------------------------------------------- the dataset

@dataclass(frozen=True)
class ClipName:
    """Clip ``index`` of the rehearsal set: its TAU-style names and split.

    Clip ``i`` is always the same clip (class ``i % 10``, its ``i // 10``-th), so a run with
    more clips reuses a smaller run's files.
    """

    index: int

    @property
    def label(self) -> str:
        return TAU_CLASSES[self.index % len(TAU_CLASSES)]

    @property
    def identifier(self) -> str:
        within = self.index // len(TAU_CLASSES)
        location = within // PER_LOCATION
        # Location numbers differ between classes, as TAU's do.
        number = 1000 * (self.index % len(TAU_CLASSES) + 1) + location
        return f"{CITIES[location % len(CITIES)]}-{number}"

    @property
    def stem(self) -> str:
        return f"{self.label}-{self.identifier}-{self.index // len(TAU_CLASSES)}"

    @property
    def evaluate(self) -> bool:
        """In ``fold1_evaluate`` (every third location, about TAU's 30 %)."""
        return (self.index // len(TAU_CLASSES) // PER_LOCATION) % 3 == 1


def write_tau_clip(root: Path, index: int, seconds: float, mtime: float) -> None:
    """Write clip ``index``'s wav and mp4 (atomically; an existing pair is kept).

    :func:`avsc_core.sampledata.write_clip` writes only an mp4; TAU's sound is a separate
    24-bit wav, so the sound is synthesised here once and written to both.
    """
    import soundfile

    from avsc_core.sampledata.encode import write_mp4
    from avsc_core.sampledata.looks import render
    from avsc_core.sampledata.scenes import LOOKS, SCENES, SOUNDS
    from avsc_core.sampledata.sounds import synthesize

    name = ClipName(index)
    wav, mp4 = root / "audio" / f"{name.stem}.wav", root / "video" / f"{name.stem}.mp4"
    if wav.is_file() and mp4.is_file():
        return
    scene = SCENES[name.label]
    sound_seed, look_seed = np.random.SeedSequence([7, index]).spawn(2)
    audio = synthesize(SOUNDS[scene.sound], seconds, SAMPLE_RATE,
                       np.random.default_rng(sound_seed))
    frames = render(LOOKS[scene.look], seconds, FPS, WIDTH, HEIGHT,
                    np.random.default_rng(look_seed))
    write_mp4(mp4, audio, SAMPLE_RATE, frames, FPS, WIDTH, HEIGHT)
    wav.parent.mkdir(parents=True, exist_ok=True)
    tmp = wav.with_name(f".{wav.name}.{os.getpid()}.tmp")
    soundfile.write(tmp, audio.T, SAMPLE_RATE, subtype="PCM_24", format="WAV")
    os.replace(tmp, wav)
    # A dataset is old when training starts; a file changed within the key index's "racy"
    # window (2 s) before it was hashed is hashed again on the next run, which would make
    # the second-run lookup read the freshest clips.
    for path in (wav, mp4):
        os.utime(path, (mtime, mtime))


def write_tables(root: Path, n: int) -> None:
    """``meta.csv`` and the fold files for clips ``0 .. n - 1``."""
    names = [ClipName(i) for i in range(n)]

    def rows(selected: Sequence[ClipName], labels: bool, ident: bool) -> list[str]:
        out = []
        for c in selected:
            cells = [f"audio/{c.stem}.wav", f"video/{c.stem}.mp4"]
            cells += [c.label] if labels else []
            cells += [c.identifier] if ident else []
            out.append("\t".join(cells))
        return out

    def write(path: Path, header: Sequence[str], lines: list[str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(["\t".join(header), *lines]) + "\n")

    evaluate = [c for c in names if c.evaluate]
    write(root / "meta.csv", HEADER_META, rows(names, True, True))
    setup = root / "evaluation_setup"
    write(setup / TRAIN_FOLD, HEADER_META[:3], rows([c for c in names if not c.evaluate],
                                                    True, False))
    write(setup / EVALUATE_FOLD, HEADER_META[:3], rows(evaluate, True, False))
    write(setup / "fold1_test.csv", HEADER_META[:2], rows(evaluate, False, False))


def make_dataset(root: Path, n: int, seconds: float, jobs: int) -> float:
    """Write (or complete) the rehearsal set of ``n`` clips; returns the seconds it took."""
    start = time.perf_counter()
    mtime = time.time() - 3600
    missing = [i for i in range(n) if not (root / "audio" / f"{ClipName(i).stem}.wav").is_file()
               or not (root / "video" / f"{ClipName(i).stem}.mp4").is_file()]
    if missing:
        print(f"writing {len(missing)} clips of {seconds:g} s at {WIDTH}x{HEIGHT} {FPS} fps "
              f"into {root} ({jobs} processes) ...", flush=True)
    if len(missing) > 1 and jobs > 1:
        # spawn, as everywhere in avsc: a forked process would inherit TensorFlow threads.
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            list(pool.map(write_tau_clip, [root] * len(missing), missing,
                          [seconds] * len(missing), [mtime] * len(missing)))
    else:
        for i in missing:
            write_tau_clip(root, i, seconds, mtime)
    write_tables(root, n)
    return time.perf_counter() - start


def media_mb(clips: Sequence) -> float:
    """Mean MB of one clip's media files (wav + mp4)."""
    total = sum(p.stat().st_size for c in clips for p in (c.audio_path, c.video_path) if p)
    return total / len(clips) / 1e6


# --------------------------------------------------------------------------- measurements

@dataclass
class Preparation:
    serial_clips: int
    serial_s: float
    serial_cpu_s: float
    parallel_jobs: int
    parallel_clips: int
    parallel_s: float
    parallel_cpu_s: float
    cache_mb: float
    index_kb: float

    @property
    def startup_s(self) -> float:
        """Seconds of the parallel run not spent on clips: each worker's start-up (spawn,
        imports, filter banks), estimated as its CPU time beyond the 1-process CPU time
        per clip; the workers start side by side, so this is also wall time."""
        per_clip = self.serial_cpu_s / self.serial_clips
        extra = (self.parallel_cpu_s - self.parallel_clips * per_clip) / self.parallel_jobs
        return min(max(extra, 0.0), self.parallel_s)

    def parallel_hours(self, clips: int = TAU_CLIPS) -> float:
        """Hours with all cores for ``clips`` clips: the start-up once, plus the measured
        wall time per clip after it, times ``clips``."""
        per_clip = (self.parallel_s - self.startup_s) / self.parallel_clips
        return (self.startup_s + per_clip * clips) / 3600


def cache_bytes(root: Path) -> tuple[int, int]:
    """Bytes of the cache's entries, and of its key index."""
    entries = index = 0
    for path in root.rglob("*"):
        if path.is_file():
            if path.name.startswith("index.sqlite"):
                index += path.stat().st_size
            else:
                entries += path.stat().st_size
    return entries, index


def timed_prepare(clips: Sequence, cache: Path, jobs: int) -> tuple[float, float, list]:
    """Wall and CPU seconds (workers included) of preparing ``clips``; the prepared ones."""
    media, features = MediaConfig(), FeatureConfig()
    before, start = cpu_seconds(), time.perf_counter()
    result = prepare_clips(list(clips), media, features, cache, jobs=jobs)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - before
    if result.failures:
        raise SystemExit(f"preparation failed: {result.failures[:3]}")
    return wall, cpu, result.clips


def measure_preparation(clips: Sequence, work: Path, serial: int,
                        jobs: int) -> tuple[Preparation, list[PreparedClip], Path]:
    """1 process on ``serial`` clips (after a one-clip warm-up: filter banks, CQT kernels),
    then ``jobs`` processes on all of them, each into a fresh cache."""
    caches = {name: work / f"cache-{name}" for name in ("warm", "serial", "all")}
    for path in caches.values():
        shutil.rmtree(path, ignore_errors=True)
    timed_prepare(clips[-1:], caches["warm"], 1)
    serial = min(serial, len(clips))
    serial_s, serial_cpu, _ = timed_prepare(clips[:serial], caches["serial"], 1)
    parallel_s, parallel_cpu, prepared = timed_prepare(clips, caches["all"], jobs)
    entries, index = cache_bytes(caches["all"])
    for name in ("warm", "serial"):
        shutil.rmtree(caches[name])
    prep = Preparation(serial, serial_s, serial_cpu, jobs, len(clips), parallel_s, parallel_cpu,
                       entries / len(clips) / 1e6, index / 1e3)
    return prep, prepared, caches["all"]


def measure_lookup(root: Path, cache: Path, n: int) -> float:
    """Seconds a second run takes to load the layout and find every clip's entries."""
    found: list[int] = []

    def progress(event: Progress) -> None:
        if "cached" in (event.info or {}):
            found.append(event.info["cached"])

    start = time.perf_counter()
    dataset = load_tau2021(root)
    prepare_clips(dataset.clips, MediaConfig(), FeatureConfig(), cache, progress=progress)
    seconds = time.perf_counter() - start
    if not found or found[0] != n:
        print(f"warning: the second run found {found[:1]} of {n} clips cached", file=sys.stderr)
    return seconds


def pipeline_rates(prepared: Sequence[PreparedClip], classes: Sequence[str],
                   samples: int = 3200, batch: int = 32) -> dict[str, float]:
    """Samples/s of the training input pipeline alone (no model) over the real cache:
    frames (JPEG) and MEL spectrograms (float16), at least ``samples`` of each."""
    from avsc_core.train.pipeline import frame_items, item_dataset, spectrogram_items

    rates = {}
    kinds = {"frames": frame_items(prepared, classes, MediaConfig().frames_per_segment),
             "spectrograms": spectrogram_items(prepared, "mel", classes)}
    for kind, items in kinds.items():
        ds = item_dataset(items, len(classes), batch, True, 0).repeat()
        batches = math.ceil(samples / batch)
        for _ in ds.take(2):  # warm-up: tracing, first reads
            pass
        start = time.perf_counter()
        count = sum(int(x.shape[0]) for x, _ in ds.take(batches))
        rates[kind] = count / (time.perf_counter() - start)
    return rates


@dataclass
class TrainRate:
    preset: str
    backbone: str
    weights: str
    batch: int
    steps: int
    steps_s: float
    samples_per_clip: float
    epochs: int

    @property
    def samples_s(self) -> float:
        return self.steps_s * self.batch


def imagenet_file(name: str) -> Path | None:
    """The cached ImageNet weights of visual backbone ``name``, never downloading: a
    rehearsal must not wait on (or fail for) a network."""
    from avsc_core.models.weights import IMAGENET_WEIGHTS, weights_cache_dir

    spec = IMAGENET_WEIGHTS[name]
    keras_home = Path(os.environ.get("KERAS_HOME") or "~/.keras").expanduser() / "models"
    for path in (weights_cache_dir() / spec.filename,
                 weights_cache_dir() / spec.imported_filename, keras_home / spec.filename):
        if path.is_file():
            return path
    return None


def _step_clock(warmup: int, seconds: float, min_steps: int):
    """A callback timing the training steps after ``warmup`` and ending the epoch once at
    least ``min_steps`` steps and ``seconds`` have been timed."""
    import keras

    class StepClock(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []

        def on_train_batch_end(self, batch, logs=None):
            # Reading the loss waits for the step: on a GPU the call returns before its
            # work is done.
            float((logs or {}).get("loss", 0.0))
            self.times.append(time.perf_counter())
            timed = len(self.times) - 1 - warmup
            if timed >= min_steps and self.times[-1] - self.times[warmup] >= seconds:
                self.model.stop_training = True

        def rate(self) -> tuple[int, float]:
            timed = len(self.times) - 1 - warmup
            return timed, timed / (self.times[-1] - self.times[warmup])

    return StepClock()


def train_rate(name: str, preset: str, prepared: Sequence[PreparedClip],
               classes: Sequence[str], precision: str, seconds: float) -> TrainRate:
    """Steps/s of Phase I's training step for backbone ``name``, built and compiled as
    :func:`avsc_core.train.phase1.train_backbone` does, fed from the cache."""
    import keras

    from avsc_core.config import feature_shape
    from avsc_core.models import build_backbone
    from avsc_core.models.presets import backbone_spec
    from avsc_core.train.phase1 import backbone_items
    from avsc_core.train.pipeline import item_dataset, stored_form
    from avsc_core.train.precision import precision_policy
    from avsc_core.train.settings import TrainConfig
    from avsc_core.train.trainer import compile_model, learning_rate, training_model

    config = TrainConfig.for_preset(preset)
    spec = backbone_spec(name)
    media, features = MediaConfig(), FeatureConfig()
    items = backbone_items(name, prepared, classes, media)
    weights, weights_note = None, "-"
    if spec.modality == "visual" and preset == "paper":
        weights = imagenet_file(name)
        weights_note = "imagenet" if weights else "random"
    peak = config.visual_lr if spec.modality == "visual" else config.audio_lr
    epochs = config.backbone_epochs(name)
    steps_per_epoch = math.ceil(TAU_TRAIN_CLIPS * len(items) / len(prepared) / config.batch_size)
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    with precision_policy(precision):
        shape = None if spec.feature == "frames" else feature_shape(media, features)
        net = build_backbone(name, preset, len(classes), shape, weights)
        model = training_model(net, stored_form(items), config.mixup_alpha, 0)
        compile_model(model, keras.optimizers.Adam(learning_rate(
            peak, config.lr_schedule, config.warmup_fraction, epochs * steps_per_epoch)))
    # The first step traces (and on a GPU compiles) the graph, the second still warms up.
    warmup, min_steps = 2, 2
    clock = _step_clock(warmup, seconds, min_steps)
    ds = item_dataset(items, len(classes), config.batch_size, True, 0).repeat()
    model.fit(ds, epochs=1, steps_per_epoch=10_000, callbacks=[clock], verbose=0,
              shuffle=False)  # the pipeline shuffles
    steps, rate = clock.rate()
    return TrainRate(preset, name, weights_note, config.batch_size, steps, rate,
                     len(items) / len(prepared), epochs)


# --------------------------------------------------------------------------- extrapolation

def hours(seconds_per_clip: float, clips: int = TAU_CLIPS) -> float:
    """Hours for ``clips`` clips at ``seconds_per_clip`` (the rate scales linearly: every
    clip is one independent decode, lookup or set of samples)."""
    return seconds_per_clip * clips / 3600


def epoch_hours(rate: TrainRate, clips: int) -> float:
    """Hours of one epoch over ``clips`` clips: ceil(clips x samples per clip / batch)
    steps at the measured steps/s (validation passes not counted)."""
    return math.ceil(clips * rate.samples_per_clip / rate.batch) / rate.steps_s / 3600


# --------------------------------------------------------------------------- printing

def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def table(rows: Sequence[Sequence[str]]) -> str:
    """Plain text columns: the first left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def print_dataset_table(n: int, media: float, prep: Preparation, lookup_s: float,
                        rates: dict[str, float], frames_per_clip: float,
                        segments_per_clip: float) -> None:
    tau_media = TAU_GB * 1e3 / TAU_CLIPS
    par_s = (prep.parallel_s - prep.startup_s) / n
    rows = [
        ("", f"measured ({n} clips)", f"TAU 2021 ({TAU_CLIPS:,} clips)"),
        ("media per clip (wav + mp4)", f"{media:.2f} MB",
         f"{tau_media:.2f} MB (real; {TAU_GB:.0f} GB)"),
        ("prepare, 1 process", f"{prep.serial_s / prep.serial_clips:.2f} s/clip",
         f"{hours(prep.serial_s / prep.serial_clips):.2f} h"),
        ("  CPU time", f"{prep.serial_cpu_s / prep.serial_clips:.2f} CPU-s/clip",
         f"{hours(prep.serial_cpu_s / prep.serial_clips):.2f} core-h"),
        (f"prepare, {prep.parallel_jobs} processes (all cores)",
         f"{prep.parallel_s:.1f} s = {prep.startup_s:.1f} s start-up + {par_s:.2f} s/clip",
         f"{prep.parallel_hours():.2f} h"),
        ("cache per clip", f"{prep.cache_mb:.3f} MB", f"{prep.cache_mb * TAU_CLIPS / 1e3:.1f} GB"),
        ("  key index", f"{prep.index_kb:.0f} KB",
         f"{prep.index_kb * TAU_CLIPS / n / 1e3:.1f} MB"),
        ("second run: load + find all entries",
         f"{lookup_s:.2f} s ({lookup_s / n * 1e3:.1f} ms/clip)",
         f"{lookup_s / n * TAU_CLIPS:.0f} s"),
        ("pipeline frames/s (no model)", f"{rates['frames']:.0f}",
         f"{duration(TAU_TRAIN_CLIPS * frames_per_clip / rates['frames'])}/epoch"),
        ("pipeline spectrograms/s (no model)", f"{rates['spectrograms']:.0f}",
         f"{duration(TAU_TRAIN_CLIPS * segments_per_clip / rates['spectrograms'])}/epoch"),
    ]
    print(table(rows))


def print_train_table(rates: Sequence[TrainRate], precision: str) -> None:
    rows = [("preset", "backbone", "weights", "batch", "timed steps", "steps/s",
             "samples/s", "h/epoch (all)", "h/epoch (train)", "epochs", "recipe h")]
    for r in rates:
        per_epoch = epoch_hours(r, TAU_TRAIN_CLIPS)
        rows.append((r.preset, r.backbone, r.weights, str(r.batch), str(r.steps),
                     f"{r.steps_s:.3g}", f"{r.samples_s:.0f}",
                     f"{epoch_hours(r, TAU_CLIPS):.2f}", f"{per_epoch:.2f}", str(r.epochs),
                     f"{per_epoch * r.epochs:.1f}"))
    print(f"training, {precision} (samples: frames for vis-*, spectrogram segments for aud-*)")
    print(table(rows))


# --------------------------------------------------------------------------- main

@contextlib.contextmanager
def work_folder(path: str | None) -> Iterator[Path]:
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path)
    else:
        with tempfile.TemporaryDirectory(prefix="avsc-scale-") as tmp:
            yield Path(tmp)


def gpu_names() -> tuple[str, ...]:
    from avsc_core.inference.device import tensorflow_gpus

    return tensorflow_gpus()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--work", help="keep the dataset here between runs")
    parser.add_argument("--presets", nargs="+", choices=["tiny", "paper"],
                        help="default: tiny paper (paper only with --gpu)")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length")
    parser.add_argument("--serial-clips", type=int, default=10,
                        help="clips prepared by 1 process (all cores prepare every clip)")
    parser.add_argument("--train-seconds", type=float, default=10.0,
                        help="timed training per backbone (at least 2 steps, after 2 "
                        "warm-up steps)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--gpu", action="store_true",
                        help="train in mixed precision on the GPU (refused without one)")
    args = parser.parse_args(argv)
    if args.clips < len(TAU_CLASSES):
        parser.error(f"--clips must be at least {len(TAU_CLASSES)} (one per class)")
    presets = args.presets or (["paper"] if args.gpu else ["tiny", "paper"])
    start = time.perf_counter()

    print(cpu_line())
    gpus = gpu_names() if args.gpu else ()
    if args.gpu and not gpus:
        print("--gpu: TensorFlow sees no GPU here", file=sys.stderr)
        return 2
    precision = "mixed" if args.gpu else "float32"
    print(f"GPU: {', '.join(gpus)}" if gpus else "GPU: none (training on the CPU, float32)")

    with work_folder(args.work) as work:
        root = work / f"tau2021-{args.seconds:g}s"
        made = make_dataset(root, args.clips, args.seconds, args.jobs)
        dataset = load_tau2021(root)
        splits = {s: sum(c.split == s for c in dataset.clips) for s in ("train", "val", "test")}
        print(f"dataset: {len(dataset.clips)} clips in the tau2021 layout ({splits}), "
              f"{args.seconds:g} s each, {WIDTH}x{HEIGHT} {FPS} fps H.264 + "
              f"{SAMPLE_RATE // 1000} kHz 24-bit stereo wav (written in {made:.0f} s)",
              flush=True)
        clips = dataset.clips
        prep, prepared, cache = measure_preparation(clips, work, args.serial_clips, args.jobs)
        lookup_s = measure_lookup(root, cache, len(clips))
        classes = list(TAU_CLASSES)
        rates = pipeline_rates(prepared, classes)
        segments = sum(p.segments for p in prepared) / len(prepared)
        frames = segments * MediaConfig().frames_per_segment
        print()
        print_dataset_table(len(clips), media_mb(clips), prep, lookup_s, rates, frames,
                            segments)
        print(flush=True)

        from avsc_core.train.settings import ALL_BACKBONES

        trained = [train_rate(name, preset, prepared, classes, precision, args.train_seconds)
                   for preset in presets for name in ALL_BACKBONES]
        print_train_table(trained, precision)
    print()
    print(f"{len(FEATURE_KINDS)} spectrograms + {frames:.0f} frames per clip; h/epoch: all "
          f"{TAU_CLIPS:,} clips, or the {TAU_TRAIN_CLIPS:,} a paper epoch trains on; recipe h = "
          "h/epoch (train) x the preset's epochs (early stopping may end sooner). "
          f"Total run {time.perf_counter() - start:.0f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
