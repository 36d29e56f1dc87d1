"""A Keras callback that reports progress, honours cancel and checkpoints every epoch."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import keras

from avsc_core.progress import Cancelled, Progress, ProgressCallback
from avsc_core.train.checkpoint import load_weights, save_checkpoint, save_weights
from avsc_core.train.history import epoch_metric
from avsc_core.train.state import StepState, TrainState


def score(logs: dict[str, float]) -> list[float]:
    """Model selection key: higher validation accuracy, then lower validation loss
    (training figures when there is no validation split)."""
    accuracy = epoch_metric(logs, "accuracy", True)
    if accuracy is None:
        accuracy = epoch_metric(logs, "accuracy", False)
    loss = epoch_metric(logs, "loss", True)
    if loss is None:
        loss = epoch_metric(logs, "loss", False)
    return [accuracy if accuracy is not None else 0.0,
            -(loss if loss is not None else float("inf"))]


class TrainingMonitor(keras.callbacks.Callback):
    """Progress events, a cancel flag polled every batch, and a checkpoint per epoch.

    After each completed epoch the model's weights and optimizer state are saved to
    ``last_path``, the weights of the best epoch so far to ``best_path``, and the journal
    is updated. An epoch interrupted by cancel is not recorded, so a resume repeats it.
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
        if self.step.best_score is None or current > self.step.best_score:
            self.step.best_score = current
            self.step.best_epoch = epoch
            save_weights(self.model, self.best_path)
        self.step.epochs_done = epoch + 1
        self.step.history.append(
            {"epoch": epoch + 1, **logs, "seconds": time.monotonic() - self._epoch_start}
        )
        self.state.save()
        self._emit(
            epoch + 1,
            {
                "event": "epoch",
                "epoch": epoch + 1,
                "metrics": logs,
                "eta": self._eta(epoch, 1.0),
                "best_epoch": self.step.best_epoch + 1,
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
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Path | None:
    """Train the epochs ``step`` has not done yet, restore the best epoch, save the model.

    With ``final_path=None`` the model is left for the caller to save (the joint
    strategy saves its parts, not the training model).

    Raises :class:`Cancelled` when ``cancel`` stopped training; the epochs finished
    before it are checkpointed and journalled, so a resumed run continues from there.
    """
    monitor = TrainingMonitor(
        stage, epochs, steps_per_epoch, state, step, last_path, best_path, progress, cancel
    )
    if step.epochs_done < epochs:
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
        model.save(final_path)
    step.finished = True
    state.save()
    return final_path
