"""The audio backbone: size of the paper network, learning, embeddings, saving."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from avsc_core.inference.backbones import backbone_runner
from avsc_core.models import (
    AudioNetConfig,
    build_audio_net,
    build_backbone,
    scene_loss,
    trainable_params,
)

TOY_SHAPE = (32, 40, 6)


def _toy_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes told apart by which half of the bins carries energy."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *TOY_SHAPE)).astype("float32")
    labels = np.arange(n) % 2
    half = TOY_SHAPE[0] // 2
    x[labels == 0, :half] += 2.0
    x[labels == 1, half:] += 2.0
    return x, np.eye(2, dtype="float32")[labels]


def test_paper_audio_net_has_about_12m_trainable_params():
    model = build_backbone("aud-mel", "paper")
    n = trainable_params(model)
    print(f"aud-mel paper: {n:,d} trainable parameters")
    assert 10_800_000 <= n <= 13_200_000
    assert model.input_shape == (None, 128, 305, 6)
    assert model.output_shape == (None, 10)
    assert model.get_layer("emb1").output.shape[-1] == 1024
    assert model.get_layer("emb2").output.shape[-1] == 10


@pytest.mark.slow
def test_paper_audio_net_takes_a_training_step():
    keras.utils.set_random_seed(0)
    model = build_backbone("aud-gam", "paper")
    # SGD: tracing Adam's update for 12 M parameters adds ~30 s on a 2-core CPU.
    model.compile(optimizer=keras.optimizers.SGD(1e-3), loss=scene_loss())
    x = np.random.default_rng(0).normal(size=(2, 128, 305, 6)).astype("float32")
    y = np.array([[0.7, 0.3] + [0.0] * 8, [0.0] * 9 + [1.0]], dtype="float32")  # mixup-like
    before = model.get_layer("emb1").get_weights()[0].copy()
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.allclose(before, model.get_layer("emb1").get_weights()[0])


def test_tiny_audio_net_is_small_and_learns_a_separable_problem():
    keras.utils.set_random_seed(0)
    model = build_audio_net(AudioNetConfig.tiny(), TOY_SHAPE, n_classes=2)
    assert 10_000 <= trainable_params(model) <= 100_000
    # SGD: Adam's first graph trace alone takes ~10 s on a 2-core CPU.
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss=scene_loss())
    x, y = _toy_data(32)
    history = model.fit(x, y, batch_size=8, epochs=6, verbose=0).history["loss"]
    assert history[-1] < 0.5 * history[0]
    x_test, y_test = _toy_data(16, seed=1)
    predicted = np.asarray(model(x_test, training=False)).argmax(axis=1)
    assert (predicted == y_test.argmax(axis=1)).mean() >= 0.9


def test_embeddings_are_the_dense_outputs():
    model = build_audio_net(AudioNetConfig.tiny(), TOY_SHAPE, n_classes=10)
    x, _ = _toy_data(3)
    outputs = backbone_runner(model)(x)
    emb1, emb2 = np.asarray(outputs["emb1"]), np.asarray(outputs["emb2"])
    probs = np.asarray(model(x))
    assert emb1.shape == (3, AudioNetConfig.tiny().embed_dim)
    assert (emb1 >= 0).all()  # ReLU output
    assert emb2.shape == (3, 10)
    softmax = np.exp(emb2 - emb2.max(axis=1, keepdims=True))
    np.testing.assert_allclose(softmax / softmax.sum(axis=1, keepdims=True), probs, atol=1e-5)


def test_input_shape_is_a_parameter_and_frames_may_vary():
    model = build_audio_net(AudioNetConfig.tiny(), (64, None, 2), n_classes=3)
    for frames in (50, 77):
        out = np.asarray(model(np.zeros((1, 64, frames, 2), "float32")))
        assert out.shape == (1, 3)
        np.testing.assert_allclose(out.sum(), 1.0, rtol=1e-5)


def test_tiny_audio_net_round_trips_through_safe_mode(tmp_path):
    keras.utils.set_random_seed(1)
    model = build_backbone("aud-cqt", "tiny", n_classes=10, input_shape=TOY_SHAPE)
    x, _ = _toy_data(8)
    for _ in range(3):
        model(x, training=True)  # moves the batch-norm statistics away from their start
    path = tmp_path / "aud.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.name == "aud_cqt"
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(loaded(x)))
    np.testing.assert_array_equal(
        np.asarray(backbone_runner(model)(x)["emb1"]),
        np.asarray(backbone_runner(loaded)(x)["emb1"]),
    )


def test_audio_backbones_reject_pretrained_weights():
    with pytest.raises(ValueError, match="no pretrained weights"):
        build_backbone("aud-mel", "tiny", weights="imagenet")


@pytest.mark.parametrize(
    "kwargs",
    [{"widths": (30, 64)}, {"widths": (32,), "blocks": (1, 1)}, {"blocks": (0, 1, 1, 1)}],
)
def test_bad_audio_config_is_refused(kwargs):
    with pytest.raises(ValueError):
        AudioNetConfig(**kwargs)
