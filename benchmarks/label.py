"""Files per second and memory of ``avsc label``, with and without decoder processes.

Speed: labels every media file under FOLDER (recursively) with MODEL, once per ``--jobs``
value, after one untimed warm-up run so that the model's first-call set-up is not counted
(the worker processes' start-up is: it is part of every real run).

    python benchmarks/label.py --model MODEL FOLDER [--jobs 1 2] [--repeat N]

Memory (``--files``): builds an archive of as many files as the largest count, hard links
(or copies) of FOLDER's clips spread over nested folders, and labels it once per engine
(the local one with each ``--jobs`` value, and Ray with ``--engine ray``), each in a
process of its own. After each count of files it reports the peak resident memory of the
labelling process, and the peak of the whole process tree (decoder processes, Ray's
processes and workers) as proportional set size (PSS: pages shared between processes,
such as Ray's object store, counted once). Flat memory means the figures after 2,000
files are those after 100.

    python benchmarks/label.py --model MODEL FOLDER --files 100 2000 [--jobs 1 2] [--ray]

The CPU model and its vector extensions come first, so figures from different machines
can be compared. For example, with the sample data and a tiny model::

    avsc sample-data /tmp/sample --classes 3 --per-class 4 --seconds 2
    avsc train /tmp/sample --out /tmp/tiny --preset tiny --epochs 1
    python benchmarks/label.py --model /tmp/tiny /tmp/sample
    python benchmarks/label.py --model /tmp/tiny /tmp/sample --files 100 2000 --ray
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# The /proc/cpuinfo flags that decide how fast the networks and the features run.
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
                "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
                "amx_bf16", "amx_int8", "asimd", "sve", "sve2")


def cpu_line() -> str:
    """``CPU: <model>, <n> cores; vector extensions: ...`` from /proc/cpuinfo."""
    model, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model", "CPU part") and model == "unknown":
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    found = [f for f in VECTOR_FLAGS if f in flags]
    return (f"CPU: {model}, {os.cpu_count()} cores; vector extensions: "
            f"{' '.join(found) or 'none found'}")


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the decoder processes)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def speed(args: argparse.Namespace) -> None:
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


def make_archive(clips: list[Path], root: Path, count: int) -> Path:
    """``count`` files under ``root/archive``, 10 per folder, 10 folders per parent."""
    archive = root / "archive"
    for i in range(count):
        clip = clips[i % len(clips)]
        target = archive / f"d{i // 100:03d}" / f"e{i // 10 % 10}" / f"{i:05d}{clip.suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(clip, target)
        except OSError:  # another file system, or no hard links there
            shutil.copyfile(clip, target)
    return archive


def _status_kb(pid: int | str, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _pss_kb(pid: int | str) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def tree_pss_kb(root: int) -> int:
    """PSS of ``root`` and all its descendants, now."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parents[int(entry)] = _status_kb(entry, "PPid")
    tree, grew = {root}, True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return sum(_pss_kb(pid) for pid in tree)


class TreeSampler(threading.Thread):
    """The largest PSS of this process tree seen so far, sampled every 0.2 s."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak_kb = 0
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak_kb = max(self.peak_kb, tree_pss_kb(os.getpid()))

    def stop(self) -> None:
        self._stop.set()


def measure(args: argparse.Namespace) -> None:
    """In a process of its own: label the archive with one engine, print JSON lines."""
    from avsc_core.label import label_folder

    engine, _, jobs = args.child.partition(":")
    checkpoints = sorted(args.files)
    sampler = TreeSampler()
    sampler.start()
    started = time.perf_counter()
    rows = 0

    def on_row(row, result) -> None:
        nonlocal rows
        rows += 1
        if rows in checkpoints:
            sampler.peak_kb = max(sampler.peak_kb, tree_pss_kb(os.getpid()))
            print(json.dumps({"files": rows, "seconds": time.perf_counter() - started,
                              "peak_rss_kb": _status_kb("self", "VmHWM"),
                              "tree_peak_pss_kb": sampler.peak_kb}), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        label_folder(args.folder, args.model, Path(tmp) / "labels.csv", recursive=True,
                     jobs=int(jobs) if engine == "local" else 1, engine=engine,
                     on_row=on_row)
    sampler.stop()


def memory(args: argparse.Namespace) -> None:
    from avsc_core.label import find_media_files

    clips = find_media_files(args.folder, recursive=True)
    if not clips:
        sys.exit(f"{args.folder}: no media files to build the archive from")
    runs = [f"local:{jobs}" for jobs in args.jobs] + (["ray:1"] if args.ray else [])
    print(f"archive of {max(args.files)} files made of {len(clips)} clips of {args.folder}, "
          f"model {args.model}; each engine in a fresh process")
    print(f"{'engine':16} {'files':>6} {'seconds':>8} {'files/s':>8} "
          f"{'peak RSS MB':>12} {'tree peak PSS MB':>17}")
    with tempfile.TemporaryDirectory() as tmp:
        archive = make_archive(clips, Path(tmp), max(args.files))
        for run in runs:
            engine, _, jobs = run.partition(":")
            name = f"local --jobs {jobs}" if engine == "local" else "ray --workers 1"
            command = [sys.executable, __file__, "--model", str(args.model), str(archive),
                       "--child", run, "--files", *map(str, args.files)]
            done = subprocess.run(command, check=False, capture_output=True, text=True,
                                  env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            lines = [json.loads(line) for line in done.stdout.splitlines()
                     if line.startswith("{")]
            if done.returncode != 0 or not lines:
                print(f"{name:16} failed (exit {done.returncode}): "
                      f"{done.stderr.strip().splitlines()[-1:] or ''}")
                continue
            for point in lines:
                print(f"{name:16} {point['files']:>6} {point['seconds']:>8.1f} "
                      f"{point['files'] / point['seconds']:>8.2f} "
                      f"{point['peak_rss_kb'] / 1024:>12.0f} "
                      f"{point['tree_peak_pss_kb'] / 1024:>17.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3, help="speed: runs per --jobs value")
    parser.add_argument("--files", type=int, nargs="+", metavar="N",
                        help="memory: report after N files (e.g. 100 2000)")
    parser.add_argument("--ray", action="store_true",
                        help="memory: also with --engine ray (needs the cluster extra)")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # ENGINE:JOBS, one measured run
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if args.child:
        measure(args)
        return
    print(cpu_line())
    if args.files:
        memory(args)
    else:
        speed(args)


if __name__ == "__main__":
    main()
