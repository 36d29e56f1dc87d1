"""The stage protocol (avsc_core.train.stage): journal step, checkpoint files, seed,
resume-or-restart and keep-best, on a network small enough to train in a second."""

from __future__ import annotations

import dataclasses
import zlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from avsc_core.progress import Cancelled
from avsc_core.train.settings import TrainConfig
from avsc_core.train.stage import RunContext, Stage, StageFiles, stage_seed
from avsc_core.train.state import JOINT_STEP, JOURNAL, TrainState, phase1_step, phase2_step
from avsc_core.train.trainer import compile_model

EPOCHS = 4
STEP = phase2_step("probe")


def _data(n: int = 32) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 3, n), 3).astype("float32")
    return x, y


def _context(out, cancel=None) -> RunContext:
    path = out / JOURNAL
    state = TrainState.load(path) if path.exists() else TrainState(path, {})
    config = TrainConfig.for_preset("tiny", batch_size=8, patience=0)
    return RunContext(out, state, config, ("a", "b", "c"), tf.distribute.get_strategy(),
                      cancel=cancel)


def _fit(stage: Stage) -> keras.Model:
    x, y = _data()
    seeds = []

    def build(seed: int, total_steps: int):
        seeds.append(seed)
        net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        compile_model(net, keras.optimizers.Adam(0.05))
        return net, net

    def datasets(batch: int, seed: int, epochs_done: int, shard=None):
        # No shuffle: an interrupted run and an uninterrupted one see the same batches.
        train = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)
        return train, tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)

    kept = stage.fit(examples=len(x), epochs=EPOCHS, build=build, datasets=datasets)
    assert seeds == [stage.seed]
    return kept


def _after_epochs(context: RunContext, epochs: int):
    """A cancel that stops the stage at the first batch after ``epochs`` epochs, as a kill
    right after that epoch's checkpoint would."""
    return lambda: context.state.step(STEP).epochs_done >= epochs


def test_stage_files_keep_their_names(tmp_path):
    """Checkpoint and product names are those every earlier version wrote (old runs resume)."""
    files = StageFiles.of(tmp_path, phase1_step("aud-mel"))
    checkpoints = tmp_path / "training" / "checkpoints"
    assert files.last == checkpoints / "aud-mel.last.npz"
    assert files.best == checkpoints / "aud-mel.best.npz"
    assert files.products == (tmp_path / "backbones" / "aud-mel.keras",)
    head = StageFiles.of(tmp_path, phase2_step("fused"))
    assert head.last == checkpoints / "head-fused.last.npz"
    assert head.final == tmp_path / "heads" / "fused.keras"
    joint = StageFiles.of(tmp_path, JOINT_STEP)
    assert (joint.last, joint.best, joint.final) == (
        checkpoints / "joint.last.npz", checkpoints / "joint.best.npz", None)


def test_stage_seed_is_the_backbone_seed_of_earlier_versions():
    """Same seeds, so the same networks, as the trainers' own seeding before the stage."""
    for seed, key in ((0, "aud-mel"), (7, "head-fused"), (3, "joint")):
        assert stage_seed(seed, key) == (seed * 1_000_003 + zlib.crc32(key.encode())) % 2**31


def test_batch_scales_with_replicas(tmp_path):
    context = _context(tmp_path)
    assert context.batch == 8 * tf.distribute.get_strategy().num_replicas_in_sync


def test_killed_stage_resumes_from_its_checkpoint(tmp_path):
    """Stopped after epoch 2, the journal and the checkpoint hold two epochs; a new process
    (a fresh journal read from disk) trains epochs 3-4 only and ends where an uninterrupted
    stage ends."""
    whole_dir, broken_dir = tmp_path / "whole", tmp_path / "broken"
    whole = _fit(Stage(_context(whole_dir), STEP, seed_key="head-probe"))

    context = _context(broken_dir)
    context = dataclasses.replace(context, cancel=_after_epochs(context, 2))
    stage = Stage(context, STEP, seed_key="head-probe")
    with pytest.raises(Cancelled):
        _fit(stage)
    assert stage.files.last.exists() and not stage.files.final.exists()
    journal = TrainState.load(broken_dir / JOURNAL).steps[STEP]
    assert (journal.epochs_done, journal.finished) == (2, False)
    assert [h["epoch"] for h in journal.history] == [1, 2]

    resumed_stage = Stage(_context(broken_dir), STEP, seed_key="head-probe")
    assert not resumed_stage.finished
    resumed = _fit(resumed_stage)
    journal = TrainState.load(broken_dir / JOURNAL).steps[STEP]
    assert (journal.epochs_done, journal.finished) == (EPOCHS, True)
    assert [h["epoch"] for h in journal.history] == list(range(1, EPOCHS + 1))
    for a, b in zip(whole.weights, resumed.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_epochs_without_their_checkpoint_restart(tmp_path):
    """A journal whose checkpoint is gone cannot continue: the stage trains from epoch 1."""
    context = _context(tmp_path)
    context = dataclasses.replace(context, cancel=_after_epochs(context, 1))
    stage = Stage(context, STEP, seed_key="head-probe")
    with pytest.raises(Cancelled):
        _fit(stage)
    stage.files.last.unlink()
    _fit(Stage(_context(tmp_path), STEP, seed_key="head-probe"))
    journal = TrainState.load(tmp_path / JOURNAL).steps[STEP]
    assert [h["epoch"] for h in journal.history] == list(range(1, EPOCHS + 1))


def test_finished_stage_is_skipped(tmp_path):
    """A finished step with its products is skipped; without them it is not."""
    stage = Stage(_context(tmp_path), STEP, seed_key="head-probe")
    _fit(stage)
    assert stage.finished and stage.files.final.exists()
    again = Stage(_context(tmp_path), STEP, seed_key="head-probe")
    assert again.finished
    stage.files.final.unlink()
    assert not Stage(_context(tmp_path), STEP, seed_key="head-probe").finished
