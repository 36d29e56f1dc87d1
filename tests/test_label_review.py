"""The labels CSV says which answers need a person's look, and keeps what they decided."""

from __future__ import annotations

import csv
import json
import shutil

from avsc_core.cli.main import main
from avsc_core.label import HEADER, label_folder
from avsc_core.label.csv_out import CONTRACT_HEADER


def _rows(path) -> tuple[tuple[str, ...], list[dict]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return tuple(reader.fieldnames), list(reader)


def _folder(tiny_dataset, tmp_path):
    root = tmp_path / "clips"
    root.mkdir()
    for name in ("park/park-0", "park/park-1", "tram/tram-0"):
        shutil.copy(tiny_dataset / f"{name}.mp4", root / f"{name.split('/')[1]}.mp4")
    return root


def _soft_model(trained, tmp_path):
    """The tiny model with a high temperature: every answer near 50 %, whatever it learnt."""
    model = tmp_path / "soft"
    shutil.copytree(trained, model)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["calibration"]["temperatures"] = {b: 100.0 for b in ("audio", "visual", "fused")}
    (model / "manifest.json").write_text(json.dumps(manifest))
    return model


def test_contract_columns_first_then_review_columns(tiny_dataset, trained_tiny_model,
                                                    tmp_path, capsys):
    folder = _folder(tiny_dataset, tmp_path)
    out = tmp_path / "labels.csv"
    model = _soft_model(trained_tiny_model, tmp_path)
    assert main(["label", "--model", str(model), str(folder), "--out", str(out),
                 "--min-confidence", "0.9"]) == 0
    header, rows = _rows(out)
    assert header == HEADER and header[:6] == CONTRACT_HEADER
    assert header[6:] == ("needs_review", "reviewed_label")
    assert all(float(r["confidence"]) < 0.9 for r in rows)
    assert all("low confidence" in r["needs_review"].split(";") for r in rows)
    assert all(r["reviewed_label"] == "" for r in rows)

    assert main(["label", "--model", str(trained_tiny_model), str(folder), "--out",
                 str(tmp_path / "x.csv"), "--min-confidence", "2"]) == 1
    assert "--min-confidence must be between 0 and 1" in capsys.readouterr().err


def test_a_resumed_run_keeps_decisions_and_reads_old_csvs(tiny_dataset, trained_tiny_model,
                                                          tmp_path):
    folder = _folder(tiny_dataset, tmp_path)
    out = tmp_path / "labels.csv"
    label_folder(folder, trained_tiny_model, out)
    header, rows = _rows(out)
    # A person checked the first file; a CSV of an earlier avsc had only six columns.
    rows[0]["reviewed_label"] = "tram"
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, HEADER, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows[:2])
    label_folder(folder, trained_tiny_model, out, resume=True)
    header, resumed = _rows(out)
    assert [r["file"] for r in resumed] == [r["file"] for r in rows]
    assert resumed[0]["reviewed_label"] == "tram"

    old = tmp_path / "old.csv"
    with open(old, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CONTRACT_HEADER)
        writer.writerow([rows[0][c] for c in CONTRACT_HEADER])
    shutil.copy(out.with_suffix(".params.json"), old.with_suffix(".params.json"))
    params = old.with_suffix(".params.json")
    params.write_text(params.read_text().replace('"labels.csv"', '"old.csv"'))
    label_folder(folder, trained_tiny_model, old, resume=True)
    header, upgraded = _rows(old)
    assert header == HEADER and len(upgraded) == 3
