"""Multi-worker training: each worker reads its own part of every epoch, and two worker
processes on this machine (``TF_CONFIG`` over 127.0.0.1) end in a single-process run's
bundle layout, written by the chief alone."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from avsc_core.train.distribute import epoch_steps, worker_datasets, worker_steps
from avsc_core.train.pipeline import Shard, _batches, array_dataset

REPO = Path(__file__).resolve().parents[1]
# Audio only, one epoch: the smallest run that still ends in a bundle.
TRAIN_ARGS = ["--preset", "tiny", "--backbones", "aud-mel", "--epochs", "1",
              "--batch-size", "4", "--jobs", "1"]
# Both workers must be done by then (well under 5 minutes), or both are stopped.
WORKERS_TIMEOUT_S = 240


def _epoch_parts(n: int, workers: int, batch: int, epoch: int) -> list[list[np.ndarray]]:
    """Each worker's batches (of sample indices) of epoch ``epoch`` of ``n`` samples."""
    def load(i: int) -> tuple[np.ndarray, int]:
        return np.array([i], np.int64), 0

    return [
        [x.numpy()[:, 0] for x, _ in _batches(load, n, 2, batch, True, 5, [epoch],
                                              Shard(w, workers))]
        for w in range(workers)
    ]


@pytest.mark.parametrize("n", [12, 13, 17])
def test_two_workers_share_each_epoch_without_overlap(n):
    for epoch in (0, 1):
        parts = _epoch_parts(n, 2, 3, epoch)
        seen = [np.concatenate(batches) for batches in parts]
        union = np.concatenate(seen)
        assert len(set(union.tolist())) == len(union)  # no sample twice in the epoch
        assert set(union.tolist()) <= set(range(n))
        assert len(union) == n - n % 2  # at most workers - 1 dropped
        # The same steps on every worker, as the schedule counts them.
        assert len(parts[0]) == len(parts[1]) == worker_steps(n, 3, 2)


def test_the_parts_are_positions_of_the_single_machine_order():
    n, epoch = 11, 3
    order = np.arange(n)
    np.random.default_rng([5, epoch]).shuffle(order)
    single = np.concatenate(_epoch_parts(n, 1, 4, epoch)[0])
    np.testing.assert_array_equal(single, order)
    halves = [np.concatenate(p) for p in _epoch_parts(n, 2, 4, epoch)]
    np.testing.assert_array_equal(halves[0], order[0:10:2])
    np.testing.assert_array_equal(halves[1], order[1:10:2])


def test_dropped_samples_change_from_epoch_to_epoch():
    dropped = []
    for epoch in range(4):
        seen = set(np.concatenate([np.concatenate(p) for p in _epoch_parts(9, 2, 2, epoch)]))
        dropped.append(set(range(9)) - seen)
    assert all(len(d) == 1 for d in dropped)
    assert len(set().union(*dropped)) > 1


def test_array_dataset_shards_alike_seeded_workers():
    n, labels = 15, np.zeros(15, np.int64)
    x = np.arange(n, dtype=np.float32)[:, None]
    parts = []
    for worker in range(2):
        tf.random.set_seed(3)  # every worker seeds its stage alike
        ds = array_dataset(x, labels, 2, 4, True, 9, Shard(worker, 2))
        parts.append([bx.numpy()[:, 0] for bx, _ in ds])
    union = np.concatenate([np.concatenate(p) for p in parts])
    assert len(union) == len(set(union.tolist())) == n - 1
    assert len(parts[0]) == len(parts[1]) == worker_steps(n, 4, 2)


def test_shard_must_exist():
    with pytest.raises(ValueError):
        Shard(2, 2)


def test_one_machine_datasets_and_steps_are_unchanged():
    calls = []

    def make(batch, shard):
        calls.append((batch, shard))
        return "train", None

    strategy = tf.distribute.get_strategy()
    assert worker_datasets(strategy, 8, make) == ("train", None)
    assert calls == [(8, None)]
    assert epoch_steps(17, 8, strategy) == 3


