"""Training throughput of both presets and strategies: per backbone, head or joint run, and peak memory.

    python benchmarks/train.py [--presets tiny,paper] [--strategies two-phase,joint]
                               [--clips-per-class N] [--epochs N]

Each preset and strategy trains in its own process on generated sample data (4 classes,
10-s clips): two-phase runs Phase I for each of the five backbones, then the embeddings
and the three fusion heads; joint runs its one joint optimisation (both encoders and the
classifier, every frame of every segment).
Throughput counts training clips per second over the epochs after the first (the first
one also traces the graph, reported separately); peak memory is the process's maximum
resident set size. On a CPU the paper preset is slow: keep --clips-per-class small.
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
        preset, strategy=strategy, phase1_epochs=epochs, phase2_epochs=epochs,
        joint_epochs=epochs, visual_weights="none",
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,paper")
    parser.add_argument("--strategies", default="two-phase,joint")
    parser.add_argument("--clips-per-class", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        preset, strategy, data, out, epochs = args.child
        print(json.dumps(run_preset(preset, strategy, Path(data), Path(out), int(epochs))))
        return 0

    from avsc_core.sampledata import generate_sample_dataset

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
