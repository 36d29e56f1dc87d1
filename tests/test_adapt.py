"""Corrections adapt the model: ``avsc adapt`` learns new heads from reviewed labels.

The shifted domain: the conftest classes with their pictures' colours swapped (parks
look like trams and trams like parks), so the tiny model, which leans on its pictures, is
wrong on every file; new heads learnt from reviewed files of the shift put that right.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, TINY_CLASSES, write_media

from avsc_core.adapt.reviewed import check_reviewed, read_reviewed
from avsc_core.bundle import load_bundle
from avsc_core.cli.adapt import format_summary
from avsc_core.cli.main import main
from avsc_core.errors import AvscError

COLUMNS = ("file", "label", "confidence", "audio_label", "visual_label", "error",
           "needs_review", "reviewed_label")
PER_CLASS = 10
# Enough for the new fused head to leave the old one's start (the average of the backbones'
# answers, here wrong) on the tiny model's one batch per epoch.
EPOCHS = 20


def write_labels(path: Path, rows: list[dict[str, str]], columns=COLUMNS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def reviewed_row(file: str, label: str, **cells: str) -> dict[str, str]:
    return {"file": file, "label": "", "error": "", "reviewed_label": label, **cells}


def checksums(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_main(*args: object) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(a) for a in args])
    return code, out.getvalue()


@pytest.fixture(scope="module")
def shifted(tmp_path_factory) -> Path:
    """The shifted clips in ``media/`` and, in ``labels/``, their reviewed labels CSV with
    a parameters file naming the media folder (as ``avsc label`` writes it)."""
    root = tmp_path_factory.mktemp("shifted")
    colours = {"park": TINY_CLASSES["tram"][1], "tram": TINY_CLASSES["park"][1]}
    rng = np.random.default_rng(1)
    rows = []
    for label, (hz, _) in TINY_CLASSES.items():
        for i in range(PER_CLASS):
            name = f"{label}-{i}.mp4"
            write_media(root / "media" / name, seconds=2.0, fps=4, size=(48, 32),
                        tone_hz=hz * (1 + 0.05 * rng.standard_normal()),
                        frame_colour=colours[label])
            rows.append(reviewed_row(name, label))
    labels = write_labels(root / "labels" / "reviewed.csv", rows)
    (root / "labels" / "reviewed.params.json").write_text(
        json.dumps({"labels": labels.name, "folder": str(root / "media")}))
    return labels


@pytest.fixture(scope="module")
def adapted(trained_tiny_model, shifted, tmp_path_factory):
    """``avsc adapt`` run once: the new bundle, what it printed, the model's checksums."""
    before = checksums(trained_tiny_model)
    out = tmp_path_factory.mktemp("adapted") / "model2"
    code, printed = run_main("adapt", "--model", trained_tiny_model, "--labels", shifted,
                             "--out", out, "--epochs", EPOCHS, "--jobs", 1,
                             "--cache-dir", tmp_path_factory.mktemp("adapt-cache"))
    assert code == 0
    return out, printed, before


def test_the_new_bundle_loads_classifies_and_records_what_it_was_adapted_on(
    adapted, trained_tiny_model, shifted
):
    from avsc_core.inference.classify import classify_file

    out, _, _ = adapted
    bundle = load_bundle(out)  # every checksum verified
    manifest = bundle.manifest
    record = manifest["adapted"]
    original = hashlib.sha256((trained_tiny_model / "manifest.json").read_bytes()).hexdigest()
    assert record["from"] == original
    assert record["labels"] == str(shifted.resolve())
    assert (record["files"], record["holdout"]) == (2 * PER_CLASS, 6)  # 3 of 10 per class
    assert record["heads"] == ["audio", "visual", "fused"]
    assert (record["epochs"], record["seed"]) == (EPOCHS, 0)
    assert record["before"]["fused"]["accuracy"] is not None and record["created"]
    assert manifest["metrics"] == {"holdout": {"n": 6, "branches": record["after"]}}
    assert manifest["calibration"]["fit"]["fused"]["clips"] == 6
    assert manifest["unfamiliar"]["clips"] == 6
    assert [h["epoch"] for h in manifest["history"]["phase2:fused"]] == list(range(1, EPOCHS + 1))
    assert "exports" not in manifest and not (out / "training").exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["model2"]  # no temporary folder
    result = classify_file(shifted.parent.parent / "media" / "park-0.mp4", bundle)
    assert result.clip["label"] == "park"


