"""Per-epoch checkpoints: a model's weights and its optimizer's state in one ``.npz``.

Saving a whole ``.keras`` file costs about half a second even for a tiny model, and
training writes one every epoch; the architecture never changes during a run, so only
the variables are stored and a resumed run rebuilds the model from its settings first.
Files are written atomically, so a kill leaves the previous checkpoint intact.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from avsc_core.atomic import atomic_write


def _save(path: Path, arrays: list[np.ndarray]) -> None:
    with atomic_write(path, "wb") as handle:
        np.savez(handle, *arrays)


def _load(path: Path) -> list[np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def save_weights(model: keras.Model, path: Path) -> None:
    _save(path, [np.asarray(v) for v in model.weights])


def load_weights(model: keras.Model, path: Path) -> None:
    values = _load(path)
    if len(values) != len(model.weights):
        raise ValueError(f"{path}: checkpoint does not match the model")
    for variable, value in zip(model.weights, values):
        variable.assign(value)


def save_checkpoint(model: keras.Model, path: Path) -> None:
    """Weights and optimizer state (step count, moments) of a compiled model."""
    optimizer_values = [np.asarray(v) for v in model.optimizer.variables]
    _save(path, [np.array(len(model.weights))] + [np.asarray(v) for v in model.weights]
          + optimizer_values)


def load_checkpoint(model: keras.Model, path: Path) -> None:
    """Restore what :func:`save_checkpoint` wrote into a freshly built, compiled model."""
    values = _load(path)
    n_weights = int(values[0])
    weights, optimizer_values = values[1 : 1 + n_weights], values[1 + n_weights :]
    if n_weights != len(model.weights):
        raise ValueError(f"{path}: checkpoint does not match the model")
    for variable, value in zip(model.weights, weights):
        variable.assign(value)
    model.optimizer.build(model.trainable_variables)
    if len(optimizer_values) != len(model.optimizer.variables):
        raise ValueError(f"{path}: optimizer state does not match the model")
    for variable, value in zip(model.optimizer.variables, optimizer_values):
        variable.assign(value)
