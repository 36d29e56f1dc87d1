"""Labelling with --engine ray: the local engine's rows, resumed, and a dead worker survived.

One local Ray of two CPUs serves the module (started once: it takes seconds). The worker
processes import avsc_core from the editable install in the virtual environment.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the cluster extra: pip install -e '.[cluster]'")

from avsc_core.cli.main import main
from avsc_core.errors import AvscError
from avsc_core.inference.classify import load_predictor
from avsc_core.label import label_folder, params_path, read_labels, read_rows
from avsc_core.label.ray_engine import ACTOR_NAME
from avsc_core.progress import Cancelled

FILES = ["broken.mp4", "park-0.mp4", "sub/park-1.mp4", "sub/tram-0.mp4", "tram-1.mp4"]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def predictor(trained_tiny_model):
    return load_predictor(trained_tiny_model)


@pytest.fixture(scope="module")
def folder(tiny_dataset, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ray") / "archive"
    (root / "sub").mkdir(parents=True)
    for name in FILES[1:]:
        shutil.copy(tiny_dataset / Path(name).name.split("-")[0] / Path(name).name, root / name)
    (root / "broken.mp4").write_bytes(b"this is no video" * 64)
    return root


@pytest.fixture(scope="module")
def local(folder, predictor, tmp_path_factory) -> dict:
    """The local engine's run: ``{"csv", "segments", "confidence": {file: full precision}}``."""
    root = tmp_path_factory.mktemp("local")
    confidence = {}
    label_folder(folder, predictor, root / "local.csv", recursive=True,
                 segments_csv=root / "segments.csv",
                 on_row=lambda row, result: confidence.update({row.file: result and
                                                               result.confidence}))
    return {"csv": root / "local.csv", "segments": root / "segments.csv",
            "confidence": confidence}


def labels_of(rows) -> list[tuple]:
    return [(r.file, r.label, r.audio_label, r.visual_label, r.error) for r in rows]


def segments_of(path: Path) -> list[tuple]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [(r["file"], r["start"], r["end"], r["label"]) for r in csv.DictReader(handle)]


def test_ray_gives_the_rows_of_the_local_engine(folder, predictor, local, tmp_path):
    out, segments = tmp_path / "ray.csv", tmp_path / "segments.csv"
    confidence = {}
    summary = label_folder(
        folder, predictor, out, recursive=True, engine="ray", segments_csv=segments,
        on_row=lambda row, result: confidence.update({row.file: result and result.confidence}),
    )
    assert (summary.labelled, summary.failed) == (4, 1)
    assert labels_of(read_rows(out)) == labels_of(read_rows(local["csv"]))
    assert [r.file for r in read_rows(out)] == FILES
    assert read_rows(out)[0].error == "not a media file, or the file is corrupt"
    assert confidence.keys() == local["confidence"].keys()
    for file, value in local["confidence"].items():
        assert confidence[file] == (None if value is None else pytest.approx(value, abs=1e-5))
    assert sorted(segments_of(segments)) == segments_of(local["segments"])
    params = json.loads(params_path(out).read_text())
    assert (params["engine"], params["workers"], params["gpus_per_worker"]) == ("ray", 1, 0.0)
    assert params["counts"]["rows"] == 5 and params["finished"]
    # Ray was started by the test: the run leaves it running, with no actor of its own.
    assert ray.is_initialized()
    assert not [n for n in ray.util.list_named_actors() if n.startswith(ACTOR_NAME)]


def test_ray_resumes_into_parquet(folder, predictor, local, trained_tiny_model, tmp_path,
                                  capsys):
    out = tmp_path / "labels.parquet"
    written = []
    with pytest.raises(Cancelled):
        label_folder(folder, predictor, out, recursive=True, engine="ray",
                     on_row=lambda row, result: written.append(row.file),
                     cancel=lambda: len(written) >= 2)
    assert sorted(r.file for r in read_labels(out)) == sorted(written)
    assert main(["label", "--model", str(trained_tiny_model), str(folder), "--out", str(out),
                 "--recursive", "--resume", "--engine", "ray", "--workers", "1"]) == 0
    assert f"found 5 media files in {folder}, {len(written)} already labelled" in \
        capsys.readouterr().err
    assert labels_of(read_labels(out)) == labels_of(read_rows(local["csv"]))


def test_a_dead_network_worker_costs_no_rows(folder, predictor, local, tmp_path, monkeypatch,
                                             caplog):
    """The worker is killed while the first network call is under way (a fresh worker's
    first call is slow: Keras builds its graph); Ray restarts it and the file starts over."""
    real_wait = ray.wait
    killed = []

    def wait(waitables, **kwargs):
        # The pipeline's plain object refs are network calls (decoding streams are
        # ObjectRefGenerators).
        if not killed and any(isinstance(w, ray.ObjectRef) for w in waitables):
            name = next(n for n in ray.util.list_named_actors() if n.startswith(ACTOR_NAME))
            ray.kill(ray.get_actor(name), no_restart=False)
            killed.append(name)
        return real_wait(waitables, **kwargs)

    monkeypatch.setattr(ray, "wait", wait)
    out = tmp_path / "labels.csv"
    with caplog.at_level(logging.WARNING, logger="avsc_core.label.ray_engine"):
        label_folder(folder, predictor, out, recursive=True, engine="ray")
    assert killed and "a network worker died while on" in caplog.text
    assert labels_of(read_rows(out)) == labels_of(read_rows(local["csv"]))


def test_engine_options_are_checked_in_one_line(folder, predictor, trained_tiny_model,
                                                tmp_path, monkeypatch, capsys):
    out = tmp_path / "labels.csv"
    with pytest.raises(AvscError, match="--workers, --gpus-per-worker: only with --engine ray"):
        label_folder(folder, predictor, out, workers=2, gpus_per_worker=1)
    with pytest.raises(AvscError, match="--jobs is for --engine local"):
        label_folder(folder, predictor, out, engine="ray", jobs=2)
    with pytest.raises(AvscError, match="--workers 2: the Ray cluster has 2 CPUs, which "
                                        "leaves none for decoding"):
        label_folder(folder, predictor, out, engine="ray", workers=2)
    assert not out.exists()  # refused before any output was written

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    args = ["label", "--model", str(trained_tiny_model), str(folder), "--out",
            str(tmp_path / "other.csv"), "--engine", "ray"]
    assert main(args) == 1
    assert capsys.readouterr().err == ("avsc label: error: --engine ray needs Ray, which is "
                                       "not installed: pip install 'avsc[cluster]'\n")
