"""Seconds per 10-s clip of the whole inference path, Keras against the exported runtimes.

Prints, in one run:

1. For the ``paper`` preset (five backbones, f4 fusion; random weights, which cost the
   same arithmetic as trained ones) and each runtime (Keras and the TFLite/ONNX exports):
   per-stage wall seconds for one real 10-s clip (decode, features, each backbone, fusion),
   the end-to-end seconds and CPU seconds, model loading, and peak memory. Each runtime
   runs in its own process, so its peak memory is its own.
2. ``avsc label`` files per second with ``--jobs 1`` and ``--jobs 2`` on the real 10-s TAU
   street videos, per runtime, and how often the runtimes' labels agree there.
3. How far the exports are from Keras on a model trained on the sample data, over its clips
   and the real clips in ``../shared/data``: the largest probability difference of each
   export from Keras, and the share of clips whose labels match fp32 (an onnx int8
   export calibrates on every other video, which is then left out).

    python benchmarks/inference.py [--work DIR] [--repeat N] [--runtimes ...]
                                   [--model MODEL] [--skip-label] [--skip-agreement]

The paper bundle, its exports and the trained sample model are kept in ``--work``
(default ``/tmp/avsc-bench-inference``), so a second run starts measuring at once.
CPU seconds are printed beside wall seconds because a shared machine's other load
lengthens wall time but not the CPU time a run needs.

Targets (issue "Fast runtime"): the fp32 export at least 2x faster end to end than Keras
with the same answers (<= 1e-3), and a reduced-precision export at most 1.5 s per clip
with labels agreeing with fp32 on at least 99% of clips.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
STREET = SHARED / "tau2021-av-street-traffic"
TAU_AUDIO = SHARED / "tau2021-audio"
EXPORTS = {"tflite-fp32": ("tflite", "fp32"), "tflite-int8": ("tflite", "int8"),
           "onnx-fp32": ("onnx", "fp32"), "onnx-bf16": ("onnx", "bf16"),
           "onnx-int8": ("onnx", "int8")}


def trained_like_norms(model, seed: int = 0) -> None:
    """Give ``model``'s LayerNorms and ConvNeXt LayerScales values like trained ones.

    Keras initialises them to gamma 1, beta 0 and a layer scale of 1e-6; the converters
    drop a multiplication by one and an addition of zero, so an untrained ConvNeXt would
    run faster than a trained one and would not show what folding them saves.
    """
    import keras

    rng = np.random.default_rng(seed)
    stack = [model]
    while stack:
        for layer in stack.pop().layers:
            if isinstance(layer, keras.Model):
                stack.append(layer)
            elif isinstance(layer, keras.layers.LayerNormalization) and layer.weights:
                layer.set_weights([
                    (rng.uniform(0.3, 2.0, w.shape) if "gamma" in v.path else
                     rng.normal(0.0, 0.3, w.shape)).astype(np.float32)
                    for v, w in zip(layer.weights, layer.get_weights())])
            elif type(layer).__name__ == "LayerScale":
                shape = layer.get_weights()[0].shape
                layer.set_weights([rng.uniform(0.05, 1.0, shape).astype(np.float32)])


def write_paper_bundle(out: Path, classes: int = 10, fusion: str = "f4") -> Path:
    """A bundle of untrained ``paper`` networks: five backbones and the three heads.

    The weights are Keras's initialisation (no ImageNet, no training), which is all a
    timing needs, except for the LayerNorms and layer scales (:func:`trained_like_norms`);
    the manifest is what ``avsc train`` writes, so every command accepts it.
    """
    import keras

    from avsc_core import __version__
    from avsc_core.atomic import write_json
    from avsc_core.bundle.manifest import FORMAT, MANIFEST, SCHEMA_VERSION, file_entry
    from avsc_core.config import FeatureConfig, MediaConfig, feature_shape
    from avsc_core.datasets.types import TAU_CLASSES
    from avsc_core.models import BACKBONES, build_backbone, build_fusion_head, fusion_spec

    media, features = MediaConfig(), FeatureConfig()
    out.mkdir(parents=True, exist_ok=True)
    backbones, dims = [], {}
    embedding = f"emb{fusion_spec(fusion).embedding_type}"
    for name, spec in BACKBONES.items():
        shape = feature_shape(media, features) if spec.modality == "audio" else None
        model = build_backbone(name, "paper", classes, input_shape=shape)
        trained_like_norms(model)
        dims[name] = int(model.get_layer(embedding).output.shape[-1])
        path = out / "backbones" / f"{name}.keras"
        path.parent.mkdir(exist_ok=True)
        model.save(path)
        backbones.append({"name": name, "modality": spec.modality, "feature": spec.feature,
                          "params": int(model.count_params()), **file_entry(out, path)})
        keras.backend.clear_session()
    heads = {}
    groups = {"audio": [n for n in BACKBONES if BACKBONES[n].modality == "audio"],
              "visual": [n for n in BACKBONES if BACKBONES[n].modality == "visual"],
              "fused": list(BACKBONES)}
    for head, inputs in groups.items():
        path = out / "heads" / f"{head}.keras"
        path.parent.mkdir(exist_ok=True)
        build_fusion_head(fusion, dims, inputs, classes).save(path)
        heads[head] = {"inputs": inputs, **file_entry(out, path)}
    write_json(out / MANIFEST, {
        "format": FORMAT, "schema_version": SCHEMA_VERSION, "avsc_version": __version__,
        "strategy": "two-phase", "preset": "paper", "classes": list(TAU_CLASSES[:classes]),
        "fusion": fusion, "embedding_type": fusion_spec(fusion).embedding_type,
        "media": media.to_dict(), "features": features.to_dict(),
        "backbones": backbones, "heads": heads, "note": "untrained weights, for timing",
    })
    return out


def ensure_exports(bundle: Path, keys: list[str], calibration: list[Path]
                   ) -> dict[str, float]:
    """Export what ``bundle`` lacks of ``keys``; seconds each conversion took.

    An ONNX int8 export takes its ranges from the ``calibration`` files."""
    from avsc_core.bundle import load_bundle
    from avsc_core.export import export_model
    from avsc_core.export.formats import needs_calibration

    taken = {}
    have = load_bundle(bundle, verify=False).exports
    for key in keys:
        if key in EXPORTS and key not in have:
            start = time.perf_counter()
            export_model(bundle, *EXPORTS[key],
                         calibration=calibration if needs_calibration(*EXPORTS[key]) else None)
            taken[key] = time.perf_counter() - start
    return taken


# --- one runtime, in a child process -------------------------------------------------------

def child(bundle_path: Path, runtime: str, clip: Path, repeat: int, label_folder: Path | None,
          jobs: list[int]) -> dict:
    """Stage timings, memory and label speed of one runtime (runs in its own process).

    The end-to-end figures time :func:`classify_with`, the path ``avsc classify`` takes
    (probe, decode, features, networks, fusion, result); the stages time the same steps
    one by one, so their sum is close to, but not exactly, the end-to-end time.
    """
    from avsc_core.bundle import load_bundle
    from avsc_core.features import FeatureExtractor
    from avsc_core.inference.backbones import run_audio_backbone, run_visual_backbone
    from avsc_core.inference.classify import classify_with, plan_for
    from avsc_core.inference.predictor import Predictor
    from avsc_core.media import iter_segments, probe

    start = time.perf_counter()
    bundle = load_bundle(bundle_path)
    predictor = Predictor(bundle, runtime=runtime)
    plan = plan_for(predictor)
    extractor = FeatureExtractor(bundle.features, bundle.media.sample_rate)

    def stages_pass() -> dict[str, float]:
        stages: dict[str, float] = {}
        t = time.perf_counter()
        segments = list(iter_segments(clip, bundle.media, info=probe(clip)))
        stages["decode"] = time.perf_counter() - t
        t = time.perf_counter()
        per_segment = [extractor.features(s.audio, plan.kinds) for s in segments]
        features = {k: np.stack([f[k] for f in per_segment]) for k in plan.kinds}
        frames = np.stack([s.frames for s in segments])
        stages["features"] = time.perf_counter() - t
        embeddings = {}
        key = f"emb{predictor.embedding_type}"
        for name in bundle.backbone_names:
            t = time.perf_counter()
            feature = bundle.backbone_entry(name)["feature"]
            out = (run_visual_backbone(predictor.backbone(name), frames) if feature == "frames"
                   else run_audio_backbone(predictor.backbone(name), features[feature]))
            embeddings[name] = out[key]
            stages[name] = time.perf_counter() - t
        t = time.perf_counter()
        for head in bundle.head_names:
            inputs = bundle.manifest["heads"][head]["inputs"]
            predictor.head(head)({n: embeddings[n] for n in inputs})
        stages["fusion"] = time.perf_counter() - t
        return stages

    def end_to_end() -> tuple[float, float]:
        cpu, wall = time.process_time(), time.perf_counter()
        classify_with(clip, predictor, plan, extractor=extractor)
        return time.perf_counter() - wall, time.process_time() - cpu

    end_to_end()  # loads every network and pays first-call costs
    load = time.perf_counter() - start
    stage_runs = [stages_pass() for _ in range(repeat)]
    runs = [end_to_end() for _ in range(repeat)]
    result = {
        "runtime": predictor.runtime,
        "networks": predictor.describe(),
        "load": load,
        "stages": {k: statistics.median(r[k] for r in stage_runs) for k in stage_runs[0]},
        "end_to_end": statistics.median(r[0] for r in runs),
        "end_to_end_best": min(r[0] for r in runs),
        "cpu": statistics.median(r[1] for r in runs),
    }
    if label_folder is not None:
        result["label"] = label_speed(predictor, label_folder, jobs)
    result["peak_mb"] = peak_memory_mb()
    return result


def peak_memory_mb() -> float:
    """Peak resident memory of this process.

    Linux keeps ``getrusage``'s ``ru_maxrss`` across ``exec``, so a child started by a big
    parent would report the parent's peak; ``VmHWM`` belongs to this process image alone.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def label_speed(predictor, folder: Path, jobs: list[int]) -> dict:
    """Files per second of ``label_folder`` for each ``jobs``, and the labels it gave."""
    try:
        from avsc_core.label import label_folder
    except ImportError:
        return {"note": "avsc_core.label is not available"}
    import csv

    speed, labels = {}, {}
    for n in jobs:
        with tempfile.TemporaryDirectory() as tmp:
            summary = label_folder(folder, predictor, Path(tmp) / "labels.csv", jobs=n)
            speed[str(n)] = summary.files_per_second
            with open(Path(tmp) / "labels.csv", newline="") as handle:
                labels = {row["file"]: row["label"] for row in csv.DictReader(handle)}
    return {"files_per_second": speed, "labels": labels}


