"""Per-epoch checkpoints restore weights and optimizer state exactly."""

from __future__ import annotations

import keras
import numpy as np

from avsc_core.models import build_fusion_head, scene_loss
from avsc_core.train.checkpoint import load_checkpoint, save_checkpoint


def _head() -> keras.Model:
    model = build_fusion_head("f4", {"aud-mel": 3, "vis-inc": 3}, ["aud-mel", "vis-inc"], 3)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=scene_loss())
    return model


def test_resumed_model_continues_exactly_where_it_stopped(tmp_path):
    rng = np.random.default_rng(0)
    x = {"aud-mel": rng.normal(size=(8, 3)), "vis-inc": rng.normal(size=(8, 3))}
    y = np.eye(3)[rng.integers(0, 3, 8)]
    keras.utils.set_random_seed(1)
    first = _head()
    first.train_on_batch(x, y)
    save_checkpoint(first, tmp_path / "last.npz")

    keras.utils.set_random_seed(2)  # a different initialisation, overwritten by the load
    resumed = _head()
    load_checkpoint(resumed, tmp_path / "last.npz")
    assert int(resumed.optimizer.iterations.numpy()) == 1
    # The next step, with Adam's moments restored, gives identical weights.
    first.train_on_batch(x, y)
    resumed.train_on_batch(x, y)
    for a, b in zip(first.weights, resumed.weights):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)
