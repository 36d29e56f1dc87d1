"""Batch labelling under stress: CSVs sharing a folder, two writers, a file that kills the
process, outputs that cannot be written."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from avsc_core.cli.main import main
from avsc_core.errors import AvscError
from avsc_core.inference.classify import load_predictor
from avsc_core.label import DIED_REASON, HEADER, journal_path, label_folder, params_path
from avsc_core.locks import OutputBusyError, OutputLock
from avsc_core.progress import Cancelled

REPO = Path(__file__).resolve().parents[1]
CLIPS = ["a.mp4", "b.mp4", "c.mp4", "d.mp4"]


@pytest.fixture(scope="module")
def predictor(trained_tiny_model):
    return load_predictor(trained_tiny_model)


@pytest.fixture(scope="module")
def other_predictor(trained_tiny_model, tmp_path_factory):
    """The same networks in another bundle: to ``--resume``, another model."""
    copy = tmp_path_factory.mktemp("other-model") / "tiny-copy"
    shutil.copytree(trained_tiny_model, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["note"] = "a copy, so its manifest (the model's identity) differs"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return load_predictor(copy)


@pytest.fixture
def folder(tiny_dataset, tmp_path) -> Path:
    root = tmp_path / "clips"
    root.mkdir()
    sources = ["park/park-0", "tram/tram-0", "park/park-1", "tram/tram-1"]
    for name, source in zip(CLIPS, sources):
        shutil.copy(tiny_dataset / f"{source}.mp4", root / name)
    return root


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == HEADER
        return list(reader)


def stop_after(rows: int):
    """``(on_row, cancel)`` that cancel a run once ``rows`` rows are written."""
    written: list[str] = []
    return (lambda row, result: written.append(row.file)), (lambda: len(written) >= rows)


def interrupted_run(folder: Path, predictor, out: Path, rows: int = 2) -> list[dict]:
    on_row, cancel = stop_after(rows)
    with pytest.raises(Cancelled):
        label_folder(folder, predictor, out, on_row=on_row, cancel=cancel)
    return read_csv(out)


def run_python(script: str, *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_each_csv_has_its_own_params(folder, predictor, other_predictor, trained_tiny_model):
    first, second = folder / "first.csv", folder / "second.csv"
    interrupted_run(folder, predictor, first)
    first_params = params_path(first).read_bytes()
    assert params_path(first).name == "first.params.json"

    label_folder(folder, other_predictor, second)
    # The second CSV's run leaves the first's parameters alone...
    assert params_path(first).read_bytes() == first_params
    assert json.loads(params_path(second).read_text())["labels"] == "second.csv"
    assert not (folder / "params.json").exists()
    # ...so the first cannot be continued with the second's model,
    with pytest.raises(AvscError, match="first.csv: was started with other settings: the model"):
        label_folder(folder, other_predictor, first, resume=True)
    assert len(read_csv(first)) == 2
    # but with its own.
    summary = label_folder(folder, predictor, first, resume=True)
    assert (summary.already_done, summary.labelled) == (2, 2)
    assert json.loads(params_path(first).read_text())["model"] == str(
        trained_tiny_model.resolve())


def test_a_csv_never_takes_another_csvs_params(folder, predictor, tmp_path):
    first = tmp_path / "labels.csv"
    interrupted_run(folder, predictor, first, rows=1)
    # "labels" (no extension) would share labels.params.json with labels.csv.
    with pytest.raises(AvscError, match="labels.params.json belongs to labels.csv"):
        label_folder(folder, predictor, tmp_path / "labels")
    assert json.loads(params_path(first).read_text())["labels"] == "labels.csv"


def test_a_legacy_params_json_still_resumes(folder, predictor, tmp_path):
    out = tmp_path / "labels.csv"
    before = interrupted_run(folder, predictor, out)
    # Cancelling is not dying: no file is left marked as in progress.
    assert not journal_path(out).exists()
    legacy = json.loads(params_path(out).read_text())
    params_path(out).rename(tmp_path / "params.json")  # what older versions wrote

    summary = label_folder(folder, predictor, out, resume=True)
    rows = read_csv(out)
    assert rows[:2] == before and [r["file"] for r in rows] == CLIPS
    assert (summary.already_done, summary.labelled, summary.failed) == (2, 2, 0)
    params = json.loads(params_path(out).read_text())
    assert params["started"] == legacy["started"] and params["finished"]

    # A legacy file of another CSV says nothing about this one.
    params_path(out).unlink()
    (tmp_path / "params.json").write_text(json.dumps({**legacy, "labels": "other.csv"}))
    with pytest.raises(AvscError, match="no labels.params.json beside it"):
        label_folder(folder, predictor, out, resume=True)


def test_rows_without_params_are_not_resumed(folder, predictor, trained_tiny_model, tmp_path,
                                             capsys):
    out = tmp_path / "labels.csv"
    label_folder(folder, predictor, out)
    params_path(out).unlink()
    rows = read_csv(out)
    args = ["label", "--model", str(trained_tiny_model), str(folder), "--out", str(out),
            "--resume"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err == (f"avsc label: error: {out}: has 4 rows but no labels.params.json beside "
                   "it, so which model wrote them is unknown; put that file back or choose "
                   "another --out\n")
    assert read_csv(out) == rows


def test_a_second_writer_is_refused(folder, predictor, trained_tiny_model, tmp_path, capsys):
    out = tmp_path / "labels.csv"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from avsc_core.locks import OutputLock; "
         "OutputLock(sys.argv[1]).acquire(); print('locked', flush=True); sys.stdin.read()",
         str(out)],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        args = ["label", "--model", str(trained_tiny_model), str(folder), "--out", str(out)]
        assert main(args) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"avsc label: error: {out}: is being written by ")
        assert f"(process {holder.pid} on " in err and err.count("\n") == 1
        # Refused before the model is loaded: a model that does not exist is not reached.
        with pytest.raises(OutputBusyError, match=f"process {holder.pid} "):
            label_folder(folder, tmp_path / "no-model", out)
        assert not out.exists()
    finally:
        holder.kill()  # however the holder dies, its lock goes with it
        holder.wait()
    summary = label_folder(folder, predictor, out)
    assert summary.labelled == len(CLIPS)


def test_the_lock_is_held_for_the_whole_run(folder, predictor, tmp_path):
    out = tmp_path / "labels.csv"
    refusals: list[str] = []

    def try_second_writer(row, result) -> None:
        try:
            with OutputLock(out):
                pass
        except OutputBusyError as exc:
            refusals.append(str(exc))

    label_folder(folder, predictor, out, on_row=try_second_writer)
    assert len(refusals) == len(CLIPS)
    assert f"process {os.getpid()} " in refusals[0]


KILL_WHILE_DECODING = """
import json, os, signal, sys
from avsc_core.label import journal_path, label_folder

