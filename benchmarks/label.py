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

Before/after (``--variant``, repeatable): each variant is a labelling set-up in a process
of its own (its source tree, model, runtime and engine options), loaded and warmed up
once; the timed runs then go round the variants in turn (A, B, C, A, B, C, ...), so a
shared machine's changing load falls on all of them alike, and the medians are compared.
The load average is printed before and after. With ``--agree FOLDER`` each variant also
labels FOLDER once, and its labels are compared with those of ``--reference``::

    git archive HEAD avsc_core | tar -x -C /tmp/before     # today's code, untouched
    python benchmarks/label.py STREET --repeat 5 \\
        --variant before=src=/tmp/before,model=/tmp/paper-before \\
        --variant fold=model=/tmp/paper,ahead=0,lanes=1 \\
        --variant fold+ahead=model=/tmp/paper,lanes=1 \\
        --variant after=model=/tmp/paper \\
        --variant fp32=model=/tmp/paper,runtime=tflite-fp32 \\
        --timed before,fold,fold+ahead,after --agree AGREE_FOLDER --reference fp32

Variant keys: ``src`` (a source tree whose ``avsc_core`` is imported instead of this
one's), ``model``, ``runtime`` (``Predictor``'s), ``lanes`` (networks side by side; 1 runs
them in turn on all cores), ``threads``, ``ahead`` (0: decode each file only when its turn
comes, as before the decode-ahead thread), ``jobs``, ``isa`` (the most oneDNN may use, as
``ONEDNN_MAX_CPU_ISA``: ``isa=AVX2`` runs OpenVINO's kernels as on a CPU without AVX-512
or VNNI; XNNPACK and ONNX Runtime do not read it, so a TFLite variant keeps this CPU's),
``fps`` (``label --frames-per-second``: video frames a second the visual networks see).
Below VNNI, ``auto`` passes over an onnx int8 export, as it does on such a CPU: time that
export with ``runtime=onnx-int8``.
"""

from __future__ import annotations

import argparse
import collections
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


def cpu_line() -> str:
    """``CPU: <model>, <n> cores; vector extensions: ...`` from /proc/cpuinfo."""
    from avsc_core.inference.device import cpu_info

    return cpu_info().line()


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


# --- before/after: variants in processes of their own, timed in turn --------------------

def parse_variant(text: str) -> tuple[str, dict]:
    """``NAME=key=value,key=value`` -> ``(NAME, {key: value})``."""
    name, _, rest = text.partition("=")
    spec: dict = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if key not in ("src", "model", "runtime", "lanes", "threads", "ahead", "jobs", "isa",
                       "fps"):
            raise SystemExit(f"--variant {name}: unknown key {key!r}")
        spec[key] = value
    if "model" not in spec:
        raise SystemExit(f"--variant {name}: needs model=...")
    return name, spec


def serve(spec: dict) -> None:
    """In a process of its own: one variant, loaded once; label a folder per stdin line."""
    if spec.get("src"):
        sys.path.insert(0, str(Path(spec["src"]).resolve()))
    import csv

    import avsc_core
    from avsc_core.bundle import load_bundle
    from avsc_core.inference.predictor import Predictor
    from avsc_core.label import label_folder

    options = {"runtime": spec.get("runtime", "auto")}
    for key in ("lanes", "threads"):
        if spec.get(key):
            options[key] = int(spec[key])
    if "ahead" in spec:
        import avsc_core.label.run as engine

        engine.DECODE_AHEAD = spec["ahead"] not in ("0", "false", "no")
    predictor = Predictor(load_bundle(spec["model"]), **options)
    jobs = int(spec.get("jobs", 1))
    # Passed only when asked for: older source trees have no such argument.
    rate = {"frames_per_second": float(spec["fps"])} if spec.get("fps") else {}
    describe = getattr(predictor, "describe", lambda: predictor.runtime)()
    print(json.dumps({"ready": True, "code": str(Path(avsc_core.__file__).parent),
                      "networks": describe}), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for n, line in enumerate(sys.stdin):
            folder = line.strip()
            out = Path(tmp) / f"run{n}.csv"
            start, start_cpu = time.perf_counter(), cpu_seconds()
            summary = label_folder(folder, predictor, out, recursive=True, jobs=jobs, **rate)
            seconds, cpu = time.perf_counter() - start, cpu_seconds() - start_cpu
            with open(out, newline="", encoding="utf-8") as handle:
                labels = {row["file"]: row["label"] or "error" for row in csv.DictReader(handle)}
            print(json.dumps({"seconds": seconds, "cpu": cpu, "files": summary.labelled +
                              summary.failed, "labels": labels}), flush=True)


class Variant:
    """A running :func:`serve` process."""

    def __init__(self, name: str, spec: dict):
        self.name, self.spec = name, spec
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        if spec.get("isa"):
            env["ONEDNN_MAX_CPU_ISA"] = spec["isa"]
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", json.dumps(spec)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env=env)
        self.info = self._read()

    def _read(self) -> dict:
        for line in self.process.stdout:
            if line.startswith("{"):
                return json.loads(line)
        raise SystemExit(f"variant {self.name} stopped (exit {self.process.wait()})")

    def label(self, folder: Path) -> dict:
        self.process.stdin.write(f"{folder}\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def compare(args: argparse.Namespace) -> None:
    from avsc_core.inference.runtime import kernels_report
    from avsc_core.label import find_media_files

    for line in kernels_report()[1:]:
        print(line)
    files = find_media_files(args.folder, recursive=True)
    variants = dict(parse_variant(v) for v in args.variant)
    timed = args.timed.split(",") if args.timed else list(variants)
    running = {name: Variant(name, spec) for name, spec in variants.items()}
    try:
        for name, variant in running.items():
            isa = f", oneDNN at most {variant.spec['isa']}" if variant.spec.get("isa") else ""
            isa += f", {variant.spec['fps']} frames a second" if variant.spec.get("fps") else ""
            print(f"  {name:18} {variant.info['networks']}  (code: {variant.info['code']}{isa})")
        for name in timed:  # warm-up: first calls, decoder start-up paths, file cache
            running[name].label(args.folder)
        print(f"{len(files)} files in {args.folder}; runs in turn, median of {args.repeat}; "
              f"load average before {os.getloadavg()[0]:.2f} (1 min) "
              f"{os.getloadavg()[1]:.2f} (5 min)")
        results: dict[str, list[dict]] = {name: [] for name in timed}
        for _ in range(args.repeat):
            for name in timed:
                results[name].append(running[name].label(args.folder))
        load = os.getloadavg()
        print(f"load average after {load[0]:.2f} (1 min) {load[1]:.2f} (5 min) "
              f"{load[2]:.2f} (15 min)")
        base = statistics.median(r["seconds"] for r in results[timed[0]])
        print(f"\n{'variant':18} {'s/run':>7} {'files/s':>8} {'CPU s/file':>11} "
              f"{'vs ' + timed[0]:>12}  runs (s)")
        for name in timed:
            seconds = statistics.median(r["seconds"] for r in results[name])
            cpu = statistics.median(r["cpu"] for r in results[name]) / len(files)
            runs = ", ".join(f"{r['seconds']:.2f}" for r in results[name])
            print(f"{name:18} {seconds:7.2f} {len(files) / seconds:8.2f} {cpu:11.2f} "
                  f"{base / seconds:11.2f}x  {runs}")
        if args.agree:
            labels = {name: v.label(args.agree)["labels"] for name, v in running.items()}
            reference = args.reference or next(iter(running))
            ref = labels[reference]
            spread = collections.Counter(ref.values())
            print(f"\nlabels on {len(ref)} files of {args.agree} against {reference} "
                  f"({len(spread)} different labels there: "
                  f"{', '.join(f'{k} {v}' for k, v in spread.most_common())}):")
            for name, got in labels.items():
                if name != reference:
                    same = sum(got.get(f) == label for f, label in ref.items())
                    print(f"  {name:18} {same}/{len(ref)} equal ({100 * same / len(ref):.1f}%)")
    finally:
        for variant in running.values():
            variant.close()


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
    parser.add_argument("--model", type=Path)
    parser.add_argument("folder", type=Path, nargs="?")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3, help="speed: runs per --jobs value")
    parser.add_argument("--files", type=int, nargs="+", metavar="N",
                        help="memory: report after N files (e.g. 100 2000)")
    parser.add_argument("--ray", action="store_true",
                        help="memory: also with --engine ray (needs the cluster extra)")
    parser.add_argument("--variant", action="append", metavar="NAME=KEY=VALUE,...",
                        help="before/after: a labelling set-up to time (repeatable)")
    parser.add_argument("--timed", help="before/after: the variants to time, in order "
                        "(default: all; the first is the baseline)")
    parser.add_argument("--agree", type=Path, metavar="FOLDER",
                        help="before/after: label FOLDER once per variant, compare labels")
    parser.add_argument("--reference", help="before/after: the variant --agree compares with")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # ENGINE:JOBS, one measured run
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # a variant's JSON spec
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if args.serve:
        serve(json.loads(args.serve))
        return
    if args.folder is None or (args.model is None and not args.variant):
        parser.error("give FOLDER and --model (or --variant)")
    if args.child:
        measure(args)
        return
    print(cpu_line())
    if args.variant:
        compare(args)
    elif args.files:
        memory(args)
    else:
        speed(args)


if __name__ == "__main__":
    main()
