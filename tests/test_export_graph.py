"""Preparing Keras networks for conversion: depthwise convolutions and input names."""

from __future__ import annotations

import keras
import numpy as np

from avsc_core.export.convert import to_tflite
from avsc_core.export.graph import backbone_graph, sanitize, with_depthwise_convolutions
from avsc_core.inference.runtime import TFLiteNetwork
from avsc_core.models.heads import dense_head


def grouped_backbone() -> keras.Model:
    """A tiny backbone with ConvNeXt's kind of 7x7 per-channel convolution, written as
    ``Conv2D(groups=channels)`` inside a nested model, as Keras's ConvNeXt does."""
    inner_in = keras.Input((16, 16, 8))
    x = keras.layers.Conv2D(8, 7, padding="same", groups=8, name="dw")(inner_in)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="ln")(x)
    x = keras.layers.Activation("gelu", name="gelu")(x)
    inner = keras.Model(inner_in, keras.layers.GlobalAveragePooling2D()(x), name="inner")
    inputs = keras.Input((16, 16, 8), name="frames")
    outputs = dense_head(inner(inputs), embed_dim=6, n_classes=3, dropout=0.0, l2=0.0)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.3
                       for w in model.get_weights()])
    return model


def test_grouped_convolutions_become_depthwise_with_the_same_outputs():
    model = grouped_backbone()
    copy = with_depthwise_convolutions(model)
    layer = copy.get_layer("inner").get_layer("dw")
    assert isinstance(layer, keras.layers.DepthwiseConv2D)
    x = np.random.default_rng(1).standard_normal((2, 16, 16, 8)).astype(np.float32)
    np.testing.assert_allclose(copy.predict_on_batch(x), model.predict_on_batch(x), atol=1e-5)
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    assert with_depthwise_convolutions(plain) is plain


def test_converted_backbone_gives_its_three_outputs(tmp_path):
    model = grouped_backbone()
    inputs = backbone_graph(model, batch=4, saved_model=tmp_path / "sm")
    assert inputs == {"frames": "frames"}
    path = tmp_path / "net.tflite"
    path.write_bytes(to_tflite(tmp_path / "sm", "fp32"))
    network = TFLiteNetwork(path, inputs, batch_size=4, threads=1)
    x = np.random.default_rng(2).standard_normal((6, 16, 16, 8)).astype(np.float32)
    got = network(x)
    expected = keras.Model(model.input, [model.get_layer(n).output
                                         for n in ("emb1", "emb2", "probs")])(x)
    for name, value in zip(("emb1", "emb2", "probs"), expected):
        np.testing.assert_allclose(got[name], np.asarray(value), atol=1e-5)


def test_input_names_are_sanitised_for_graphs():
    assert sanitize("aud-mel") == "aud_mel"
    assert sanitize("vis.inc/2") == "vis_inc_2"
    assert sanitize("3d") == "x_3d"