folder, model, out, target = sys.argv[1:]

def cancel():
    # Polled between files and while a file is decoded. Once the target is marked in
    # progress, this is its decoding: die as a crashing decoder would, beyond any except.
    try:
        in_progress = json.loads(journal_path(out).read_text())["files"]
    except FileNotFoundError:
        in_progress = []
    if target in in_progress:
        os.kill(os.getpid(), signal.SIGKILL)
    return False

label_folder(folder, model, out, cancel=cancel)
"""


@pytest.mark.parametrize("target", ["a.mp4", "c.mp4"])
def test_a_file_that_kills_the_run_is_not_retried(target, folder, predictor,
                                                  trained_tiny_model, tmp_path):
    out = tmp_path / "labels.csv"
    died = run_python(KILL_WHILE_DECODING, folder, trained_tiny_model, out, target)
    assert died.returncode == -signal.SIGKILL, died.stderr
    before = read_csv(out)
    position = CLIPS.index(target)
    assert [r["file"] for r in before] == CLIPS[:position]

    seen = []
    summary = label_folder(folder, predictor, out, resume=True,
                           on_row=lambda row, result: seen.append(row.file))
    rows = read_csv(out)
    assert [r["file"] for r in rows] == CLIPS  # each file once, in order
    assert rows[:position] == before
    assert rows[position]["label"] == "" and rows[position]["error"] == DIED_REASON
    for row in rows[position + 1:]:
        assert row["label"] in ("park", "tram") and row["error"] == ""
    assert seen == CLIPS[position:]  # the file it died on first, then the rest
    assert (summary.already_done, summary.labelled, summary.failed) == (
        position, len(CLIPS) - position - 1, 1)
    assert not journal_path(out).exists()


KILL_WITH_FILES_IN_FLIGHT = """
import os, signal, sys
from avsc_core.label import journal_path, label_folder

folder, model, out = sys.argv[1:]
rows = []

def cancel():
    journal = journal_path(out)
    if rows and journal.exists():
        os.kill(os.getpid(), signal.SIGKILL)
    return False

label_folder(folder, model, out, jobs=2, cancel=cancel,
             on_row=lambda row, result: rows.append(row.file))
"""


def test_files_in_flight_with_decoder_processes_are_not_retried(folder, predictor,
                                                                 trained_tiny_model, tmp_path):
    out = tmp_path / "labels.csv"
    died = run_python(KILL_WITH_FILES_IN_FLIGHT, folder, trained_tiny_model, out)
    assert died.returncode == -signal.SIGKILL, died.stderr
    before = read_csv(out)
    in_flight = json.loads(journal_path(out).read_text())["files"]
    assert before and in_flight and not {r["file"] for r in before} & set(in_flight)

    summary = label_folder(folder, predictor, out, resume=True, jobs=2)
    rows = read_csv(out)
    assert [r["file"] for r in rows] == CLIPS
    assert [r for r in rows if r["file"] in {b["file"] for b in before}] == before
    for row in rows:
        if row["file"] in in_flight:
            assert row["error"] == DIED_REASON
        else:
            assert row["label"] in ("park", "tram") and row["error"] == ""
    assert summary.failed == len(in_flight)


UNWRITABLE_CLI = """
import sys
from avsc_core.cli.main import main

code = main(sys.argv[1:])
assert "tensorflow" not in sys.modules, "TensorFlow was imported before the output check"
sys.exit(code)
"""


@pytest.mark.parametrize("where", ["proc", "below a file"])
def test_an_unwritable_out_is_one_line(where, folder, trained_tiny_model, tmp_path):
    if where == "proc":
        out, reason = Path("/proc/avsc-test/labels.csv"), "/proc does not accept new files"
    else:
        (tmp_path / "notes.txt").write_text("a file, not a folder")
        out, reason = tmp_path / "notes.txt" / "labels.csv", "notes.txt is not a folder"
    done = run_python(UNWRITABLE_CLI, "label", "--model", trained_tiny_model, folder,
                      "--out", out)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"avsc label: error: {out}: cannot write the labels CSV: ")
    assert reason in done.stderr and done.stderr.count("\n") == 1
    assert done.stdout == ""
