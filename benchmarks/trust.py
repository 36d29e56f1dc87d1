"""How far the answers can be trusted: calibration, and spotting scenes the model never saw.

    python benchmarks/trust.py [--work DIR] [--per-class 16] [--unknown-per-class 8]
                               [--shifted-per-class 16] [--seed 0]

Generates the sample data (:func:`avsc_core.sampledata.generate_sample_dataset`): the
four classes a tiny two-phase model is trained on (bus, tram, airport, shopping mall),
and three it never sees (street pedestrian, public square, metro). Then prints:

1. each branch's temperature and why it was kept (the manifest's ``calibration.fit``:
   shrunk towards 1, refused when leave-one-out on the validation clips does not show
   it helps, :func:`avsc_core.evaluation.calibration.fit_temperature`), then log loss
   and expected calibration error (15 bins) of each branch on the validation split
   (where the temperatures were fitted) and the test split, before and after
   temperature scaling, as ``avsc evaluate`` reports them;
2. the share of files flagged ``unfamiliar`` among the model's own test clips and among
   the clips of the three unseen classes, and the AUROC of the unfamiliarity score
   separating the two (1 = every unseen clip scores above every known one), and the
   margin between them (the own clips' highest score, the unseen ones' lowest), beside
   the simplest alternative score, one minus the fused confidence.

3. for a shifted domain, the held-out fused accuracy and log loss before and after ``avsc
   adapt``: the same four classes drawn by the generator with another seed, as a worse
   camera and microphone record them (:class:`Shift`: the sound low-passed at 1 kHz with
   noise at -5 dB SNR, the pictures washed out to 35 % saturation with noise of 60 grey
   levels; each blurs the one cue that tells a pair of classes apart). Every shifted file
   is labelled by the model and reviewed (its true class written in ``reviewed_label``,
   as a person would in the app's review view); ``adapt`` learns from half of them and
   scores the other half.

Both sets go through ``classify``'s path
(:func:`avsc_core.inference.pipeline.classify_files`).
Training takes about two minutes on 2 CPU cores, the shifted domain about four; ``--work`` keeps the data and the model
(a second run with the same folder reuses them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
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
    from avsc_core.inference.calibration import calibration_notes

    print("\ntemperatures, from the validation split:")
    for branch, note in calibration_notes(read_manifest(model)).items():
        print(f"  {branch:7} {note}")
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
    from avsc_core.inference.classify import load_predictor
    from avsc_core.inference.pipeline import classify_files

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


@dataclass(frozen=True)
class Shift:
    """How the shifted domain differs from the training data: another recording of the
    same scenes with a worse camera and microphone.

    Attributes
    ----------
    seed_offset : int
        Added to the training seed for the generator: other clips of the same classes.
    snr_db : float
        White noise added to the sound at this signal-to-noise ratio.
    lowpass_hz : float
        A muffled microphone: second-order Butterworth low-pass at this cut-off (the
        airport's murmur centres at 600 Hz, the mall's at 1400 Hz, and only the sound
        tells those two apart).
    pixel_sd : float
        Gaussian noise added to every pixel, in grey levels.
    saturation : float
        A washed-out camera: each pixel's distance from its own grey kept at this share
        (only the picture tells the warm bus from the teal tram).
    """

    seed_offset: int = 1000
    snr_db: float = -5.0
    lowpass_hz: float = 1000.0
    pixel_sd: float = 60.0
    saturation: float = 0.35

    def describe(self, seed: int) -> str:
        return (f"generator seed {seed + self.seed_offset}; sound: noise at "
                f"{self.snr_db:g} dB SNR, low-pass {self.lowpass_hz:g} Hz; pictures: noise "
                f"of {self.pixel_sd:g} grey levels, saturation x{self.saturation:g}")


SHIFT = Shift()


def muffle(audio: np.ndarray, rate: int, shift: Shift, rng: np.random.Generator) -> np.ndarray:
    """``audio`` ``(channels, samples)`` low-passed, then with white noise at the SNR."""
    from scipy.signal import butter, sosfilt

    sos = butter(2, shift.lowpass_hz, fs=rate, output="sos")
    audio = sosfilt(sos, audio.astype(np.float64), axis=1)
    noise = rng.standard_normal(audio.shape)
    audio = audio + noise * np.sqrt(np.mean(audio**2) / 10 ** (shift.snr_db / 10))
    # Rescaled into -1..1 rather than clipped, so the noise does not distort it further.
    return (audio / max(1.0, float(np.abs(audio).max()))).astype(np.float32)


def wash_out(frame: np.ndarray, shift: Shift, rng: np.random.Generator) -> np.ndarray:
    """A uint8 RGB ``frame`` desaturated towards its grey, with pixel noise."""
    rgb = frame.astype(np.float64)
    grey = rgb.mean(axis=2, keepdims=True)
    rgb = grey + shift.saturation * (rgb - grey) + rng.normal(0, shift.pixel_sd, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def perturb(clip: Path, rng: np.random.Generator, shift: Shift) -> None:
    """Re-encode ``clip`` as the worse camera and microphone of ``shift`` record it."""
    import av

    from avsc_core.sampledata.encode import write_mp4

    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        fps = round(float(stream.average_rate))
        width, height = stream.width, stream.height
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    with av.open(str(clip)) as container:
        rate = container.streams.audio[0].rate
        audio = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    write_mp4(clip, muffle(audio, rate, shift, rng), rate,
              [wash_out(f, shift, rng) for f in frames], fps, width, height)


def shifted_domain(work: Path, per_class: int, seed: int, shift: Shift) -> Path:
    """The shifted clips in ``work/shifted``, made again unless the folder records the
    same ``shift``, seed and size (a reused folder must be the data the table names)."""
    folder = work / "shifted"
    record = folder / "shift.json"
    wanted = {**dataclasses.asdict(shift), "seed": seed, "per_class": per_class}
    if record.exists() and json.loads(record.read_text()) == wanted:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    from avsc_core.sampledata import generate_sample_dataset

    files = generate_sample_dataset(folder, classes=list(KNOWN), per_class=per_class,
                                    seed=seed + shift.seed_offset, jobs=2)
    rng = np.random.default_rng(seed)
    for clip in files:
        perturb(clip, rng, shift)
    record.write_text(json.dumps(wanted))
    return folder


def adaptation_table(model: Path, work: Path, per_class: int, seed: int,
                     shift: Shift = SHIFT) -> None:
    from avsc_core.adapt import adapt_model
    from avsc_core.label import label_folder
    from avsc_core.label.csv_out import read_rows, write_rows

    shifted = shifted_domain(work, per_class, seed, shift)
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
    print(f"\nshifted domain ({shift.describe(seed)}): the model labelled "
          f"{wrong}/{len(reviewed)} files wrong")
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
    parser.add_argument("--shifted-per-class", type=int, default=16,
                        help="clips per class of the shifted domain (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="data and training seed")
    args = parser.parse_args()
    import logging

    from avsc_core.inference.device import cpu_info

    print(cpu_info().line())

    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notes, not results
    with tempfile.TemporaryDirectory(prefix="avsc-trust-") as tmp:
        work = args.work or Path(tmp)
        model = prepare(work, args.per_class, args.unknown_per_class, args.seed)
        calibration_table(model, work / "known")
        unfamiliarity_table(model, work)
        adaptation_table(model, work, args.shifted_per_class, args.seed)


if __name__ == "__main__":
    main()