def test_held_out_files_score_better_after(adapted):
    out, printed, _ = adapted
    record = json.loads((out / "manifest.json").read_text())["adapted"]
    before, after = record["before"]["fused"], record["after"]["fused"]
    assert after["accuracy"] >= before["accuracy"]
    assert after["accuracy"] == 1.0 and before["accuracy"] == 0.0  # the shift fooled it
    assert after["uncalibrated"]["log_loss"] < before["uncalibrated"]["log_loss"]
    lines = printed.splitlines()
    assert lines[0].startswith(f"{out}: adapted on 20 reviewed files (14 learnt from, 6 held")
    assert lines[1].startswith("held-out fused accuracy 0.000 -> 1.000, log loss ")


def test_the_model_adapted_is_left_unchanged(adapted, trained_tiny_model):
    _, _, before = adapted
    assert checksums(trained_tiny_model) == before


def test_a_joint_model_gets_a_new_classifier(tiny_dataset, shifted, tmp_path):
    from avsc_core.adapt import adapt_model
    from avsc_core.train import TrainConfig, train_model

    joint = train_model(tiny_dataset, tmp_path / "joint", jobs=1, config=TrainConfig.for_preset(
        "tiny", strategy="joint", joint_epochs=2, batch_size=4))
    summary = adapt_model(joint, shifted, tmp_path / "joint2", epochs=5, jobs=1)
    assert summary.heads == ("fused",)
    assert summary.after["fused"]["accuracy"] >= summary.before["fused"]["accuracy"]
    old, new = (load_bundle(m).manifest["heads"] for m in (joint, tmp_path / "joint2"))
    assert new["fused"]["sha256"] != old["fused"]["sha256"]
    assert new["audio"]["sha256"] == old["audio"]["sha256"]  # the encoder's own answer

    # Nothing held out: nothing to compare or calibrate on, and the bundle says why.
    summary = adapt_model(joint, shifted, tmp_path / "all", holdout=0, epochs=1, jobs=1)
    assert (summary.files, summary.holdout, summary.before, summary.after) == (20, 0, None, None)
    assert "no file held out" in format_summary(summary)
    manifest = load_bundle(tmp_path / "all").manifest
    assert manifest["calibration"]["temperatures"]["fused"] == 1.0
    assert "skipped" in manifest["calibration"]["fit"]["fused"]
    assert manifest["unfamiliar"]["skipped"] == "no validation clips"
    assert manifest["metrics"] == {}


# --------------------------------------------------------------------------- refusals


def assert_refused(capsys, argv: list[object], *words: str) -> None:
    """Exit 1 and one line on stderr holding ``words``."""
    capsys.readouterr()
    code, _ = run_main(*argv)
    err = capsys.readouterr().err
    assert code == 1, err
    [line] = err.splitlines()
    assert line.startswith("avsc adapt: error: ")
    for word in words:
        assert word in line, line


@pytest.mark.parametrize("rows, words", [
    ([reviewed_row("park-0.mp4", "airport")],
     ["classes the model does not know: airport", "(it knows park, tram)"]),
    ([reviewed_row("park-0.mp4", "park"), reviewed_row("gone.mp4", "tram")],
     ["1 reviewed file not found in", "(gone.mp4)", "--folder"]),
    ([reviewed_row("park-0.mp4", ""), reviewed_row("tram-0.mp4", "tram", error="bad")],
     ["no reviewed rows"]),
    ([reviewed_row("park-0.mp4", "park"), reviewed_row("park-0.mp4", "tram")],
     ["park-0.mp4 is reviewed twice, as park and as tram"]),
], ids=["unknown class", "missing file", "no reviewed rows", "reviewed twice"])
def test_bad_labels_are_refused_in_one_line(
    capsys, trained_tiny_model, shifted, tmp_path, rows, words
):
    labels = write_labels(tmp_path / "bad.csv", rows)
    assert_refused(capsys, ["adapt", "--model", trained_tiny_model, "--labels", labels,
                            "--out", tmp_path / "out", "--folder", shifted.parent.parent / "media"],
                   str(labels), *words)
    assert not (tmp_path / "out").exists()


