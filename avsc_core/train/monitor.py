"""A Keras callback that reports progress, honours cancel, checkpoints every epoch, keeps
the best epoch and stops early."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import keras

from avsc_core.bundle.history import epoch_metric
from avsc_core.progress import Cancelled, Progress, ProgressCallback
from avsc_core.train.checkpoint import load_weights, save_checkpoint, save_weights
from avsc_core.train.precision import float32_copy
from avsc_core.train.state import StepState, TrainState


def score(logs: dict[str, float]) -> list[float]:
    """Model selection key, higher is better: minus the validation log loss (DCASE's
    ranking metric, and smoother than accuracy on a small validation split). Without a
    validation split, the training figures; logs of versions before the ``log_loss``
    metric, their loss.
    """
    for validation in (True, False):
        for metric in ("log_loss", "loss"):
            value = epoch_metric(logs, metric, validation)
            if value is not None:
                return [-value]
    return [-float("inf")]


class TrainingMonitor(keras.callbacks.Callback):
    """Progress events, a cancel flag polled every batch, a checkpoint per epoch, and
    early stopping.

    After each completed epoch the model's weights and optimizer state are saved to
    ``last_path``, the weights of the best epoch so far (:func:`score`) to ``best_path``,
    and the journal is updated. With ``patience``, training stops once that many epochs
    have passed without a better one. An epoch interrupted by cancel is not recorded, so a
    resume repeats it.
    """

    def __init__(
        self,
        stage: str,
        epochs: int,
        steps_per_epoch: int | None,
        state: TrainState,
        step: StepState,
        last_path: Path,
        best_path: Path,
        progress: ProgressCallback | None = None,
        cancel: Callable[[], bool] | None = None,
        patience: int = 0,
    ):
        super().__init__()
        self.stage = stage
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.state = state
        self.step = step
        self.last_path = last_path
        self.best_path = best_path
        self.progress = progress
        self.cancel = cancel
        self.patience = patience
        self.cancelled = False
        self._epoch_start = 0.0
        self._last_report = 0.0
        self._run_start = time.monotonic()
        self._first_epoch = step.epochs_done

    def _emit(self, done: int, info: dict) -> None:
        if self.progress:
            self.progress(Progress(self.stage, done, self.epochs, info))

    def _eta(self, epoch: int, fraction: float) -> float | None:
        elapsed = time.monotonic() - self._run_start
        finished = (epoch - self._first_epoch) + fraction
        if finished <= 0:
            return None
        return elapsed / finished * (self.epochs - epoch - fraction)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_start = time.monotonic()
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.cancel and self.cancel():
            self.cancelled = True
            self.model.stop_training = True
            return
        now = time.monotonic()
        if self.progress and now - self._last_report > 0.25:
            self._last_report = now
            fraction = (batch + 1) / self.steps_per_epoch if self.steps_per_epoch else 0.0
            self._emit(
                self._epoch,
                {
                    "event": "batch",
                    "epoch": self._epoch + 1,
                    "batch": batch + 1,
                    "batches": self.steps_per_epoch,
                    "metrics": {k: float(v) for k, v in (logs or {}).items()},
                    "eta": self._eta(self._epoch, min(fraction, 1.0)),
                },
            )

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.cancelled:
            return
        logs = {k: float(v) for k, v in (logs or {}).items()}
        save_checkpoint(self.model, self.last_path)
        current = score(logs)
        self.step.history.append(
            {"epoch": epoch + 1, **logs, "seconds": time.monotonic() - self._epoch_start}
        )
        best = self.step.best_score
        if best is not None and len(best) != len(current) and 0 <= self.step.best_epoch < epoch:
            # A journal of a version with another selection key: its best epoch is scored
            # again by this one (the best weights file holds that epoch).
            best = score(self.step.history[self.step.best_epoch])
        if best is None or current > best:
            best = current
            self.step.best_epoch = epoch
            save_weights(self.model, self.best_path)
        self.step.best_score = best
        self.step.epochs_done = epoch + 1
        if self.patience and epoch - self.step.best_epoch >= self.patience:
            self.step.stopped_early = True
            self.model.stop_training = True
        self.state.save()
        self._emit(
            epoch + 1,
            {
                "event": "epoch",
                "epoch": epoch + 1,
                "metrics": logs,
                "eta": self._eta(epoch, 1.0),
                "best_epoch": self.step.best_epoch + 1,
                "stopped_early": self.step.stopped_early,
            },
        )


def fit_and_keep_best(
    model: keras.Model,
    train_ds,
    val_ds,
    *,
    stage: str,
    epochs: int,
    steps_per_epoch: int,
    state: TrainState,
    step: StepState,
    last_path: Path,
    best_path: Path,
    final_path: Path | None,
    saved: keras.Model | None = None,
    patience: int = 0,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Path | None:
    """Train the epochs ``step`` has not done yet (unless it stopped early), restore the
    best epoch, save the network.

    ``model`` is what trains (a :class:`~avsc_core.train.trainer.DeviceTrainer`);
    ``saved``, the network sharing its layers, is what ``final_path`` receives, in
    float32 (:func:`~avsc_core.train.precision.float32_copy`). With ``final_path=None``
    the caller saves (the joint strategy saves its parts, not the training model).

    Raises :class:`Cancelled` when ``cancel`` stopped training; the epochs finished
    before it are checkpointed and journalled, so a resumed run continues from there.
    """
    monitor = TrainingMonitor(
        stage, epochs, steps_per_epoch, state, step, last_path, best_path, progress, cancel,
        patience,
    )
    if step.epochs_done < epochs and not step.stopped_early:
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=epochs,
            initial_epoch=step.epochs_done,
            callbacks=[monitor],
            verbose=0,
        )
        if monitor.cancelled:
            raise Cancelled()
    if best_path.exists():
        load_weights(model, best_path)
    if final_path is not None:
        float32_copy(saved or model).save(final_path)
    step.finished = True
    state.save()
    return final_path
