"""Visual backbones, their preprocessing and the ImageNet weights cache (never the network)."""

from __future__ import annotations

import hashlib
import io
import os
import time
import urllib.error
from dataclasses import replace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from avsc_core.errors import AvscError
from avsc_core.inference.backbones import backbone_runner
from avsc_core.models import (
    build_backbone,
    resolve_imagenet_weights,
    trainable_params,
    visual_backbone,
    visual_weights_path,
)
from avsc_core.models import weights as weights_mod
from avsc_core.models.visual import build_application


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """An empty weights cache, an empty Keras home, and a network that fails at once."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(weights_mod.WEIGHTS_DIR_ENV, str(cache))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))

    def refuse(url, timeout):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(weights_mod, "_urlopen", refuse)
    return cache


def _frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 224, 224, 3), dtype=np.uint8)


def test_tiny_visual_net_takes_uint8_frames_and_gives_probabilities():
    model = build_backbone("vis-inc", "tiny")
    frames = _frames(2)
    probs = np.asarray(model(frames))
    assert probs.shape == (2, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probs, np.asarray(model(frames.astype("float32"))), rtol=1e-6)
    # Preprocessing is inside the model: [0, 255] -> [-1, 1].
    scaled = np.asarray(model.get_layer("preprocess")(np.array([[0.0, 127.5, 255.0]])))
    np.testing.assert_allclose(scaled, [[-1.0, 0.0, 1.0]], atol=1e-6)
    assert np.asarray(backbone_runner(model)(frames)["emb1"]).shape == (2, 64)
    assert visual_backbone(model).name == "tiny_cnn"


def test_tiny_visual_net_learns_bright_versus_dark():
    keras.utils.set_random_seed(0)
    model = build_backbone("vis-conv", "tiny", n_classes=2)
    rng = np.random.default_rng(0)
    labels = np.arange(16) % 2
    frames = rng.integers(0, 100, size=(16, 224, 224, 3)).astype("uint8")
    frames[labels == 1] += 120
    y = np.eye(2, dtype="float32")[labels]
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="kl_divergence")
    loss = model.fit(frames, y, batch_size=8, epochs=6, verbose=0).history["loss"]
    assert loss[-1] < 0.5 * loss[0]
    predicted = np.asarray(model(frames, training=False)).argmax(axis=1)
    assert (predicted == labels).mean() >= 0.9


def test_vis_inc_paper_builds_inception_v3_with_its_preprocessing():
    start = time.perf_counter()
    model = build_backbone("vis-inc", "paper", weights=None)
    print(f"vis-inc paper: built in {time.perf_counter() - start:.1f} s")
    backbone = visual_backbone(model)
    assert backbone.name == "inception_v3"
    assert trainable_params(backbone) == 21_768_352
    head = trainable_params(model) - trainable_params(backbone)
    assert head == 2048 * 1024 + 1024 + 1024 * 10 + 10
    print(f"vis-inc paper: {trainable_params(model):,d} trainable ({head:,d} in the head)")
    assert model.get_layer("preprocess").scale == pytest.approx(1 / 127.5)
    assert model.get_layer("emb1").output.shape[-1] == 1024
    assert model.output_shape == (None, 10)


def test_vis_conv_paper_builds_convnext_tiny_with_its_own_normalisation():
    start = time.perf_counter()
    model = build_backbone("vis-conv", "paper", weights=None)
    print(f"vis-conv paper: built in {time.perf_counter() - start:.1f} s")
    backbone = visual_backbone(model)
    assert backbone.name == "convnext_tiny"
    assert trainable_params(backbone) == 27_820_128
    print(f"vis-conv paper: {trainable_params(model):,d} trainable")
    # No rescaling of ours: ConvNeXt normalises [0, 255] input with ImageNet mean/std itself.
    assert "preprocess" not in {layer.name for layer in model.layers}
    norm = [layer for layer in backbone.layers if isinstance(layer, keras.layers.Normalization)]
    assert len(norm) == 1
    np.testing.assert_allclose(np.ravel(norm[0].mean), [123.675, 116.28, 103.53], rtol=1e-5)


def test_offline_imagenet_weights_fail_fast_with_a_useful_message(offline_cache):
    start = time.perf_counter()
    with pytest.raises(AvscError) as info:
        build_backbone("vis-inc", "paper", weights="imagenet")
    assert time.perf_counter() - start < 5
    message = str(info.value)
    expected = offline_cache / "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert visual_weights_path("vis-inc") == expected
    assert str(expected) in message
    assert weights_mod.IMAGENET_WEIGHTS["vis-inc"].url in message
    assert "--visual-weights" in message
    assert not offline_cache.exists() or not any(offline_cache.iterdir())


def test_a_stuck_connection_gives_up_at_the_deadline(monkeypatch):
    def hang(url, timeout):
        time.sleep(5)

    monkeypatch.setattr(weights_mod.urllib.request, "urlopen", hang)
    start = time.perf_counter()
    with pytest.raises(TimeoutError):
        weights_mod._urlopen("https://example.invalid/w.h5", 0.2)
    assert time.perf_counter() - start < 2


def test_download_checks_the_hash_and_then_serves_from_the_cache(offline_cache, monkeypatch):
    content = b"pretend weights"
    spec = weights_mod.IMAGENET_WEIGHTS["vis-conv"]
    monkeypatch.setattr(weights_mod, "_urlopen", lambda url, timeout: io.BytesIO(b"truncated"))
    with pytest.raises(AvscError, match="hash"):
        resolve_imagenet_weights("vis-conv")
    assert not visual_weights_path("vis-conv").exists()

    good = replace(spec, file_hash=hashlib.sha256(content).hexdigest())
    monkeypatch.setitem(weights_mod.IMAGENET_WEIGHTS, "vis-conv", good)
    monkeypatch.setattr(weights_mod, "_urlopen", lambda url, timeout: io.BytesIO(content))
    path = resolve_imagenet_weights("vis-conv")
    assert path == offline_cache / "convnext_tiny_notop.h5"
    assert path.read_bytes() == content

    def refuse(url, timeout):
        raise AssertionError("downloaded again")

    monkeypatch.setattr(weights_mod, "_urlopen", refuse)
    assert resolve_imagenet_weights("vis-conv") == path


def test_weights_in_keras_own_cache_are_used(offline_cache, tmp_path):
    keras_copy = tmp_path / "keras-home" / "models" / "convnext_tiny_notop.h5"
    keras_copy.parent.mkdir(parents=True)
    keras_copy.write_bytes(b"x")
    assert resolve_imagenet_weights("vis-conv") == keras_copy


def test_keras3_weights_in_the_cache_are_used_as_imagenet(offline_cache, monkeypatch):
    # The cache logic is the same for every architecture; the tiny one keeps this test fast.
    spec = weights_mod.IMAGENET_WEIGHTS["vis-inc"]
    monkeypatch.setitem(weights_mod.IMAGENET_WEIGHTS, "vis-inc", replace(spec, arch="tiny_cnn"))
    source = build_application("tiny_cnn", (224, 224, 3))
    for _ in range(2):
        source(_frames(2), training=True)  # non-initial batch-norm statistics
    offline_cache.mkdir(parents=True, exist_ok=True)
    source.save_weights(offline_cache / spec.imported_filename)

    model = build_backbone("vis-inc", "tiny", weights="imagenet")  # offline: from the cache
    for got, want in zip(visual_backbone(model).get_weights(), source.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)


def test_weights_that_do_not_fit_are_refused_naming_the_file(offline_cache, tmp_path):
    tiny = tmp_path / "tiny.weights.h5"
    build_application("tiny_cnn", (224, 224, 3)).save_weights(tiny)
    with pytest.raises(AvscError, match="tiny.weights.h5") as info:
        build_backbone("vis-inc", "paper", weights=tiny)
    assert "\n" not in str(info.value)
    with pytest.raises(AvscError, match="no such weights file"):
        build_backbone("vis-conv", "paper", weights=tmp_path / "missing.h5")
    with pytest.raises(AvscError, match="no ImageNet weights"):
        build_backbone("vis-inc", "tiny", weights="imagenet")


def test_tiny_visual_net_round_trips_through_safe_mode(tmp_path):
    model = build_backbone("vis-conv", "tiny")
    frames = _frames(3)
    model(frames, training=True)
    path = tmp_path / "vis.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(np.asarray(model(frames)), np.asarray(loaded(frames)))