def run_child(args: argparse.Namespace, bundle: Path, runtime: str, clip: Path) -> dict:
    command = [sys.executable, __file__, "--child", runtime, "--bundle", str(bundle),
               "--clip", str(clip), "--repeat", str(args.repeat)]
    if not args.skip_label and STREET.is_dir():
        command += ["--label-folder", str(STREET)]
    done = subprocess.run(command, check=False, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if done.returncode != 0:
        raise SystemExit(f"{runtime} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- agreement on a trained model ------------------------------------------------------------

def trained_sample_model(work: Path) -> Path:
    """A tiny two-phase model trained on generated sample data (made once, kept in work)."""
    model = work / "sample-model"
    if (model / "manifest.json").exists():
        return model
    from avsc_core.sampledata import generate_sample_dataset
    from avsc_core.train import TrainConfig, train_model

    data = work / "sample-data"
    generate_sample_dataset(data, classes=4, per_class=6, seconds=4.0)
    config = TrainConfig.for_preset("tiny", phase1_epochs=4, phase2_epochs=6, batch_size=8)
    return train_model(data, model, config)


def agreement(model: Path, files: list[Path]) -> dict:
    """Per export: largest probability difference from Keras and label agreement with fp32."""
    from avsc_core.bundle import load_bundle
    from avsc_core.errors import AvscError
    from avsc_core.features import file_features, file_frames
    from avsc_core.inference.predictor import Predictor

    bundle = load_bundle(model)
    runtimes = ["keras", *[k for k in EXPORTS if k in bundle.exports]]
    predictors = {r: Predictor(bundle, runtime=r) for r in runtimes}
    kinds, need_frames = predictors["keras"].needs()
    outputs: dict[str, list] = {r: [] for r in runtimes}
    used = 0
    for path in files:
        try:
            features = file_features(path, kinds, bundle.media, bundle.features)
        except AvscError:
            features = None
        try:
            frames = file_frames(path, bundle.media) if need_frames else None
        except AvscError:
            frames = None
        if features is None and frames is None:
            continue
        used += 1
        for r, p in predictors.items():
            outputs[r].append(p.predict(features, frames))
    reference = "tflite-fp32" if "tflite-fp32" in outputs else "keras"
    report = {"clips": used, "reference": reference, "runtimes": {}}
    for r in runtimes[1:]:
        diff, same, total = 0.0, 0, 0
        for ref, keras_out, got in zip(outputs[reference], outputs["keras"], outputs[r]):
            for name, probs in keras_out.branches.items():
                if probs is None:
                    continue
                diff = max(diff, float(np.max(np.abs(probs - got.branches[name]))))
            fused_ref = ref.branches["fused"].mean(axis=0).argmax()
            same += int(fused_ref == got.branches["fused"].mean(axis=0).argmax())
            total += 1
        report["runtimes"][r] = {"max_abs_diff_vs_keras": diff, "agree": same / max(total, 1)}
    return report


# --- output -------------------------------------------------------------------------------

def print_table(results: dict[str, dict]) -> None:
    names = list(results)
    stages = list(next(iter(results.values()))["stages"])
    width = max(12, *(len(n) + 2 for n in names))
    print(f"{'seconds per 10-s clip':24}" + "".join(f"{n:>{width}}" for n in names))
    for stage in stages:
        print(f"{stage:24}" + "".join(f"{results[n]['stages'][stage]:{width}.3f}" for n in names))
    rows = [("end to end (wall)", "end_to_end", ".3f"),
            ("end to end (best)", "end_to_end_best", ".3f"), ("end to end (CPU s)", "cpu", ".3f"),
            ("model loading", "load", ".1f"), ("peak memory (MB)", "peak_mb", ".0f")]
    for title, key, fmt in rows:
        print(f"{title:24}" + "".join(f"{results[n][key]:{width}{fmt}}" for n in names))
    keras = results.get("keras")
    if keras:
        print(f"{'speed-up vs Keras':24}" + "".join(
            f"{keras['end_to_end'] / results[n]['end_to_end']:{width}.2f}" for n in names))
    labelled = {n: r["label"] for n, r in results.items() if "files_per_second" in r.get("label", {})}
    if labelled:
        print()
        print(f"{'label files/s':24}" + "".join(f"{n:>{width}}" for n in labelled))
        for jobs in next(iter(labelled.values()))["files_per_second"]:
            print(f"{'--jobs ' + jobs:24}" + "".join(
                f"{labelled[n]['files_per_second'][jobs]:{width}.3f}" for n in labelled))
        base = labelled.get("keras") or next(iter(labelled.values()))
        for n, lab in labelled.items():
            same = sum(lab["labels"].get(f) == v for f, v in base["labels"].items())
            print(f"  labels of {n} equal to {'keras' if 'keras' in labelled else names[0]}: "
                  f"{same}/{len(base['labels'])} (untrained paper networks)")
    else:
        notes = {r.get("label", {}).get("note") for r in results.values()} - {None}
        for note in notes:
            print(f"label: skipped ({note})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/avsc-bench-inference"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--runtimes", default="keras,tflite-fp32,tflite-int8,onnx-fp32",
                        help=f"keras and any of {', '.join(EXPORTS)}")
    parser.add_argument("--clip", type=Path, help="a 10-s video (default: a real TAU clip)")
    parser.add_argument("--model", type=Path,
                        help="a trained model for the agreement check (default: train one on "
                        "sample data)")
    parser.add_argument("--skip-label", action="store_true")
    parser.add_argument("--skip-agreement", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--bundle", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--label-folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if args.child:
        result = child(args.bundle, args.child, args.clip, args.repeat, args.label_folder,
                       args.jobs)
        print(json.dumps(result))
        return 0

    from avsc_core.inference.runtime import kernels_report

    for line in kernels_report():  # the CPU model and its vector extensions first
        print(line)
    clip = args.clip or min(STREET.glob("*.mp4"))
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    bundle = args.work / "paper-model"
    if not (bundle / "manifest.json").exists():
        start = time.perf_counter()
        write_paper_bundle(bundle)
        print(f"wrote the untrained paper bundle in {time.perf_counter() - start:.0f} s")
    for key, seconds in ensure_exports(bundle, runtimes, sorted(STREET.glob("*.mp4"))).items():
        print(f"exported {key} in {seconds:.0f} s")
    print(f"clip {clip.name}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}, median of {args.repeat} runs after a warm-up\n")
    results = {r: run_child(args, bundle, r, clip) for r in runtimes}
    for r, result in results.items():
        print(f"{r:12} {result['networks']}")
    print("(the stage rows run one network at a time, on one lane's threads; the end-to-end "
          "rows run them as classify does)")
    print_table(results)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")

    if not args.skip_agreement:
        model = args.model or trained_sample_model(args.work)
        data = args.work / "sample-data"
        files = sorted(data.rglob("*.mp4")) if not args.model and data.is_dir() else []
        files += sorted(STREET.glob("*.mp4"))
        # An int8 export calibrates on every other video; the others are scored.
        calibration, files = files[::2], files[1::2] + sorted(TAU_AUDIO.glob("*.wav"))
        # tflite-fp32 is the labels' reference.
        wanted = list(dict.fromkeys(["tflite-fp32", *(k for k in runtimes if k in EXPORTS)]))
        ensure_exports(model, wanted, calibration)
        report = agreement(model, files)
        print(f"\nagreement on {report['clips']} clips ({model}): fused clip label against "
              f"{report['reference']}")
        for r, values in report["runtimes"].items():
            print(f"  {r:12} max |p - p_keras| {values['max_abs_diff_vs_keras']:.2e}   "
                  f"labels agree {100 * values['agree']:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
