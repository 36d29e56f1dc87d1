"""How far the answers can be trusted: calibration, and spotting scenes the model never saw.

    python benchmarks/trust.py [--work DIR] [--per-class 16] [--unknown-per-class 8] [--seed 0]

Generates the sample data (:func:`avsc_core.sampledata.generate_sample_dataset`): the
four classes a tiny two-phase model is trained on (bus, tram, airport, shopping mall),
and three it never sees (street pedestrian, public square, metro). Then prints:

1. log loss and expected calibration error (15 bins) of each branch on the validation
   split (where the temperatures were fitted) and the test split, before and after
   temperature scaling, as ``avsc evaluate`` reports them;
2. the share of files flagged ``unfamiliar`` among the model's own test clips and among
   the clips of the three unseen classes, and the AUROC of the unfamiliarity score
   separating the two (1 = every unseen clip scores above every known one), and the
   margin between them (the own clips' highest score, the unseen ones' lowest), beside
   the simplest alternative score, one minus the fused confidence.

3. for a shifted domain (the same four classes drawn by the generator with another seed,
   with noise added to the sound and the pictures), the held-out fused accuracy and log
   loss before and after ``avsc adapt``: every shifted file is labelled by the model and
   reviewed (its true class written in ``reviewed_label``, as a person would in the
   app's review view); ``adapt`` learns from part of them and scores the rest.

Both sets go through ``classify``'s path (:func:`avsc_core.inference.classify_files`).
Training takes about two minutes on 2 CPU cores; ``--work`` keeps the data and the model
(a second run with the same folder reuses them).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

KNOWN = ("bus", "tram", "airport", "shopping_mall")
UNSEEN = ("street_pedestrian", "public_square", "metro")


def auroc(known: np.ndarray, unseen: np.ndarray) -> float:
    """P(an unseen clip scores above a known one), ties counting half (Mann-Whitney U)."""
    higher = (unseen[:, None] > known[None, :]).sum()
    ties = (unseen[:, None] == known[None, :]).sum()
    return float((higher + 0.5 * ties) / (len(known) * len(unseen)))


def prepare(work: Path, per_class: int, unknown_per_class: int, seed: int) -> Path:
    """The data and the trained model in ``work`` (reused when already there)."""
    from avsc_core.sampledata import generate_sample_dataset
    from avsc_core.train import TrainConfig, train_model

    model = work / "model"
    if (model / "manifest.json").exists():
        return model
    start = time.perf_counter()
    generate_sample_dataset(work / "known", classes=list(KNOWN), per_class=per_class,
                            seed=seed, jobs=2)
    generate_sample_dataset(work / "unseen", classes=list(UNSEEN),
                            per_class=unknown_per_class, seed=seed, jobs=2)
    print(f"sample data written in {time.perf_counter() - start:.0f} s", flush=True)
    start = time.perf_counter()
    train_model(work / "known", model, TrainConfig.for_preset("tiny", seed=seed), jobs=2)
    print(f"tiny model trained in {time.perf_counter() - start:.0f} s", flush=True)
    return model


def calibration_table(model: Path, data: Path) -> None:
    from avsc_core.bundle import read_manifest
    from avsc_core.evaluation.evaluate import evaluate_model

    temperatures = read_manifest(model)["calibration"]["temperatures"]
    print("\ntemperatures fitted on the validation split: "
          + ", ".join(f"{b} {t:.3f}" for b, t in temperatures.items()))
    print(f"{'split':5} {'n':>3} {'branch':7} {'log loss':>17} {'ECE':>15}   accuracy")
    print(f"{'':17} {'before':>8} {'after':>8} {'before':>7} {'after':>7}")
    for split in ("val", "test"):
        result = evaluate_model(model, data, split=split)
        for branch, m in result["branches"].items():
            before = m["uncalibrated"]
            print(f"{split:5} {result['n']:3d} {branch:7} {before['log_loss']:8.3f} "
                  f"{m['log_loss']:8.3f} {before['ece']:7.3f} {m['ece']:7.3f}   "
                  f"{m['accuracy']:.3f}")


def unfamiliarity_table(model: Path, work: Path) -> None:
    from avsc_core.bundle import read_manifest
    from avsc_core.inference.classify import classify_files, load_predictor

    manifest = read_manifest(model)
    predictor = load_predictor(model)
    test = [work / "known" / c["video"] for c in manifest["dataset"]["clips"]
            if c["split"] == "test"]
    unseen = sorted((work / "unseen").rglob("*.mp4"))
    results = {}
    for name, files in (("own test clips", test), ("unseen classes", unseen)):
        outcomes = list(classify_files(files, predictor))
        failed = [o.error for o in outcomes if not o.ok]
        if failed:
            raise SystemExit(f"classify failed: {failed[0]}")
        results[name] = [o.result for o in outcomes]
    entry = manifest["unfamiliar"]
    print(f"\nunfamiliarity score: {entry['score']} ({entry['embedding']}), threshold "
          f"{entry['threshold']:.3f} (the {entry['quantile']:.0%} quantile of a log-normal "
          f"fitted to {entry['clips']} validation clips; it covers {entry['covered']:.0%})")
    for name, rs in results.items():
        flagged = sum(bool(r.unfamiliar) for r in rs)
        print(f"  {name:15} {flagged:2d}/{len(rs):2d} flagged unfamiliar ({flagged / len(rs):.0%})")
    print("  separating unseen from own test clips: AUROC, own test clips' highest score, "
          "unseen clips' lowest")
    for name, score in (("unfamiliarity score", lambda r: r.unfamiliar_score),
                        ("1 - fused confidence", lambda r: 1 - r.confidence)):
        known = np.array([score(r) for r in results["own test clips"]])
        new = np.array([score(r) for r in results["unseen classes"]])
        print(f"  {name:21} {auroc(known, new):.3f}  {known.max():9.3g}  {new.min():9.3g}")


def add_noise(clip: Path, rng: np.random.Generator, snr_db: float, pixel_sd: float) -> None:
    """Re-encode ``clip`` with white noise in its sound (at ``snr_db``) and its frames."""
    import av

    from avsc_core.sampledata.encode import write_mp4

    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        fps = int(round(float(stream.average_rate)))
        width, height = stream.width, stream.height
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(clip)) as container:
        rate = container.streams.audio[0].rate
        audio = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    audio = audio.astype(np.float32)
    noise = rng.standard_normal(audio.shape).astype(np.float32)
    audio = audio + noise * np.sqrt(np.mean(audio**2) / 10 ** (snr_db / 10))
    audio /= max(1.0, float(np.abs(audio).max()))
    noisy = [np.clip(f + rng.normal(0, pixel_sd, f.shape), 0, 255).astype(np.uint8)
             for f in frames]
    write_mp4(clip, audio, rate, noisy, fps, width, height)


def adaptation_table(model: Path, work: Path, per_class: int, seed: int) -> None:
    from avsc_core.adapt import adapt_model
    from avsc_core.label import label_folder
    from avsc_core.label.csv_out import read_rows, write_rows
    from avsc_core.sampledata import generate_sample_dataset

    shifted = work / "shifted"
    if not shifted.exists():
        files = generate_sample_dataset(shifted, classes=list(KNOWN), per_class=per_class,
                                        seed=seed + 1000, jobs=2)
        rng = np.random.default_rng(seed)
        for clip in files:
            add_noise(clip, rng, snr_db=0.0, pixel_sd=40.0)
    labels = work / "shifted-labels.csv"
    for stale in (labels, labels.with_suffix(".params.json")):
        stale.unlink(missing_ok=True)
    label_folder(shifted, model, labels, recursive=True)
    reviewed = [dataclasses.replace(r, reviewed_label=r.file.split("/")[0])
                for r in read_rows(labels)]
    write_rows(labels, reviewed)
    wrong = sum(r.label != r.reviewed_label for r in reviewed)
    out = work / "adapted"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    summary = adapt_model(model, labels, out, holdout=0.5, seed=seed)
    seconds = time.perf_counter() - start
    before, after = summary.before["fused"], summary.after["fused"]
    print(f"\nshifted domain (generator seed {seed + 1000}, noise at 0 dB SNR and 40 "
          f"grey levels): the model labelled {wrong}/{len(reviewed)} files wrong")
    print(f"adapt on {summary.files - summary.holdout} reviewed files, scored on "
          f"{summary.holdout} held out ({seconds:.0f} s):")
    print(f"  fused accuracy {before['accuracy']:.3f} -> {after['accuracy']:.3f}, log loss "
          f"{before['log_loss']:.3f} -> {after['log_loss']:.3f} (uncalibrated "
          f"{after.get('uncalibrated', after)['log_loss']:.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="keep data and model here (default: temp)")
    parser.add_argument("--per-class", type=int, default=16,
                        help="clips per trained class (default: %(default)s)")
    parser.add_argument("--unknown-per-class", type=int, default=8,
                        help="clips per unseen class (default: %(default)s)")
    parser.add_argument("--shifted-per-class", type=int, default=8,
                        help="clips per class of the shifted domain (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="data and training seed")
    args = parser.parse_args()
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notes, not results
    with tempfile.TemporaryDirectory(prefix="avsc-trust-") as tmp:
        work = args.work or Path(tmp)
        model = prepare(work, args.per_class, args.unknown_per_class, args.seed)
        calibration_table(model, work / "known")
        unfamiliarity_table(model, work)
        adaptation_table(model, work, args.shifted_per_class, args.seed)


if __name__ == "__main__":
    main()
