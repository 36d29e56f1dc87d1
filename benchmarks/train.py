"""Training throughput of both presets and strategies: per backbone, head or joint run, and peak memory.

    python benchmarks/train.py [--presets tiny,paper] [--strategies two-phase,joint]
                               [--clips-per-class N] [--epochs N]
    python benchmarks/train.py --pipeline [--samples N]

Each preset and strategy trains in its own process on generated sample data (4 classes,
10-s clips): two-phase runs Phase I for each of the five backbones, then the embeddings
and the three fusion heads; joint runs its one joint optimisation (both encoders and the
classifier, every frame of every segment).
Throughput counts training clips per second over the epochs after the first (the first
one also traces the graph, reported separately); peak memory is the process's maximum
resident set size. On a CPU the paper preset is slow: keep --clips-per-class small.

``--pipeline`` measures the input pipeline alone (no model): samples/s, CPU time per
sample and bytes per sample handed to the training step, for frames (a real TAU clip's,
JPEG in the cache) and spectrograms, of the pipeline before this version (one Python call
per sample; deltas and mixup in ``tf.data``, on the CPU) and of today's (one call per
batch, several batches at once; what the cache stores goes to the device, where the
training step adds deltas, casts and mixes), in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_preset(preset: str, strategy: str, data: Path, out: Path, epochs: int) -> dict:
    """Train one preset (in this process) and return its timings."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from avsc_core.train import TrainConfig, train_model

    marks: dict[str, float] = {}

    def progress(event) -> None:
        if event.stage == "phase2:embeddings":
            marks.setdefault("embeddings_start", time.monotonic())
            marks["embeddings_end"] = time.monotonic()

    config = TrainConfig.for_preset(
        preset, strategy=strategy, phase1_epochs=epochs, visual_epochs=epochs,
        phase2_epochs=epochs, joint_epochs=epochs, visual_weights="none", patience=0,
    )
    start = time.monotonic()
    train_model(data, out, config, progress=progress, jobs=2)
    total = time.monotonic() - start
    manifest = json.loads((out / "manifest.json").read_text())
    n_train = sum(1 for c in manifest["dataset"]["clips"] if c["split"] == "train")
    n_all = len(manifest["dataset"]["clips"])
    rows = {}
    for step, history in manifest["history"].items():
        if not history:
            continue
        later = history[1:] or history
        seconds = sum(h["seconds"] for h in later) / len(later)
        rows[step] = {
            "first_epoch_s": history[0]["seconds"],
            "epoch_s": seconds,
            "clips_per_s": n_train / seconds,
        }
    embed_s = marks.get("embeddings_end", 0) - marks.get("embeddings_start", 0)
    return {
        "preset": preset if strategy == "two-phase" else f"{preset}/{strategy}",
        "train_clips": n_train,
        "rows": rows,
        "embeddings_clips_per_s": n_all / embed_s if embed_s > 0 else None,
        "total_s": total,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "params": {b["name"]: b["trainable_params"] for b in manifest["backbones"]},
    }