def _as_worker(monkeypatch, index: int) -> None:
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster,
                                                "task": {"type": "worker", "index": index}}))


def test_other_workers_train_in_a_folder_of_their_own(monkeypatch, tmp_path):
    from avsc_core.errors import AvscError
    from avsc_core.train.run import _run_folder, is_chief

    out = tmp_path / "model"
    _as_worker(monkeypatch, 0)
    assert is_chief()
    with _run_folder(out, resume=False) as work:
        assert work == out
    _as_worker(monkeypatch, 1)
    assert not is_chief()
    with _run_folder(out, resume=False) as work:
        assert work != out and not any(work.iterdir())
    assert not work.exists() and not out.exists()
    with pytest.raises(AvscError, match="chief's folder"), _run_folder(out, resume=True):
        pass
    # To resume, a copy of the chief's journal and checkpoints; the chief's are untouched.
    (out / "training" / "checkpoints").mkdir(parents=True)
    (out / "training" / "state.json").write_text("{}")
    (out / "training" / "checkpoints" / "aud-mel.last.npz").write_bytes(b"x")
    with _run_folder(out, resume=True) as work:
        assert (work / "training" / "checkpoints" / "aud-mel.last.npz").read_bytes() == b"x"
        (work / "training" / "state.json").write_text('{"mine": 1}')
    assert not work.exists()
    assert (out / "training" / "state.json").read_text() == "{}"


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _start_workers(data: Path, out: Path, cache: Path, scratch: list[Path],
                   args: list[str] = TRAIN_ARGS, logs: str = "worker") -> list:
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
                   TMPDIR=str(scratch[index]),
                   TF_CONFIG=json.dumps({"cluster": cluster,
                                         "task": {"type": "worker", "index": index}}))
        log = scratch[index].parent / f"{logs}{index}.log"
        workers.append((subprocess.Popen(
            [sys.executable, "-m", "avsc_core", "train", str(data), "--out", str(out),
             "--cache-dir", str(cache), *args],
            cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT), log))
    return workers


def _wait_all(workers: list) -> None:
    """Wait for every worker; on a failure or the timeout, stop them all and show why."""
    deadline = time.monotonic() + WORKERS_TIMEOUT_S
    while time.monotonic() < deadline:
        codes = [process.poll() for process, _ in workers]
        if any(code not in (None, 0) for code in codes) or all(c == 0 for c in codes):
            break
        time.sleep(0.5)
    codes = [process.poll() for process, _ in workers]
    if all(code == 0 for code in codes):
        return
    for process, _ in workers:
        if process.poll() is None:
            process.kill()
            process.wait()
    tails = "\n".join(f"--- worker {i} (exit {code}):\n{log.read_text()[-3000:]}"
                      for i, ((_, log), code) in enumerate(zip(workers, codes, strict=True)))
    pytest.fail(f"multi-worker training failed or passed {WORKERS_TIMEOUT_S} s\n{tails}")


def _layout(bundle: Path) -> set[str]:
    return {str(p.relative_to(bundle)) for p in bundle.rglob("*")}


@pytest.mark.slow
def test_two_workers_over_loopback_write_the_single_process_bundle(tiny_dataset, tmp_path):
    from avsc_core.cli.main import main

    cache = tmp_path / "cache"
    single = tmp_path / "single"
    # In this process: the reference bundle, and the cache both workers then read.
    assert main(["train", str(tiny_dataset), "--out", str(single), "--cache-dir", str(cache),
                 *TRAIN_ARGS]) == 0
    out = tmp_path / "multi"
    scratch = [tmp_path / f"tmp{i}" for i in range(2)]
    for folder in scratch:
        folder.mkdir()
    _wait_all(_start_workers(tiny_dataset, out, cache, scratch))

    # The chief's bundle, laid out as one process lays it out; nothing of the other's.
    assert _layout(out) == _layout(single)
    manifest = json.loads((out / "manifest.json").read_text())
    reference = json.loads((single / "manifest.json").read_text())
    assert set(manifest) == set(reference)
    assert [b["file"] for b in manifest["backbones"]] == [b["file"] for b in reference["backbones"]]
    assert {h: v["file"] for h, v in manifest["heads"].items()} == {
        h: v["file"] for h, v in reference["heads"].items()}
    assert manifest["training_devices"] == 2 and reference["training_devices"] == 1
    # The non-chief trained in a temporary folder of its own, and removed it.
    assert not any(scratch[1].iterdir())
    assert not list(tmp_path.glob(".multi*.lock"))
    assert "the chief writes the bundle" in (tmp_path / "worker1.log").read_text()


