"""Files per second of ``avsc label`` with and without decoder processes.

Labels every media file under FOLDER (recursively) with MODEL, once per ``--jobs`` value,
after one untimed warm-up run so that the model's first-call set-up is not counted (the
worker processes' start-up is: it is part of every real run).

    python benchmarks/label.py --model MODEL FOLDER [--jobs 1 2] [--repeat N]

For example, with the sample data and a tiny model::

    avsc sample-data /tmp/sample --classes 3 --per-class 4
    avsc train /tmp/sample --out /tmp/tiny --preset tiny --epochs 1
    python benchmarks/label.py --model /tmp/tiny /tmp/sample
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the decoder processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    from avsc_core.inference.classify import load_predictor
    from avsc_core.label import find_media_files, label_folder

    files = find_media_files(args.folder, recursive=True)
    predictor = load_predictor(args.model)
    print(f"{len(files)} files in {args.folder}, model {args.model}, "
          f"{os.cpu_count()} CPUs, median of {args.repeat} runs")
    with tempfile.TemporaryDirectory() as tmp:
        label_folder(args.folder, predictor, Path(tmp) / "warm-up.csv", recursive=True)
        for jobs in args.jobs:
            seconds, cpu = [], []
            for i in range(args.repeat):
                out = Path(tmp) / f"jobs{jobs}-{i}.csv"
                start, start_cpu = time.perf_counter(), cpu_seconds()
                label_folder(args.folder, predictor, out, recursive=True, jobs=jobs)
                seconds.append(time.perf_counter() - start)
                cpu.append(cpu_seconds() - start_cpu)
            median = statistics.median(seconds)
            print(f"--jobs {jobs}: {median:6.2f} s  {len(files) / median:6.2f} files/s  "
                  f"CPU {statistics.median(cpu):6.2f} s  "
                  f"(runs: {', '.join(f'{s:.2f}' for s in seconds)})")


if __name__ == "__main__":
    main()
