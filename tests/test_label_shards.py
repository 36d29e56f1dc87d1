"""Labelling beyond one machine: --shard I/N, 'label merge' and its checks, Parquet output."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from avsc_core.cli import label as cli_label
from avsc_core.cli.main import main
from avsc_core.errors import AvscError
from avsc_core.inference.classify import load_predictor
from avsc_core.label import (
    ENGINES,
    FORMATS,
    HEADER,
    Shard,
    label_folder,
    merge_shards,
    params_path,
    read_labels,
    read_rows,
    shard_number,
)
from avsc_core.progress import Cancelled

FILES = ["a.mp4", "b.mp4", "broken.mp4", "c.mp4", "g.mp4", "sub/d.mp4", "sub/deeper/f.mp4",
         "sub/e.mp4"]
# The shard of each file with N = 3, pinned: a change of the hash would split an archive
# half-labelled under the old one differently, so it must never change unnoticed.
SHARD_OF = {"a.mp4": 2, "b.mp4": 1, "broken.mp4": 3, "c.mp4": 3, "g.mp4": 3, "sub/d.mp4": 1,
            "sub/deeper/f.mp4": 2, "sub/e.mp4": 3}


@pytest.fixture(scope="module")
def predictor(trained_tiny_model):
    return load_predictor(trained_tiny_model)


@pytest.fixture(scope="module")
def runs(tiny_dataset, predictor, tmp_path_factory) -> dict[str, Path]:
    """An archive of 8 files in nested folders (one corrupt), labelled whole once and as
    3 shards: ``{"folder", "full", "shard1", "shard2", "shard3"}``."""
    root = tmp_path_factory.mktemp("shards")
    folder = root / "archive"
    sources = ["park/park-0", "tram/tram-0", None, "park/park-1", "tram/tram-1",
               "park/park-2", "tram/tram-2", "park/park-3"]
    for name, source in zip(FILES, sources, strict=True):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        if source is None:
            (folder / name).write_bytes(b"this is no video" * 64)
        else:
            shutil.copy(tiny_dataset / f"{source}.mp4", folder / name)
    out = {"folder": folder, "full": root / "full.csv"}
    label_folder(folder, predictor, out["full"], recursive=True)
    for i in (1, 2, 3):
        out[f"shard{i}"] = root / f"shard{i}.csv"
        label_folder(folder, predictor, out[f"shard{i}"], recursive=True, shard=f"{i}/3")
    return out


def copy_labels(source: Path, target: Path) -> Path:
    """A labels file and its parameters file, copied (``labels`` names the new CSV)."""
    shutil.copy(source, target)
    params = json.loads(params_path(source).read_text())
    params["labels"] = target.name
    params_path(target).write_text(json.dumps(params))
    return target


def edit_params(path: Path, **changes) -> None:
    params = json.loads(params_path(path).read_text())
    params.update(changes)
    params_path(path).write_text(json.dumps(params))


def shards(runs) -> list[Path]:
    return [runs["shard1"], runs["shard2"], runs["shard3"]]


@pytest.mark.parametrize("text, message", [
    ("0/3", "numbered from 1 to 3"),
    ("4/3", "numbered from 1 to 3"),
    ("1/0", "at least 1"),
    ("-1/3", "expected I/N"),
    ("one/three", "expected I/N"),
    ("2", "expected I/N"),
])
def test_a_bad_shard_is_refused_in_one_line(text, message):
    with pytest.raises(AvscError, match=message) as caught:
        Shard.parse(text)
    assert str(caught.value).startswith(f"--shard {text}: ") and "\n" not in str(caught.value)


def test_each_file_is_in_one_stable_shard():
    assert Shard.parse(" 2 / 3 ") == Shard(2, 3) and str(Shard(2, 3)) == "2/3"
    assert {f: shard_number(f, 3) for f in FILES} == SHARD_OF
    for count in range(1, 6):
        for file in FILES:
            holders = [i for i in range(1, count + 1) if Shard(i, count).holds(file)]
            assert holders == [shard_number(file, count)]


def test_shards_merge_into_the_rows_of_one_run(runs, predictor, tmp_path):
    full = read_rows(runs["full"])
    for i, path in enumerate(shards(runs), 1):
        assert [r.file for r in read_rows(path)] == [f for f in FILES if SHARD_OF[f] == i]
        params = json.loads(params_path(path).read_text())
        assert params["shard"] == f"{i}/3" and params["finished"]
        assert params["counts"]["folder_files"] == len(FILES)
        assert params["counts"]["found"] == sum(s == i for s in SHARD_OF.values())

    out = tmp_path / "merged.csv"
    # In any order.
    summary = merge_shards(out, [runs["shard3"], runs["shard1"], runs["shard2"]])
    assert read_rows(out) == full
    assert (summary.shards, summary.rows, summary.labelled, summary.failed) == (3, 8, 7, 1)
    params = json.loads(params_path(out).read_text())
    full_params = json.loads(params_path(runs["full"]).read_text())
    for key in ("model_sha256", "folder", "recursive", "segment_seconds", "hop_seconds"):
        assert params[key] == full_params[key]
    assert params["shard"] is None and params["labels"] == "merged.csv"
    assert [m["shard"] for m in params["merged_from"]] == ["1/3", "2/3", "3/3"]
    assert params["counts"] == {"found": 8, "rows": 8, "labelled": 7, "failed": 1,
                                "remaining": 0}
    # A merge's output may be merged again over,
    merge_shards(out, shards(runs))
    # and is a finished run of the whole folder: resuming it has nothing to do.
    resumed = label_folder(runs["folder"], predictor, out, recursive=True, resume=True)
    assert (resumed.already_done, resumed.labelled + resumed.failed) == (8, 0)


def test_merge_refuses_an_incomplete_or_mixed_set(runs, tmp_path):
    out = tmp_path / "merged.csv"
    one, two, three = shards(runs)
    with pytest.raises(AvscError, match=r"merged.csv: shard 3/3 missing"):
        merge_shards(out, [one, two])
    with pytest.raises(AvscError, match=r"shard 1/3 is also .*shard1.csv; give each shard once"):
        merge_shards(out, [one, two, three, one])
    with pytest.raises(AvscError, match="full.csv: not a shard"):
        merge_shards(out, [one, two, three, runs["full"]])

    other = copy_labels(two, tmp_path / "other-model.csv")
    edit_params(other, model_sha256="0" * 64)
    with pytest.raises(AvscError, match=r"other-model.csv: not labelled like .*: the model"):
        merge_shards(out, [one, other, three])
    sparse = copy_labels(two, tmp_path / "sparse.csv")
    edit_params(sparse, frames_per_second=1.0)
    with pytest.raises(AvscError, match=r"sparse.csv: .*frames_per_second \(1.0 here, 2.0"):
        merge_shards(out, [one, sparse, three])
    halves = copy_labels(two, tmp_path / "halves.csv")
    edit_params(halves, shard="2/2")
    with pytest.raises(AvscError, match="split in two ways"):
        merge_shards(out, [one, halves, three])
    unfinished = copy_labels(two, tmp_path / "unfinished.csv")
    edit_params(unfinished, finished=None)
    with pytest.raises(AvscError, match="unfinished.csv: shard 2/3 has not finished"):
        merge_shards(out, [one, unfinished, three])
    orphan = tmp_path / "orphan.csv"
    shutil.copy(two, orphan)
    with pytest.raises(AvscError, match=r"orphan.csv: no orphan.params.json beside it"):
        merge_shards(out, [one, orphan, three])

    doubled = copy_labels(two, tmp_path / "doubled.csv")
    with open(doubled, "a", encoding="utf-8") as handle:
        handle.write(one.read_text().splitlines()[1] + "\n")  # b.mp4, of shard 1
    with pytest.raises(AvscError, match=r"doubled.csv: b.mp4 is also labelled in .*shard1"):
        merge_shards(out, [one, doubled, three])
    assert not out.exists()

    with pytest.raises(AvscError, match="is one of the shards"):
        merge_shards(one, [one, two, three])
    with pytest.raises(AvscError, match="full.csv: already exists and is not the output of a "
                                        "merge"):
        merge_shards(runs["full"], [one, two, three])


def test_merge_finds_files_in_no_shard(runs, tmp_path):
    folder, out = runs["folder"], tmp_path / "merged.csv"
    added = folder / "new.mp4"
    shutil.copy(folder / "a.mp4", added)
    try:
        with pytest.raises(AvscError, match=r"1 file in no shard \(new.mp4, of shard 1/3\), "
                                            "added since the shards ran"):
            merge_shards(out, shards(runs))
    finally:
        added.unlink()

    # Without the folder (merged elsewhere), the counts the shards recorded are checked.
    moved = folder.with_name("archive-moved")
    folder.rename(moved)
    try:
        assert merge_shards(out, shards(runs)).rows == 8
        short = copy_labels(runs["shard2"], tmp_path / "short.csv")
        counts = json.loads(params_path(short).read_text())["counts"]
        edit_params(short, counts={**counts, "folder_files": 9})
        with pytest.raises(AvscError, match="is gone, and the shards' counts do not add up"):
            merge_shards(tmp_path / "again.csv", [runs["shard1"], short, runs["shard3"]])
    finally:
        moved.rename(folder)


def test_a_shard_resumes_only_as_itself(runs, predictor, tmp_path):
    out = copy_labels(runs["shard1"], tmp_path / "part.csv")
    with pytest.raises(AvscError, match=r"shard \(1/3 before, 2/3 now\)"):
        label_folder(runs["folder"], predictor, out, recursive=True, resume=True, shard="2/3")
    with pytest.raises(AvscError, match=r"shard \(1/3 before, none now\)"):
        label_folder(runs["folder"], predictor, out, recursive=True, resume=True)
    summary = label_folder(runs["folder"], predictor, out, recursive=True, resume=True,
                           shard=Shard(1, 3))
    assert (summary.found, summary.already_done, summary.labelled) == (2, 2, 0)


def test_parquet_has_the_csv_columns_and_values(runs, predictor, tmp_path, monkeypatch):
    out = tmp_path / "part.parquet"
    written = []
    with pytest.raises(Cancelled):
        label_folder(runs["folder"], predictor, out, recursive=True, shard="3/3",
                     on_row=lambda row, result: written.append(row), cancel=lambda: written)
    # An orderly stop leaves a readable table of the finished rows, and no rows file.
    assert read_labels(out) == written and len(written) == 1
    assert not (tmp_path / ".part.parquet.rows.csv").exists()
    with pytest.raises(AvscError, match="already exists; add --resume"):
        label_folder(runs["folder"], predictor, out, recursive=True, shard="3/3")
    label_folder(runs["folder"], predictor, out, recursive=True, shard="3/3", resume=True)

    table = pq.read_table(out)
    assert tuple(table.column_names) == HEADER
    assert str(table.schema.field("confidence").type) == "double"
    assert read_labels(out) == read_rows(runs["shard3"])
    params = json.loads(params_path(out).read_text())
    assert params_path(out).name == "part.parquet.params.json"
    assert params["format"] == "parquet" and params["labels"] == "part.parquet"

    # Shards of either format merge, into either format.
    merged = tmp_path / "merged.parquet"
    merge_shards(merged, [runs["shard1"], runs["shard2"], out])
    assert read_labels(merged) == read_rows(runs["full"])
    with pytest.raises(AvscError, match="--format parquet does not match its suffix"):
        label_folder(runs["folder"], predictor, tmp_path / "x.csv", format="parquet")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if the extra were not installed
    with pytest.raises(AvscError, match=r"--format parquet needs pyarrow, which is not "
                                        r"installed: pip install 'avsc\[cluster\]'"):
        label_folder(runs["folder"], predictor, tmp_path / "y.parquet")


def test_cli_label_shard_and_merge(runs, trained_tiny_model, tmp_path, capsys):
    folder, model = str(runs["folder"]), str(trained_tiny_model)
    assert cli_label.ENGINES == ENGINES and cli_label.FORMATS == FORMATS
    parts = []
    for i in (1, 2, 3):
        parts.append(tmp_path / f"part{i}.csv")
        # Both orders of FOLDER and the options.
        args = ([folder, "--model", model] if i == 1 else ["--model", model, folder])
        assert main(["label", *args, "--out", str(parts[-1]), "--recursive",
                     "--shard", f"{i}/3"]) == 0
        err = capsys.readouterr().err
        found = sum(s == i for s in SHARD_OF.values())
        assert err.splitlines()[0] == f"found {found} of 8 media files in {folder} (shard {i}/3)"

    out = tmp_path / "all.csv"
    assert main(["label", "merge", str(out), *map(str, parts)]) == 0
    assert capsys.readouterr().out.strip() == f"merged 3 shards: 8 files, 1 failed -> {out}"
    assert read_rows(out) == read_rows(runs["full"])
    assert main(["--debug", "label", "merge", str(out), *map(str, parts)]) == 0
    capsys.readouterr()

    assert main(["label", "merge", str(tmp_path / "x.csv"), str(parts[0])]) == 1
    err = capsys.readouterr().err
    assert err == "avsc label: error: " + f"{tmp_path / 'x.csv'}: shards 2/3, 3/3 missing; " \
        "give every shard's labels file\n"
    assert main(["label", "--model", model, folder, "--out", str(tmp_path / "y.csv"),
                 "--shard", "0/3"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("avsc label: error: --shard 0/3: shards are numbered from 1")
    assert len(err.splitlines()) == 1

    with pytest.raises(SystemExit) as done:
        main(["label", "--help"])
    assert done.value.code == 0
    assert "avsc label merge OUT.csv SHARD.csv" in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit) as done:
        main(["label", "merge", "--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("usage: avsc label merge [-h]")
    with pytest.raises(SystemExit) as done:
        main(["label", "merge", str(out)])
    assert done.value.code == 2
    assert "SHARD.csv" in capsys.readouterr().err
