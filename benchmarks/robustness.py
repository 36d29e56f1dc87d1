"""Odd and broken inputs through every command, then a fuzz run of the parsers.

    python benchmarks/robustness.py [--work DIR] [--model M] [--fuzz-minutes 5]

Part 1 generates a catalogue of odd and damaged inputs (media files, datasets, label CSVs,
model bundles, output paths, a full disk) and runs each through the command a user would
give it, as a separate ``python -m avsc_core`` process, printing one row per case:

- ``answer``: exit 0 (the input was odd but usable);
- ``refused``: exit 1 with one line on stderr and no traceback (what we want for bad input);
- ``usage``: exit 2 (argparse);
- ``TRACEBACK``, ``CRASH`` (killed by a signal), ``HANG`` (past ``--deadline``): bugs.

Part 2 (``--fuzz-minutes``, default 2; 0 skips it) feeds hypothesis-generated mutations
of real files to the media reader (probe, decode, spectrograms), the dataset parsers
(CSV and TAU layouts) and the manifest loader, each input in a worker process with a
per-input deadline, so a crash or a hang is seen and counted instead of taking this
process down. Only :class:`avsc_core.errors.AvscError` counts as a clean refusal.

Without ``--model`` a tiny model is trained first (about a minute on 2 cores). The disk
full case mounts a 1-MB tmpfs, which needs root; otherwise it is reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("AVSC_SHARED_DATA", REPO.parent / "shared" / "data"))


# --------------------------------------------------------------------------- inputs


def _av_file(path: Path, seconds: float = 2.0, *, video: bool = True, audio: bool = True,
             size: tuple[int, int] = (64, 48), fps: int = 10, rate: int = 32000,
             layout: str = "stereo", vcodec: str = "libx264", acodec: str = "aac") -> Path:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        vs = out.add_stream(vcodec, rate=fps) if video else None
        if vs is not None:
            vs.width, vs.height = size
            vs.pix_fmt = "yuv420p"
        aus = out.add_stream(acodec, rate=rate, layout=layout) if audio else None
        if vs is not None:
            for i in range(int(seconds * fps)):
                img = np.full((size[1], size[0], 3), (i * 7) % 255, np.uint8)
                for packet in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(packet)
            for packet in vs.encode():
                out.mux(packet)
        if aus is not None:
            channels = aus.layout.nb_channels
            n = int(seconds * rate)
            t = np.arange(n) / rate
            data = np.tile((0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), (channels, 1))
            for start in range(0, n, 1024):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(data[:, start:start + 1024]), format="fltp",
                    layout=aus.layout.name)
                frame.sample_rate, frame.pts = rate, start
                for packet in aus.encode(frame):
                    out.mux(packet)
            for packet in aus.encode():
                out.mux(packet)
    return path


def _wav(path: Path, samples: np.ndarray, rate: int, subtype: str = "FLOAT") -> Path:
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, samples, rate, subtype=subtype, format="WAV")
    return path


def make_media(root: Path) -> dict[str, Path]:
    """Odd and broken media files, by case name."""
    rng = np.random.default_rng(0)
    noise = (0.1 * rng.standard_normal((96000, 2))).astype(np.float32)
    m: dict[str, Path] = {}
    m["normal mp4"] = _av_file(root / "normal.mp4")
    m["missing file"] = root / "does-not-exist.mp4"
    (root / "empty.mp4").write_bytes(b"")
    m["empty file"] = root / "empty.mp4"
    (root / "random.mp4").write_bytes(rng.integers(0, 256, 20000, np.uint8).tobytes())
    m["random bytes .mp4"] = root / "random.mp4"
    (root / "readme.mkv").write_text("not a video\n" * 200)
    m["text as .mkv"] = root / "readme.mkv"
    data = m["normal mp4"].read_bytes()
    (root / "cut.mp4").write_bytes(data[: len(data) // 2])
    m["truncated mp4"] = root / "cut.mp4"
    mkv = _av_file(root / "whole.mkv", 4.0)
    (root / "cut.mkv").write_bytes(mkv.read_bytes()[: int(mkv.stat().st_size * 0.6)])
    m["truncated mkv"] = root / "cut.mkv"
    m["video without audio"] = _av_file(root / "silent-film.mp4", audio=False)
    m["audio-only m4a"] = _av_file(root / "voice.m4a", video=False)
    m["wav 8 kHz mono"] = _wav(root / "mono8k.wav", noise[:16000, :1], 8000, "PCM_16")
    m["wav 96 kHz 24-bit"] = _wav(root / "hires.wav", np.repeat(noise, 2, 0), 96000, "PCM_24")
    m["wav 6 channels"] = _wav(root / "surround.wav",
                               np.tile(noise[:, :1], (1, 6)), 48000, "PCM_16")
    nan = noise.copy()
    nan[20000:20100] = np.nan
    nan[30000] = np.inf
    m["wav with NaN/Inf"] = _wav(root / "nan.wav", nan, 48000)
    m["all-NaN wav"] = _wav(root / "allnan.wav", np.full((48000, 2), np.nan, np.float32), 48000)
    m["silent wav"] = _wav(root / "silence.wav", np.zeros((96000, 2), np.float32), 48000)
    m["0.05-s wav"] = _wav(root / "blip.wav", noise[:2400], 48000)
    m["16x16 video"] = _av_file(root / "tiny.mp4", size=(16, 16))
    m["one-frame video"] = _av_file(root / "one-frame.mp4", seconds=0.1)
    m["odd size 33x17 vp9 webm"] = _av_file(root / "odd.webm", size=(34, 18), vcodec="libvpx-vp9",
                                            acodec="libopus", rate=48000)
    m["mpeg4 avi"] = _av_file(root / "old.avi", vcodec="mpeg4", acodec="mp3", rate=44100)
    m["unicode path"] = _av_file(root / "ünïcødé 日本" / "clip é.mp4")
    m["folder as file"] = root / "a-folder.mp4"
    m["folder as file"].mkdir(exist_ok=True)
    m["wrong extension (wav named .mp4)"] = _wav(root / "sound.mp4", noise, 48000, "PCM_16")
    return m


def make_datasets(root: Path, media: dict[str, Path]) -> dict[str, tuple[Path, list[str]]]:
    """Datasets a user might point ``train`` at, with the extra options of the case."""
    good = media["normal mp4"]
    d: dict[str, tuple[Path, list[str]]] = {}
    d["missing folder"] = (root / "nothing-here", [])
    one = root / "one-class" / "park"
    for i in range(4):
        one.mkdir(parents=True, exist_ok=True)
        shutil.copy(good, one / f"p{i}.mp4")
    d["one class"] = (root / "one-class", [])
    (root / "empty-classes" / "park").mkdir(parents=True, exist_ok=True)
    (root / "empty-classes" / "tram").mkdir(parents=True, exist_ok=True)
    d["empty class folders"] = (root / "empty-classes", [])
    flat = root / "flat"
    flat.mkdir(exist_ok=True)
    for i in range(4):
        shutil.copy(good, flat / f"c{i}.mp4")
    d["flat folder of files"] = (flat, [])
    wavs = root / "wav-only"
    for label in ("park", "tram"):
        for i in range(4):
            _wav(wavs / label / f"{label}{i}.wav",
                 (0.1 * np.random.default_rng(i).standard_normal((32000, 2))).astype(np.float32),
                 32000, "PCM_16")
    d["audio-only dataset, all backbones"] = (wavs, ["--backbones", "aud-mel,vis-inc"])
    csv = root / "bad.csv"
    csv.write_text("name,kind\nx.mp4,park\n")
    d["CSV with wrong header"] = (csv, ["--layout", "csv"])
    missing = root / "missing.csv"
    missing.write_text("path,label\nnot-there.mp4,park\nalso-not.mp4,tram\n")
    d["CSV naming missing files"] = (missing, ["--layout", "csv"])
    (root / "binary.csv").write_bytes(bytes(range(256)) * 10)
    d["binary CSV"] = (root / "binary.csv", ["--layout", "csv"])
    tau = root / "tau-no-meta"
    (tau / "audio").mkdir(parents=True, exist_ok=True)
    (tau / "video").mkdir(parents=True, exist_ok=True)
    d["TAU layout without meta.csv"] = (tau, ["--layout", "tau2021"])
    return d


def make_bundles(root: Path, model: Path) -> dict[str, Path]:
    """Damaged copies of a good bundle."""
    b: dict[str, Path] = {"missing bundle": root / "no-model"}
    not_bundle = root / "just-a-folder"
    not_bundle.mkdir(parents=True, exist_ok=True)
    b["folder without manifest"] = not_bundle

    def copy(name: str) -> Path:
        target = root / name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(model, target)
        return target

    garbage = copy("garbage-manifest")
    (garbage / "manifest.json").write_text("{this is not json")
    b["manifest not JSON"] = garbage
    version = copy("future-version")
    manifest = json.loads((version / "manifest.json").read_text())
    manifest["schema_version"] = 999
    (version / "manifest.json").write_text(json.dumps(manifest))
    b["unknown schema version"] = version
    tampered = copy("tampered")
    keras_file = next(tampered.rglob("*.keras"))
    keras_file.write_bytes(keras_file.read_bytes()[:-100] + b"\0" * 100)
    b["tampered network file"] = tampered
    removed = copy("file-removed")
    next(removed.rglob("*.keras")).unlink()
    b["network file removed"] = removed
    no_classes = copy("no-classes")
    manifest = json.loads((no_classes / "manifest.json").read_text())
    manifest.pop("classes")
    (no_classes / "manifest.json").write_text(json.dumps(manifest))
    b["manifest without classes"] = no_classes
    return b


# --------------------------------------------------------------------------- running


@dataclass
class Outcome:
    group: str
    case: str
    outcome: str
    code: int | None
    message: str
    seconds: float


def run_case(group: str, case: str, argv: list[str], deadline: float, cwd: Path) -> Outcome:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", QT_QPA_PLATFORM="offscreen")
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "avsc_core", *argv], capture_output=True,
                              text=True, timeout=deadline, env=env, cwd=cwd)
    except subprocess.TimeoutExpired:
        return Outcome(group, case, "HANG", None, f"no answer in {deadline:.0f} s",
                       time.perf_counter() - start)
    seconds = time.perf_counter() - start
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    if "Traceback (most recent call last)" in done.stderr:
        outcome = "TRACEBACK"
    elif done.returncode < 0:
        outcome, last = "CRASH", f"signal {-done.returncode}"
    elif done.returncode == 0:
        outcome = "answer"
        last = _answer_summary(done.stdout, lines)
    elif done.returncode == 1:
        errors = [ln for ln in lines if ": error: " in ln]
        outcome = "refused" if len(errors) == 1 else "TRACEBACK"
        last = errors[0] if errors else last
    elif done.returncode == 2:
        outcome = "usage"
    else:
        outcome = f"exit {done.returncode}"
    return Outcome(group, case, outcome, done.returncode, last[:150], seconds)


def _answer_summary(stdout: str, stderr_lines: list[str]) -> str:
    """The label a command gave (classify --json) and its warnings, or its last line."""
    try:
        answer = json.loads(stdout)
    except ValueError:
        warnings = [ln for ln in stderr_lines if "warning" in ln.lower()]
        return (stdout.strip().splitlines() or warnings or [""])[-1]
    clip = answer.get("clip") or {}
    confidence = clip.get("confidence")
    text = f"{clip.get('label')} ({confidence:.2f})" if confidence is not None else "no label"
    warnings = answer.get("warnings") or []
    return text + (f"; warnings: {'; '.join(warnings)}" if warnings else "")


def small_filesystem(root: Path) -> Path | None:
    """A 1-MB tmpfs (root only), or ``None``."""
    target = root / "small-disk"
    target.mkdir(exist_ok=True)
    if os.geteuid() != 0:
        return None
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(target)],
                          capture_output=True)
    return target if done.returncode == 0 else None


def catalogue(work: Path, model: Path, small_disk: Path | None) -> list[tuple[str, str, list[str]]]:
    media = make_media(work / "media")
    datasets = make_datasets(work / "datasets", media)
    bundles = make_bundles(work / "bundles", model)
    out = work / "out"
    out.mkdir(exist_ok=True)
    regular_file = out / "a-file.txt"
    regular_file.write_text("x")
    cases: list[tuple[str, str, list[str]]] = []
    for name, path in media.items():
        cases.append(("media", f"classify: {name}", ["classify", "--model", str(model),
                                                      str(path), "--json"]))
    for name in ("wav with NaN/Inf", "truncated mkv", "wav 6 channels", "0.05-s wav"):
        cases.append(("media", f"features: {name}",
                      ["features", str(media[name]), "--kind", "cqt",
                       "--out", str(out / f"{name.replace(' ', '_').replace('/', '')}.npy")]))
    label_dir = work / "media"
    cases.append(("media", "label: folder of all the above",
                  ["label", "--model", str(model), str(label_dir), "--out",
                   str(out / "labels.csv"), "--recursive"]))
    for name, (path, extra) in datasets.items():
        cases.append(("dataset", f"train: {name}",
                      ["train", str(path), "--out", str(out / f"model-{len(cases)}"),
                       "--preset", "tiny", "--epochs", "1", *extra]))
    for name, path in bundles.items():
        cases.append(("bundle", f"classify: {name}",
                      ["classify", "--model", str(path), str(media["normal mp4"])]))
        cases.append(("bundle", f"info: {name}", ["info", "--model", str(path)]))
    labels_csv = out / "notlabels.csv"
    labels_csv.write_text("a,b,c\n1,2,3\n")
    cases.append(("csv", "label --resume of a CSV that is not a labels CSV",
                  ["label", "--model", str(model), str(work / "media"), "--out",
                   str(labels_csv), "--resume"]))
    cut = out / "cut-labels.csv"
    cut.write_text("file,label,confidence,audio_label,visual_label,error\nnormal.mp4,pa")
    cases.append(("csv", "label --resume of a CSV cut mid-row",
                  ["label", "--model", str(model), str(work / "media"), "--out", str(cut),
                   "--resume"]))
    bad_paths = {
        "under /proc": Path("/proc/avsc-test/x"),
        "below a regular file": regular_file / "x",
        "an existing folder": out,
    }
    normal = str(media["normal mp4"])
    for where, path in bad_paths.items():
        cases += [
            ("output", f"label --out {where}",
             ["label", "--model", str(model), str(work / "media"), "--out", str(path)]),
            ("output", f"features --out {where}",
             ["features", normal, "--kind", "mel", "--out", str(path)]),
            ("output", f"features --png {where}",
             ["features", normal, "--kind", "mel", "--png", str(path)]),
            ("output", f"evaluate --json {where}",
             ["evaluate", "--model", str(model), str(work / "sample"), "--json", str(path)]),
            ("output", f"sample-data into {where}",
             ["sample-data", str(path), "--classes", "2", "--per-class", "1"]),
        ]
        if where != "an existing folder":
            cases.append(("output", f"train --out {where}",
                          ["train", str(work / "sample"), "--out", str(path), "--preset",
                           "tiny"]))
    if small_disk is not None:
        cases += [
            ("disk full", "sample-data onto a 1-MB disk",
             ["sample-data", str(small_disk / "data"), "--classes", "2", "--per-class", "4"]),
            ("disk full", "features --out onto a 1-MB disk",
             ["features", str(media["wav 96 kHz 24-bit"]), "--kind", "cqt",
              "--out", str(small_disk / "big.npy")]),
            ("disk full", "train onto a 1-MB disk",
             ["train", str(work / "sample"), "--out", str(small_disk / "model"), "--preset",
              "tiny", "--epochs", "1", "--backbones", "aud-mel"]),
        ]
    return cases


def print_table(rows: list[Outcome]) -> None:
    print("| group | case | outcome | exit | s | message |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        message = r.message.replace("|", "\\|")
        print(f"| {r.group} | {r.case} | {r.outcome} | {'' if r.code is None else r.code} | "
              f"{r.seconds:.1f} | {message} |")
    counts = Counter(r.outcome for r in rows)
    print("\n" + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))


# --------------------------------------------------------------------------- fuzzing


def _fuzz_worker(tasks: mp.Queue, results: mp.Queue, model: Path) -> None:
    """Reads (kind, name, bytes) and answers ("ok"|"refused"|"bug", detail)."""
    import traceback

    import logging

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.disable(logging.WARNING)  # damaged inputs warn on every other input
    from avsc_core.errors import AvscError

    scratch = Path(tempfile.mkdtemp(prefix="avsc-fuzz-"))
    _fuzz_scratch(scratch, model)
    while True:
        task = tasks.get()
        if task is None:
            return
        kind, name, data = task
        try:
            _fuzz_one(kind, name, data, scratch)
        except AvscError as exc:
            results.put(("refused", str(exc).splitlines()[0][:120]))
        except Exception:  # noqa: BLE001 - what the fuzzer is looking for
            results.put(("bug", traceback.format_exc(limit=6)))
        else:
            results.put(("ok", ""))


TAU_CLIPS = ("airport-lisbon-1000-40000", "park-paris-12-400", "tram-vienna-7-800",
             "airport-paris-5-100")


def _fuzz_scratch(scratch: Path, model: Path) -> None:
    """The files the fuzzed texts refer to, so that a parser gets past "file not found"."""
    for name in ("a/x.mp4", "b/y.mp4", "c/z.wav"):
        (scratch / "csvdata" / name).parent.mkdir(parents=True, exist_ok=True)
        (scratch / "csvdata" / name).write_bytes(b"\0" * 64)
    tau = scratch / "tau"
    for clip in TAU_CLIPS:
        for kind, ext in (("audio", "wav"), ("video", "mp4")):
            (tau / kind).mkdir(parents=True, exist_ok=True)
            (tau / kind / f"{clip}.{ext}").write_bytes(b"\0" * 64)
    (tau / "evaluation_setup").mkdir(exist_ok=True)
    header = "filename_audio\tfilename_video\tscene_label\n"
    rows = [f"audio/{c}.wav\tvideo/{c}.mp4\t{c.split('-')[0]}\n" for c in TAU_CLIPS]
    (tau / "evaluation_setup" / "fold1_train.csv").write_text(header + "".join(rows[:3]))
    (tau / "evaluation_setup" / "fold1_evaluate.csv").write_text(header + rows[3])
    (tau / "evaluation_setup" / "fold1_test.csv").write_text(
        "filename_audio\tfilename_video\n" + rows[3].rsplit("\t", 1)[0] + "\n")
    shutil.copytree(model, scratch / "bundle", dirs_exist_ok=True)


def _fuzz_one(kind: str, name: str, data: bytes, scratch: Path) -> None:
    if kind == "media":
        from avsc_core.features import FeatureExtractor
        from avsc_core.media import iter_segments, probe

        path = scratch / name
        path.write_bytes(data)
        info = probe(path)
        extractor = FeatureExtractor()
        for segment in iter_segments(path, info=info):
            if segment.audio is not None:
                extractor.spectrograms(segment.audio)
    elif kind == "csv":
        from avsc_core.datasets import load_dataset

        (scratch / "csvdata" / "data.csv").write_bytes(data)
        load_dataset(scratch / "csvdata" / "data.csv", "csv")
    elif kind == "tau":
        from avsc_core.datasets import load_dataset

        (scratch / "tau" / "meta.csv").write_bytes(data)
        load_dataset(scratch / "tau", "tau2021")
    elif kind == "manifest":
        from avsc_core.bundle import load_bundle

        (scratch / "bundle" / "manifest.json").write_bytes(data)
        bundle = load_bundle(scratch / "bundle", verify=True)
        bundle.classes, bundle.media, bundle.features  # what every command reads first


class FuzzPool:
    """One worker process at a time; restarted after a crash or a hang."""

    def __init__(self, deadline: float, model: Path):
        self.deadline = deadline
        self.model = model
        self.ctx = mp.get_context("spawn")
        self._start()

    def _start(self) -> None:
        self.tasks, self.results = self.ctx.Queue(), self.ctx.Queue()
        self.worker = self.ctx.Process(target=_fuzz_worker, args=(self.tasks, self.results, self.model),
                                       daemon=True)
        self.worker.start()
        self.tasks.put(("csv", "warm-up", b"path,label\n"))  # imports before the clock
        self.results.get(timeout=120)

    def run(self, kind: str, name: str, data: bytes) -> tuple[str, str]:
        self.tasks.put((kind, name, data))
        try:
            return self.results.get(timeout=self.deadline)
        except queue.Empty:
            alive = self.worker.is_alive()
            self.worker.kill()
            self.worker.join()
            self._start()
            return ("HANG", f"no answer in {self.deadline:.0f} s") if alive else (
                "CRASH", f"worker died (exit {self.worker.exitcode})")

    def close(self) -> None:
        self.tasks.put(None)
        self.worker.join(timeout=10)


def fuzz(work: Path, model: Path, seeds: dict[str, list[tuple[str, bytes]]], minutes: float,
         deadline: float) -> None:
    import warnings

    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from hypothesis.errors import HypothesisWarning

    warnings.filterwarnings("ignore", category=HypothesisWarning)
    pool = FuzzPool(deadline, model)
    start = time.monotonic()
    stop_at = start + minutes * 60
    counts: Counter[tuple[str, str]] = Counter()
    found: list[tuple[str, str, str]] = []
    failures = work / "fuzz-failures"
    shutil.rmtree(failures, ignore_errors=True)  # this run's finds only
    failures.mkdir()

    edits = st.lists(st.tuples(st.sampled_from(["flip", "cut", "insert", "zero", "dup"]),
                               st.floats(0, 1), st.integers(0, 255), st.integers(1, 4096)),
                     min_size=1, max_size=6)

    def mutate(data: bytes, ops) -> bytes:
        buf = bytearray(data)
        for op, where, value, length in ops:
            at = int(where * max(len(buf) - 1, 0))
            if op == "flip" and buf:
                buf[at] ^= value or 1
            elif op == "cut":
                del buf[at:]
            elif op == "insert":
                buf[at:at] = bytes([value]) * length
            elif op == "zero":
                buf[at:at + length] = bytes(min(length, len(buf) - at))
            elif op == "dup":
                buf[at:at] = buf[at:at + length]
        return bytes(buf)

    kinds = [(kind, name, data) for kind, items in seeds.items() for name, data in items]
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                    max_size=4),
        max_leaves=8)

    def replace_value(data: bytes, where: float, value) -> bytes:
        """The JSON ``data`` with one of its values (at any depth) replaced by ``value``."""
        doc = json.loads(data)
        slots = []

        def walk(node) -> None:
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in list(items):
                slots.append((node, key))
                if isinstance(child, dict | list):
                    walk(child)

        walk(doc)
        node, key = slots[int(where * (len(slots) - 1))]
        node[key] = value
        return json.dumps(doc).encode()

    manifest = seeds["manifest"][0][1]

    @settings(max_examples=10**7, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.floats(0, 1), json_values)
    def one_field(where, value) -> None:
        if time.monotonic() > stop_at:
            raise _TimeUp
        data = replace_value(manifest, where, value)
        outcome, detail = pool.run("manifest", "manifest.json", data)
        counts[("manifest fields", outcome)] += 1
        if outcome not in ("ok", "refused"):
            (failures / f"manifest-field-{len(found)}.json").write_bytes(data)
            found.append(("manifest fields", outcome, detail.strip().splitlines()[-1][:150]))

    @settings(max_examples=10**7, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(kinds), edits)
    def one(seed, ops) -> None:
        if time.monotonic() > stop_at:
            raise _TimeUp
        kind, name, data = seed
        outcome, detail = pool.run(kind, name, mutate(data, ops))
        counts[(kind, outcome)] += 1
        if outcome not in ("ok", "refused"):
            sample = failures / f"{kind}-{len(found)}-{name}"
            sample.write_bytes(mutate(data, ops))
            found.append((kind, outcome, detail.strip().splitlines()[-1][:150]))

    try:
        for run, share in ((one, 0.75), (one_field, 1.0)):
            stop_at = start + share * minutes * 60
            try:
                run()
            except _TimeUp:
                pass
    finally:
        pool.close()
    print(f"\nfuzz: {sum(counts.values())} inputs in {minutes:g} min, deadline {deadline:g} s "
          "per input, each in a worker process")
    print("| target | ok | refused | bug (traceback) | CRASH | HANG |")
    print("| --- | --- | --- | --- | --- | --- |")
    for kind in [*seeds, "manifest fields"]:
        row = [counts[(kind, o)] for o in ("ok", "refused", "bug", "CRASH", "HANG")]
        print(f"| {kind} | " + " | ".join(map(str, row)) + " |")
    for kind, outcome, detail in found[:20]:
        print(f"- {kind} {outcome}: {detail}")
    if found:
        print(f"inputs that failed are in {failures}")


class _TimeUp(Exception):
    """Raised through hypothesis to end the run when the time is up."""


def fuzz_seeds(work: Path, model: Path) -> dict[str, list[tuple[str, bytes]]]:
    media = work / "media"
    seeds = {"media": [(p.name, p.read_bytes()) for p in (
        media / "normal.mp4", media / "whole.mkv", media / "hires.wav", media / "voice.m4a")]}
    real = sorted((SHARED_DATA / "tau2021-av-street-traffic").glob("*.mp4"))[:1]
    seeds["media"] += [(p.name, p.read_bytes()) for p in real]
    seeds["csv"] = [("data.csv", b"path,label,split\na/x.mp4,park,train\nb/y.mp4,tram,test\n"
                                 b"c/z.wav,park,val\n")]
    meta = "filename_audio\tfilename_video\tscene_label\tidentifier\n" + "".join(
        f"audio/{c}.wav\tvideo/{c}.mp4\t{c.split('-')[0]}\t{'-'.join(c.split('-')[1:3])}\n"
        for c in TAU_CLIPS)
    seeds["tau"] = [("meta.csv", meta.encode())]
    seeds["manifest"] = [("manifest.json", (model / "manifest.json").read_bytes())]
    return seeds


# --------------------------------------------------------------------------- main


def tiny_model(work: Path) -> Path:
    model = work / "tiny-model"
    if (model / "manifest.json").exists():
        return model
    shutil.rmtree(model, ignore_errors=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    py = [sys.executable, "-m", "avsc_core"]
    if not (work / "sample").exists():
        subprocess.run([*py, "sample-data", str(work / "sample"), "--classes", "2",
                        "--per-class", "6", "--seconds", "2"], check=True, env=env)
    print("training a tiny model for the catalogue...", file=sys.stderr)
    subprocess.run([*py, "train", str(work / "sample"), "--out", str(model), "--preset", "tiny",
                    "--epochs", "1", "--backbones", "aud-mel,vis-inc"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir())
                        / "avsc-bench-robustness")
    parser.add_argument("--model", type=Path, help="a bundle to use (default: train a tiny one)")
    parser.add_argument("--deadline", type=float, default=120.0,
                        help="seconds a command may take before it counts as a hang")
    parser.add_argument("--fuzz-minutes", type=float, default=2.0)
    parser.add_argument("--fuzz-deadline", type=float, default=20.0,
                        help="seconds one fuzz input may take")
    parser.add_argument("--only", help="run only the cases whose group or name contains this")
    args = parser.parse_args()
    from avsc_core.inference.device import cpu_info

    print(cpu_info().line())
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    model = args.model.resolve() if args.model else tiny_model(work)
    if not (work / "sample").exists():
        subprocess.run([sys.executable, "-m", "avsc_core", "sample-data", str(work / "sample"),
                        "--classes", "2", "--per-class", "6", "--seconds", "2"], check=True)
    small_disk = small_filesystem(work)
    try:
        cases = catalogue(work, model, small_disk)
        if args.only:
            cases = [c for c in cases if args.only in c[0] or args.only in c[1]]
        rows = []
        for group, case, argv in cases:
            for stale in (work / "out").glob("model-*"):
                shutil.rmtree(stale, ignore_errors=True)
            rows.append(run_case(group, case, argv, args.deadline, work))
            print(f"{rows[-1].outcome:>9}  {case}", file=sys.stderr)
        if small_disk is None:
            rows.append(Outcome("disk full", "(all cases)", "skipped", None,
                                "mounting a small tmpfs needs root", 0.0))
        print_table(rows)
    finally:
        if small_disk is not None:
            subprocess.run(["umount", str(small_disk)], capture_output=True)
    if args.fuzz_minutes > 0:
        fuzz(work, model, fuzz_seeds(work, model), args.fuzz_minutes, args.fuzz_deadline)


if __name__ == "__main__":
    main()