def test_an_existing_out_and_bad_options_are_refused(capsys, trained_tiny_model, shifted,
                                                     tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "file.txt").write_text("mine")
    base = ["adapt", "--model", trained_tiny_model, "--labels", shifted]
    assert_refused(capsys, [*base, "--out", out], str(out), "not empty")
    assert (out / "file.txt").read_text() == "mine"
    assert_refused(capsys, [*base, "--out", trained_tiny_model / "inside"], "is inside the model")
    assert_refused(capsys, [*base, "--out", tmp_path / "new", "--holdout", "1"],
                   "--holdout must be at least 0 and below 1")
    assert_refused(capsys, [*base, "--out", tmp_path / "new", "--epochs", "0"],
                   "--epochs must be at least 1")
    assert_refused(capsys, ["adapt", "--model", trained_tiny_model, "--labels",
                            tmp_path / "nothing.csv", "--out", tmp_path / "new"],
                   "nothing.csv: no such labels CSV")


def test_a_refusal_comes_before_tensorflow_loads(trained_tiny_model, tmp_path):
    labels = write_labels(tmp_path / "bad.csv", [reviewed_row("x.mp4", "airport")])
    runner = ("import sys\nfrom avsc_core.cli.main import main\ncode = main(sys.argv[1:])\n"
              "print('tensorflow' in sys.modules)\nsys.exit(code)\n")
    done = subprocess.run(
        [sys.executable, "-c", runner, "adapt", "--model", str(trained_tiny_model),
         "--labels", str(labels), "--out", str(tmp_path / "out")],
        check=False, capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 1 and "does not know: airport" in done.stderr
    assert done.stdout.strip() == "False"


# --------------------------------------------------------------------------- reading


def test_the_media_folder_comes_from_the_option_the_parameters_or_the_csv(tmp_path):
    rows = [reviewed_row("a.mp4", "park")]
    labels = write_labels(tmp_path / "labels.csv", rows)
    assert read_reviewed(labels).folder == tmp_path
    assert read_reviewed(labels, tmp_path / "given").folder == tmp_path / "given"
    # A legacy params.json counts only when it names this CSV.
    (tmp_path / "params.json").write_text(json.dumps({"labels": "other.csv", "folder": "/x"}))
    assert read_reviewed(labels).folder == tmp_path
    (tmp_path / "params.json").write_text(json.dumps({"labels": "labels.csv", "folder": "/old"}))
    assert read_reviewed(labels).folder == Path("/old")
    (tmp_path / "labels.params.json").write_text(
        json.dumps({"labels": "labels.csv", "folder": "/new"}))
    reviewed = read_reviewed(labels)
    assert reviewed.folder == Path("/new")
    assert [(f.file, f.path, f.label) for f in reviewed.files] == [
        ("a.mp4", Path("/new/a.mp4"), "park")]


def test_a_spreadsheet_edited_csv_reads(tmp_path):
    # Columns moved, one added, a byte-order mark, spaces and rows without a review.
    path = tmp_path / "edited.csv"
    path.write_text(
        "\ufeffreviewed_label,notes,file,error\n"
        " tram ,checked,a.mp4,\n"
        ",,b.mp4,\n"
        "park,,c.mp4,cannot decode\n"
        "park,,d.mp4,\n",
        encoding="utf-8",
    )
    reviewed = read_reviewed(path)
    assert [(f.file, f.label) for f in reviewed.files] == [("a.mp4", "tram"), ("d.mp4", "park")]
    with pytest.raises(AvscError, match="not found in"):
        check_reviewed(reviewed, ["park", "tram"])
    path.write_text("path,label\na.mp4,park\n", encoding="utf-8")
    with pytest.raises(AvscError, match="not a labels CSV"):
        read_reviewed(path)