def previous_dataset(items: list, n_classes: int, batch_size: int, mixup_alpha: float):
    """The training input pipeline before this version: a ``tf.numpy_function`` call per
    sample, deltas in ``tf.data`` and mixup on the CPU after batching (float32 batches)."""
    import numpy as np
    import tensorflow as tf

    from avsc_core.features.store import SpectrogramFile
    from avsc_core.train.pipeline import _open, _read, mixup, tf_network_input

    first = _read(items[0].path, items[0].index)
    deltas = isinstance(_open(items[0].path), SpectrogramFile) and _open(items[0].path).deltas
    spectrogram = isinstance(_open(items[0].path), SpectrogramFile)
    order = np.random.default_rng(0).permutation(len(items))

    def load(i):
        item = items[int(i)]
        return _read(item.path, item.index), np.int32(item.label)

    def sample(i):
        x, y = tf.numpy_function(load, [i], [tf.as_dtype(first.dtype), tf.int32],
                                 stateful=False)
        x = tf.ensure_shape(x, first.shape)
        x = tf_network_input(x, deltas) if spectrogram else x
        return x, tf.one_hot(tf.ensure_shape(y, ()), n_classes)

    ds = tf.data.Dataset.from_tensor_slices(order).map(
        sample, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(batch_size)
    if mixup_alpha > 0:
        ds = ds.enumerate().map(lambda i, b: mixup(b[0], b[1], mixup_alpha,
                                                   tf.stack([tf.constant(0, tf.int64), i])))
    return ds.prefetch(2)


def pipeline(samples: int, repeats: int, batch_size: int = 32) -> None:
    """Print the pipeline-only rates of :func:`previous_dataset` and ``item_dataset``:
    medians of ``repeats`` passes, the pipelines taking turns (a shared machine's load
    then weighs on each alike)."""
    import numpy as np

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from avsc_core.features import file_frames
    from avsc_core.features.store import write_frames, write_spectrograms
    from avsc_core.train.pipeline import Item, item_dataset

    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    videos = sorted((shared / "tau2021-av-street-traffic").glob("*.mp4"))
    rng = np.random.default_rng(0)
    frames = (file_frames(videos[0]) if videos
              else rng.integers(0, 255, (1, 20, 224, 224, 3), dtype=np.uint8))
    log_spec = rng.normal(-8, 3, (1, 2, 128, 309)).astype(np.float32)

    def cpu() -> float:
        t = os.times()
        return t.user + t.system

    def measure(ds) -> tuple[float, float, float]:
        """Samples/s, CPU ms per sample and bytes per sample of one pass."""
        for _ in ds.take(2):  # warm-up: tracing, first reads
            pass
        before, start, count, size = cpu(), time.perf_counter(), 0, 0
        for x, _ in ds:
            count += int(x.shape[0])
            size += x.numpy().nbytes
        seconds = time.perf_counter() - start
        return count / seconds, (cpu() - before) / count * 1e3, size / count

    print(f"{os.cpu_count()} cores; {samples} samples per pass, batches of {batch_size}, "
          f"median of {repeats} passes, no model"
          + ("" if videos else "; no TAU clip found: random frames"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        kinds: dict[str, list] = {"frames": [], "spectrograms": []}
        for i in range(8):
            write_frames(root / f"frames-{i}.jpg", frames)
            write_spectrograms(root / f"mel-{i}.f16", log_spec, True)
        for n in range(samples):
            clip = n % 8
            kinds["frames"].append(Item(root / f"frames-{clip}.jpg",
                                        (0, n // 8 % frames.shape[1]), clip % 2))
            kinds["spectrograms"].append(Item(root / f"mel-{clip}.f16", (0,), clip % 2))
        for kind, items in kinds.items():
            rows = {
                "before, as training ran it (mixup on the CPU)":
                    previous_dataset(items, 2, batch_size, 0.4),
                "before, without mixup": previous_dataset(items, 2, batch_size, 0.0),
                "today (mixup, deltas, cast in the training step)":
                    item_dataset(items, 2, batch_size, True, 0),
            }
            passes = {name: [] for name in rows}
            for _ in range(repeats):
                for name, ds in rows.items():
                    passes[name].append(measure(ds))
            for name, results in passes.items():
                rate, cpu_ms, size = np.median(np.array(results), axis=0)
                print(f"pipeline {kind:12} {name:50} {rate:7.0f}/s {cpu_ms:5.2f} CPU-ms "
                      f"{size / 1e3:6.0f} KB each")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,paper")
    parser.add_argument("--strategies", default="two-phase,joint")
    parser.add_argument("--clips-per-class", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--pipeline", action="store_true",
                        help="measure the input pipeline alone, before and today")
    parser.add_argument("--samples", type=int, default=3200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pipeline:
        pipeline(args.samples, args.repeats)
        return 0
    if args.child:
        preset, strategy, data, out, epochs = args.child
        print(json.dumps(run_preset(preset, strategy, Path(data), Path(out), int(epochs))))
        return 0

    from avsc_core.inference.device import cpu_info
    from avsc_core.sampledata import generate_sample_dataset

    print(cpu_info().line())
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate_sample_dataset(data, classes=4, per_class=args.clips_per_class, jobs=2)
        runs = [(p, s) for p in args.presets.split(",") for s in args.strategies.split(",")]
        for preset, strategy in runs:
            run = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    preset,
                    strategy,
                    str(data),
                    str(Path(tmp) / f"model-{preset}-{strategy}"),
                    str(args.epochs),
                ],
                capture_output=True,
                text=True,
            )
            if run.returncode:
                print(run.stderr[-2000:], file=sys.stderr)
                return 1
            results.append(json.loads(run.stdout.strip().splitlines()[-1]))

    print(
        f"{'run':13} {'step':18} {'params':>11} {'1st epoch s':>12} {'epoch s':>8} {'clips/s':>8}"
    )
    for r in results:
        for step, row in r["rows"].items():
            name = step.split("/")[-1].split(":")[-1]
            params = r["params"].get(name)
            print(
                f"{r['preset']:13} {step:18} {params or '':>11} {row['first_epoch_s']:12.1f} "
                f"{row['epoch_s']:8.2f} {row['clips_per_s']:8.2f}"
            )
        emb = r["embeddings_clips_per_s"]
        print(
            f"{r['preset']:13} {'embeddings':18} {'':>11} {'':>12} {'':>8} "
            f"{emb if emb is None else round(emb, 2):>8}"
        )
        print(
            f"{r['preset']:13} total {r['total_s']:.0f} s for {r['train_clips']} training clips, "
            f"peak memory {r['peak_rss_mb']:.0f} MB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
