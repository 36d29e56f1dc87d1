"""The protocol of one training stage, and the run it belongs to.

A stage is one journal step that trains one network: a Phase I backbone
(:mod:`~avsc_core.train.phase1`), a Phase II head (:mod:`~avsc_core.train.phase2`) or
joint optimisation (:mod:`~avsc_core.train.joint`). :class:`Stage` owns what they all do,
in the spirit of Keras' ``BackupAndRestore`` callback, which owns its folder and its
restore: the journal step, the checkpoint files, the seed, building the network under
the run's strategy (and precision), restoring the last checkpoint or starting afresh,
the batch scaled by the replica count, and fitting with a checkpoint per epoch, the best
epoch kept and early stopping (:func:`~avsc_core.train.monitor.fit_and_keep_best`), after
which the step is marked finished. A trainer keeps only what differs: its data, its
network, its number of epochs and what it saves.

:class:`RunContext` is the run every stage of it reads: folder, journal, settings,
classes, strategy, progress and cancel.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras

from avsc_core.config import FeatureConfig, MediaConfig
from avsc_core.progress import ProgressCallback
from avsc_core.train.checkpoint import load_checkpoint
from avsc_core.train.distribute import epoch_steps, worker_datasets
from avsc_core.train.monitor import fit_and_keep_best
from avsc_core.train.precision import precision_policy
from avsc_core.train.settings import TrainConfig
from avsc_core.train.state import StageFiles, TrainState

if TYPE_CHECKING:
    import tensorflow as tf

    from avsc_core.train.pipeline import Shard

# build(seed, total_steps) -> (compiled training model, what the stage keeps of it): see
# Stage.fit.
Build = Callable[[int, int], tuple[keras.Model, Any]]
# datasets(batch, seed, epochs already done, shard) -> (training, validation or None).
Datasets = Callable[[int, int, int, "Shard | None"], tuple[Any, Any]]


def stage_seed(seed: int, key: str) -> int:
    """The seed of the stage ``key`` (a backbone's name, ``head-<head>``, ``joint``) in a run
    seeded with ``seed``: stable across runs and Python processes, different per stage."""
    return (seed * 1_000_003 + zlib.crc32(key.encode())) % (2**31)


@dataclass(frozen=True)
class RunContext:
    """What every stage of a training run reads.

    Attributes
    ----------
    out : Path
        The run folder (the bundle's): journal, checkpoints and trained files live there.
    state : TrainState
        The run's journal, saved after every epoch.
    config : TrainConfig
        The run's settings, precision resolved.
    classes : tuple of str
        Class names, in the order of the networks' outputs.
    distribution : tf.distribute.Strategy
        Where the networks train; its replica count scales every batch.
    media, features : MediaConfig, FeatureConfig
        How clips were decoded (the input shapes of the networks that read them).
    progress : callable, optional
        Receives :class:`~avsc_core.progress.Progress` events.
    cancel : callable, optional
        Polled every batch; true stops the stage (its finished epochs kept).
    """

    out: Path
    state: TrainState
    config: TrainConfig
    classes: tuple[str, ...]
    distribution: tf.distribute.Strategy
    media: MediaConfig = field(default_factory=MediaConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    progress: ProgressCallback | None = None
    cancel: Callable[[], bool] | None = None

    @property
    def batch(self) -> int:
        """The global batch: ``config.batch_size`` per replica, times the replicas."""
        return self.config.batch_size * self.distribution.num_replicas_in_sync


class Stage:
    """One journal step training one network, resumed from its last epoch when it can be.

    Parameters
    ----------
    context : RunContext
    step : str
        The journal step (:func:`~avsc_core.train.state.phase1_step`,
        :func:`~avsc_core.train.state.phase2_step`, :data:`~avsc_core.train.state.JOINT_STEP`).
    seed_key : str
        What :func:`stage_seed` seeds the stage from.
    files : StageFiles, optional
        ``StageFiles.of(context.out, step)`` when omitted.
    """

    def __init__(
        self, context: RunContext, step: str, seed_key: str, files: StageFiles | None = None
    ):
        self.context = context
        self.name = step
        self.step = context.state.step(step)
        self.files = files or StageFiles.of(context.out, step)
        self.seed = stage_seed(context.config.seed, seed_key)

    @property
    def finished(self) -> bool:
        """The journal says the step is done and its products are all there."""
        return self.step.finished and all(path.exists() for path in self.files.products)

    def fit(
        self,
        *,
        examples: int,
        epochs: int,
        build: Build,
        datasets: Datasets,
        precision: str | None = None,
    ) -> Any:
        """Train the epochs the journal has not recorded, keep the best, mark the step done.

        Parameters
        ----------
        examples : int
            Training examples per epoch (with the global batch, the steps per epoch).
        epochs : int
            Total epochs, which early stopping may cut short.
        build : callable
            ``build(seed, total_steps)``, called under the strategy's scope (and
            ``precision``) right after the seed is set: the compiled training model (its
            schedule over ``total_steps``), and what the stage keeps: the network saved to
            ``files.final``, or, without one, whatever the trainer saves itself.
        datasets : callable
            ``datasets(batch, seed, epochs_done, shard)``: the training and validation (or
            ``None``) datasets; ``epochs_done`` after the restore (0 for a fresh start), so
            that a resumed run shuffles as an uninterrupted one would. In multi-worker
            training, called by each worker with the per-replica batch and its
            :class:`~avsc_core.train.pipeline.Shard`, which the training dataset must read
            alone (``None`` otherwise; see
            :func:`~avsc_core.train.distribute.worker_datasets`).
        precision : str, optional
            The policy to build under (``"mixed"``, ``"float32"``); the global one when
            omitted (Phase II heads).

        Returns
        -------
        object
            The second value ``build`` returned, its best epoch's weights restored.

        Raises
        ------
        Cancelled
            When ``context.cancel`` stopped training; the epochs finished before are
            checkpointed and journalled, so a resumed run continues from there.
        """
        context, files = self.context, self.files
        files.last.parent.mkdir(parents=True, exist_ok=True)
        if files.final is not None:
            files.final.parent.mkdir(parents=True, exist_ok=True)
        batch = context.batch
        steps_per_epoch = epoch_steps(examples, batch, context.distribution)
        # Seeded right before building: initial weights depend on the stage, not on the
        # stages trained (or skipped) before it.
        keras.utils.set_random_seed(self.seed)
        resuming = self.step.epochs_done > 0 and files.last.exists()
        policy = precision_policy(precision) if precision else contextlib.nullcontext()
        with context.distribution.scope(), policy:
            model, kept = build(self.seed, epochs * steps_per_epoch)
            if resuming:
                load_checkpoint(model, files.last)
            else:
                # A journal's epochs without their checkpoint cannot be continued.
                self.step.restart()
        epochs_done = self.step.epochs_done
        train_ds, val_ds = worker_datasets(
            context.distribution, batch,
            lambda size, shard: datasets(size, self.seed, epochs_done, shard))
        fit_and_keep_best(
            model,
            train_ds,
            val_ds,
            stage=self.name,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            state=context.state,
            step=self.step,
            last_path=files.last,
            best_path=files.best,
            final_path=files.final,
            saved=kept if files.final is not None else None,
            patience=context.config.patience,
            progress=context.progress,
            cancel=context.cancel,
        )
        return kept
