"""Phase II fusion layers f1..f6 against the paper's formulas, computed by hand in numpy."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from avsc_core.models import (
    AUDIO_BACKBONES,
    BACKBONES,
    VISUAL_BACKBONES,
    EmbeddingFusion,
    build_fusion_head,
    fusion_spec,
    scene_loss,
)

# The paper's order: ae_g, ae_m, ae_c, ve_i, ve_c <-> w1..w5.
PAPER_ORDER = ["aud-gam", "aud-mel", "aud-cqt", "vis-inc", "vis-conv"]
FUSIONS_ORDER = ["f1", "f2", "f3", "f4", "f5", "f6"]


def _embeddings(names, d, n=4, seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=(n, d)).astype("float32") for name in names}


def _randomise(layer, seed=1):
    rng = np.random.default_rng(seed)
    values = [rng.normal(size=w.shape).astype("float32") for w in layer.get_weights()]
    layer.set_weights(values)
    return values


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _fused(head, emb):
    fusion = keras.Model(head.input, head.get_layer("fusion").output)
    return np.asarray(fusion(emb))


@pytest.mark.parametrize(("fusion", "d"), [("f1", 16), ("f4", 10)])
def test_sum_fusion_matches_the_formula(fusion, d):
    head = build_fusion_head(fusion, dict.fromkeys(PAPER_ORDER, d), PAPER_ORDER)
    w1, w2, w3, w4, w5, b = _randomise(head.get_layer("fusion"))
    kernel, bias = _randomise(head.get_layer("logits"), seed=2)
    e = _embeddings(PAPER_ORDER, d)
    g, m, c, i, v = (e[n] for n in PAPER_ORDER)
    expected = g * w1 + m * w2 + c * w3 + i * w4 + v * w5 + b
    np.testing.assert_allclose(_fused(head, e), expected, rtol=1e-5, atol=1e-5)
    probs = np.asarray(head(e))
    np.testing.assert_allclose(probs, _softmax(expected @ kernel + bias), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(("fusion", "d"), [("f2", 16), ("f5", 10)])
def test_branch_fusion_matches_the_formula(fusion, d):
    head = build_fusion_head(fusion, dict.fromkeys(PAPER_ORDER, d), PAPER_ORDER)
    w1, w2, w3, w4, w5, wa, wv, b = _randomise(head.get_layer("fusion"))
    e = _embeddings(PAPER_ORDER, d)
    g, m, c, i, v = (e[n] for n in PAPER_ORDER)
    expected = (g * w1 + m * w2 + c * w3) * wa + (i * w4 + v * w5) * wv + b
    np.testing.assert_allclose(_fused(head, e), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("fusion", "d"), [("f3", 16), ("f6", 10)])
def test_concat_fusion_matches_the_formula(fusion, d):
    head = build_fusion_head(fusion, dict.fromkeys(PAPER_ORDER, d), PAPER_ORDER)
    w1, w2, w3, w4, w5 = _randomise(head.get_layer("fusion"))
    e = _embeddings(PAPER_ORDER, d)
    g, m, c, i, v = (e[n] for n in PAPER_ORDER)
    expected = np.concatenate([g * w1 + m * w2 + c * w3, i * w4 + v * w5], axis=1)
    assert head.get_layer("logits").kernel.shape == (2 * d, 10)
    np.testing.assert_allclose(_fused(head, e), expected, rtol=1e-5, atol=1e-5)


def test_fusion_names_map_to_modes_and_embedding_types():
    assert [(fusion_spec(f).mode, fusion_spec(f).embedding_type) for f in FUSIONS_ORDER] == [
        ("sum", 1),
        ("branch", 1),
        ("concat", 1),
        ("sum", 2),
        ("branch", 2),
        ("concat", 2),
    ]
    with pytest.raises(ValueError, match="f7"):
        fusion_spec("f7")


def test_untrained_fusion_is_the_plain_sum():
    d = 8
    head = build_fusion_head("f1", dict.fromkeys(PAPER_ORDER, d), PAPER_ORDER)
    e = _embeddings(PAPER_ORDER, d)
    np.testing.assert_allclose(_fused(head, e), sum(e.values()), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("names", "weight_count"),
    [(list(AUDIO_BACKBONES), 3 + 1 + 1), (list(VISUAL_BACKBONES), 2 + 1 + 1)],
)
def test_single_modality_heads(names, weight_count):
    d = 10
    head = build_fusion_head("f5", dict.fromkeys(BACKBONES, d), names)
    layer = head.get_layer("fusion")
    assert len(layer.get_weights()) == weight_count  # w per input, one branch vector, b
    *ws, w_branch, b = _randomise(layer)
    e = _embeddings(names, d)
    expected = sum(e[n] * w for n, w in zip(names, ws, strict=True)) * w_branch + b
    np.testing.assert_allclose(_fused(head, e), expected, rtol=1e-5, atol=1e-5)

    concat = build_fusion_head("f6", dict.fromkeys(BACKBONES, d), names)
    ws = _randomise(concat.get_layer("fusion"))
    expected = sum(e[n] * w for n, w in zip(names, ws, strict=True))
    np.testing.assert_allclose(_fused(concat, e), expected, rtol=1e-5, atol=1e-5)


def test_fusion_head_round_trips_through_safe_mode(tmp_path):
    head = build_fusion_head("f2", dict.fromkeys(PAPER_ORDER, 12), PAPER_ORDER)
    _randomise(head.get_layer("fusion"))
    _randomise(head.get_layer("logits"), seed=3)
    path = tmp_path / "head.keras"
    head.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    e = _embeddings(PAPER_ORDER, 12)
    np.testing.assert_array_equal(np.asarray(head(e)), np.asarray(loaded(e)))
    layer = loaded.get_layer("fusion")
    assert isinstance(layer, EmbeddingFusion)
    assert (layer.mode, layer.modalities) == ("branch", ["audio"] * 3 + ["visual"] * 2)


def test_fusion_head_learns_from_embeddings():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    labels = np.arange(64) % 10
    centres = rng.normal(size=(10, 10)).astype("float32")
    e = {
        n: centres[labels] + 0.5 * rng.normal(size=(64, 10)).astype("float32") for n in PAPER_ORDER
    }
    y = np.eye(10, dtype="float32")[labels]
    head = build_fusion_head("f4", dict.fromkeys(PAPER_ORDER, 10), PAPER_ORDER)
    head.compile(optimizer=keras.optimizers.Adam(0.01), loss=scene_loss())
    loss = head.fit(e, y, batch_size=16, epochs=10, verbose=0).history["loss"]
    assert loss[-1] < 0.2 * loss[0]
    assert (np.asarray(head(e)).argmax(axis=1) == labels).mean() >= 0.9


def test_mismatched_or_missing_embeddings_are_refused():
    dims = {"aud-mel": 16, "aud-gam": 16, "vis-inc": 10}
    with pytest.raises(ValueError, match="same"):
        build_fusion_head("f1", dims, ["aud-mel", "vis-inc"])
    with pytest.raises(ValueError, match="aud-cqt"):
        build_fusion_head("f1", dims, ["aud-mel", "aud-cqt"])
    with pytest.raises(ValueError, match="unknown backbone"):
        build_fusion_head("f1", {"mystery": 16}, ["mystery"])
    with pytest.raises(ValueError, match="mode"):
        EmbeddingFusion("product", ["audio"])