def _journal_step(out: Path, step: str) -> dict:
    try:
        return json.loads((out / "training" / "state.json").read_text())["steps"][step]
    except (OSError, ValueError, KeyError):
        return {}


@pytest.mark.slow
def test_two_workers_killed_mid_training_resume_from_the_chiefs_last_epoch(tiny_dataset,
                                                                          tmp_path):
    """A pre-empted cluster job: both workers die after an epoch; started again with
    --resume, they go on from the chief's checkpoint instead of from the first epoch."""
    from avsc_core.cli.main import main

    cache = tmp_path / "cache"
    epochs = 4
    args = [*TRAIN_ARGS, "--epochs", str(epochs)]
    # The cache both runs read, filled by one process so the workers do not race for it.
    assert main(["train", str(tiny_dataset), "--out", str(tmp_path / "single"),
                 "--cache-dir", str(cache), *TRAIN_ARGS]) == 0
    out = tmp_path / "multi"
    scratch = [tmp_path / f"tmp{i}" for i in range(2)]
    for folder in scratch:
        folder.mkdir()
    workers = _start_workers(tiny_dataset, out, cache, scratch, args, logs="first")
    deadline = time.monotonic() + WORKERS_TIMEOUT_S
    step = _journal_step(out, "phase1:aud-mel")
    while step.get("epochs_done", 0) < 1 and time.monotonic() < deadline:
        if any(process.poll() is not None for process, _ in workers):
            break
        time.sleep(0.05)
        step = _journal_step(out, "phase1:aud-mel")
    for process, _ in workers:
        process.kill()
        process.wait()
    done = step.get("epochs_done", 0)
    assert 1 <= done < epochs and not step["finished"], (
        step, (tmp_path / "first0.log").read_text()[-3000:])
    # The killed non-chief could not remove its copy of the checkpoints; say it died an
    # hour ago.
    (left,) = scratch[1].glob("avsc-worker-*")
    assert list(left.rglob("*.last.npz"))
    an_hour_ago = time.time() - 3600
    os.utime(left, (an_hour_ago, an_hour_ago))

    _wait_all(_start_workers(tiny_dataset, out, cache, scratch, [*args, "--resume"],
                             logs="worker"))
    assert (out / "manifest.json").is_file()
    assert _layout(out) == _layout(tmp_path / "single")
    manifest = json.loads((out / "manifest.json").read_text())
    history = manifest["history"]["phase1:aud-mel"]
    # Every epoch once: the first ones from before the kill, the rest after it.
    assert len(history) == epochs, history
    # The non-chief resumed from a copy of the chief's journal and removed it, and the
    # killed one's folder went too.
    assert not list(scratch[1].glob("*avsc-worker-*"))


def test_only_the_folders_of_dead_workers_are_removed(tmp_path):
    from avsc_core.locks import OutputLock
    from avsc_core.train.run import remove_stale_worker_folders

    dead, live, young, other = (tmp_path / name for name in (
        "avsc-worker-dead", "avsc-worker-live", "avsc-worker-young", "someone-else"))
    an_hour_ago = time.time() - 3600
    for folder in (dead, live, young, other):
        (folder / "model" / "training").mkdir(parents=True)
        (folder / "model" / "training" / "state.json").write_text("{}")
        if folder is not young:
            os.utime(folder, (an_hour_ago, an_hour_ago))
    with OutputLock(live):  # a worker still training
        assert remove_stale_worker_folders(tmp_path) == 1
        assert not dead.exists() and live.exists() and young.exists() and other.exists()
    assert not list(tmp_path.glob(".avsc-worker-*.lock"))
