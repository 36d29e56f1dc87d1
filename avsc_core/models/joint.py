"""Joint optimisation (Chen, Wang, Zhang 2022): both encoders and the classifier trained together.

The paper gives the idea, not the layers: acoustic features and raw frames go in, a 1-D
CNN encodes the sound (convolution over time, frequency bins as channels), the bottom
layers of a pre-trained image model encode the frames, and the scene classifier, the
acoustic encoder and the visual layers are optimised jointly. Our design:

Acoustic encoder ``joint-aud``
    Input ``(bins, frames, channels)`` (one spectrogram kind with its deltas, as the
    two-phase audio backbones take), batch-normalised per channel, then seen as a sequence
    of ``frames`` steps with ``bins * channels`` features. Stages of two
    ``Conv1D(k=3) + BN + ReLU`` layers, each stage but the last followed by max pooling
    (2) and dropout; global average pooling over time.
Visual encoder ``joint-vis``
    The image model (``convnext_tiny`` or ``inception_v3`` with ImageNet weights, or the
    ``tiny_cnn`` of the tiny preset) cut after its first ``visual_stages`` stages, then
    global average pooling. Frames are encoded one by one; a segment's embedding is the
    mean over its frames.
Both encoders end in the dense block of :mod:`avsc_core.models.heads` (``emb1`` -> ``emb2``
-> ``probs``), so each one is a complete single-modality classifier and a bundle stores
them exactly like two-phase backbones.
Scene classifier ``fused``
    ``concat(emb1 audio, emb1 visual) -> dropout -> FC(n_classes) -> softmax``.

The training model (:func:`build_joint_model`) has three outputs: the fused answer and each
encoder's own answer. The loss is ``KL(fused) + w * (KL(audio) + KL(visual))`` with
``w = branch_loss_weight``: the two branch answers are our addition, trained alongside so
that a file without sound, or without pictures, still gets an answer from a trained
classifier (the paper's system needs both). Stages of the image model, the image model
itself, freezing and the learning rates are settings (:class:`JointNetConfig`,
:class:`avsc_core.train.TrainConfig`).

Stages of the image models (``visual_stages``)
----------------------------------------------

=================  ======  ==========================================  ===============
image model        stages  cut after stage ``k``                       default
=================  ======  ==========================================  ===============
``convnext_tiny``  1-4     stage ``k-1``'s last block (56, 28, 14, 7)   3 (14x14x384)
``inception_v3``   1-11    ``mixed{k-1}``                              3 (25x25x288)
``tiny_cnn``       1-3     conv block ``k-1``                           3 (whole)
=================  ======  ==========================================  ===============
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from avsc_core.backbones import AUDIO, FUSED, JOINT_AUDIO, JOINT_VISUAL, VISUAL
from avsc_core.models.heads import PROBS_LAYER, dense_head, l2_regularizer
from avsc_core.models.visual import FRAME_SHAPE, Weights, build_application

IMAGE_MODELS = ("convnext_tiny", "inception_v3", "tiny_cnn")
_STAGES = {"convnext_tiny": 4, "inception_v3": 11, "tiny_cnn": 3}
# ConvNeXtTiny's first three stages (12.3 M parameters, 80 % of its FLOPs) rather than
# two (1.2 M, texture-level features): Chen et al.'s visual encoder alone reaches 90.9 %,
# close to whole networks (91.8 %), which takes features near scene level.
DEFAULT_STAGES = {"convnext_tiny": 3, "inception_v3": 3, "tiny_cnn": 3}


@dataclass(frozen=True)
class JointNetConfig:
    """Sizes of the joint-optimisation networks.

    Parameters
    ----------
    audio_filters : tuple of int
        Filters of each acoustic stage (two ``Conv1D`` layers per stage).
    audio_kernel : int
        Width of the ``Conv1D`` kernels, in spectrogram frames.
    audio_dropout : float
        Dropout after each pooled acoustic stage.
    image_model : str
        One of :data:`IMAGE_MODELS`.
    visual_stages : int
        How many stages of the image model to keep (see the module's table).
    embed_dim : int
        Size of both encoders' ``emb1``.
    head_dropout : float
        Dropout before each classifier layer.
    l2 : float
        L2 penalty on the kernels we add (the image model keeps its own).
    """

    audio_filters: tuple[int, ...] = (128, 256, 512, 512)
    audio_kernel: int = 3
    audio_dropout: float = 0.2
    image_model: str = "convnext_tiny"
    visual_stages: int = 2
    embed_dim: int = 512
    head_dropout: float = 0.3
    l2: float = 1e-4

    def __post_init__(self) -> None:
        if self.image_model not in IMAGE_MODELS:
            raise ValueError(f"image_model must be one of {IMAGE_MODELS}, got {self.image_model!r}")
        most = _STAGES[self.image_model]
        if not 1 <= self.visual_stages <= most:
            raise ValueError(
                f"{self.image_model} has stages 1 to {most}, got visual_stages={self.visual_stages}"
            )
        if not self.audio_filters or min(self.audio_filters) < 1:
            raise ValueError("audio_filters must be positive filter counts")
        object.__setattr__(self, "audio_filters", tuple(self.audio_filters))

    @classmethod
    def paper(cls, image_model: str = "convnext_tiny", visual_stages: int | None = None
              ) -> JointNetConfig:
        stages = visual_stages or DEFAULT_STAGES.get(image_model, 1)
        return cls(image_model=image_model, visual_stages=stages)

    @classmethod
    def tiny(cls, visual_stages: int | None = None) -> JointNetConfig:
        return cls(
            audio_filters=(16, 32),
            image_model="tiny_cnn",
            visual_stages=visual_stages or DEFAULT_STAGES["tiny_cnn"],
            embed_dim=64,
        )


def build_acoustic_encoder(
    config: JointNetConfig,
    input_shape: tuple[int, int, int],
    n_classes: int = 10,
    name: str = "joint_aud",
) -> keras.Model:
    """The 1-D CNN acoustic encoder with its dense block: spectrogram in, probabilities out.

    Parameters
    ----------
    input_shape : tuple of int
        ``(bins, frames, channels)``, e.g. ``(128, 305, 6)``.
    """
    bins, frames, channels = input_shape
    reg = l2_regularizer(config.l2)
    inputs = keras.Input(shape=input_shape, name="spectrogram")
    x = keras.layers.BatchNormalization(name="input_bn")(inputs)
    # Time becomes the sequence axis; every (bin, channel) pair is one input channel.
    x = keras.layers.Permute((2, 1, 3), name="time_first")(x)
    x = keras.layers.Reshape((frames, bins * channels), name="bins_as_channels")(x)
    for stage, filters in enumerate(config.audio_filters):
        for layer in range(2):
            prefix = f"s{stage}_c{layer}"
            x = keras.layers.Conv1D(filters, config.audio_kernel, padding="same", use_bias=False,
                                    kernel_regularizer=reg, name=f"{prefix}_conv")(x)
            x = keras.layers.BatchNormalization(name=f"{prefix}_bn")(x)
            x = keras.layers.Activation("relu", name=f"{prefix}_relu")(x)
        if stage < len(config.audio_filters) - 1:
            x = keras.layers.MaxPooling1D(2, name=f"s{stage}_pool")(x)
            x = keras.layers.Dropout(config.audio_dropout, name=f"s{stage}_dropout")(x)
    x = keras.layers.GlobalAveragePooling1D(name="gap")(x)
    outputs = dense_head(x, embed_dim=config.embed_dim, n_classes=n_classes,
                         dropout=config.head_dropout, l2=config.l2)
    return keras.Model(inputs, outputs, name=name)


def _cut_tensor(application: keras.Model, image_model: str, stages: int):
    if image_model == "convnext_tiny":
        if stages == _STAGES[image_model]:
            return application.output
        # A stage ends where the next downsampling block starts.
        return application.get_layer(f"convnext_tiny_downsampling_block_{stages - 1}").input
    if image_model == "inception_v3":
        return application.get_layer(f"mixed{stages - 1}").output
    return application.get_layer(f"c{stages - 1}_relu").output


def image_model_bottom(
    image_model: str,
    stages: int,
    input_shape: tuple[int, int, int] = FRAME_SHAPE,
    weights: Weights = None,
) -> keras.Model:
    """The first ``stages`` stages of ``image_model``, globally average-pooled.

    The returned model is a nested layer named ``"{image_model}_bottom"`` (freeze it with
    ``trainable = False``). Weights are loaded into the whole image model first, so
    ImageNet files and ``--visual-weights`` paths work as for the two-phase backbones.
    """
    application = build_application(image_model, input_shape, weights, pooling=None)
    cut = _cut_tensor(application, image_model, stages)
    pooled = keras.layers.GlobalAveragePooling2D(name="bottom_gap")(cut)
    return keras.Model(application.input, pooled, name=f"{image_model}_bottom")


def build_visual_encoder(
    config: JointNetConfig,
    n_classes: int = 10,
    weights: Weights = None,
    input_shape: tuple[int, int, int] = FRAME_SHAPE,
    name: str = "joint_vis",
) -> keras.Model:
    """The visual encoder with its dense block: one RGB frame in ``[0, 255]`` in, probabilities out."""
    inputs = keras.Input(shape=input_shape, name="frames")
    x = inputs
    if config.image_model != "convnext_tiny":  # ConvNeXt normalises its own input
        x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")(x)
    x = image_model_bottom(config.image_model, config.visual_stages, input_shape, weights)(x)
    outputs = dense_head(x, embed_dim=config.embed_dim, n_classes=n_classes,
                         dropout=config.head_dropout, l2=config.l2)
    return keras.Model(inputs, outputs, name=name)


def encoder_outputs(encoder: keras.Model) -> keras.Model:
    """A model sharing ``encoder``'s layers with outputs ``[emb1, emb2, probs]``."""
    names = ("emb1", "emb2", PROBS_LAYER)
    return keras.Model(encoder.input, [encoder.get_layer(n).output for n in names],
                       name=f"{encoder.name}_outputs")


def build_scene_classifier(
    embed_dims: dict[str, int], n_classes: int = 10, dropout: float = 0.3, l2: float = 1e-4
) -> keras.Model:
    """The jointly trained classifier: ``{encoder name: emb1}`` in, probabilities out.

    Its inputs are named after the encoders, so a bundle stores it as the ``fused`` head.
    """
    inputs = {n: keras.Input(shape=(d,), name=n) for n, d in embed_dims.items()}
    x = keras.layers.Concatenate(name="concat")(list(inputs.values()))
    x = keras.layers.Dropout(dropout, name="concat_dropout")(x)
    x = keras.layers.Dense(n_classes, kernel_regularizer=l2_regularizer(l2), name="logits")(x)
    probs = keras.layers.Activation("softmax", dtype="float32", name=PROBS_LAYER)(x)
    return keras.Model(inputs, probs, name="joint_classifier")


def branch_head(encoder: keras.Model, input_name: str) -> keras.Model:
    """One encoder's own answer from its (frame-averaged) ``emb1``, as a bundle head.

    The dense layer is a copy of the encoder's ``emb2``: it is linear, so on a segment's
    mean ``emb1`` it gives the mean of the per-frame logits, which is what the training
    model's branch output is computed from.
    """
    source = encoder.get_layer("emb2")
    inputs = keras.Input(shape=(source.kernel.shape[0],), name=input_name)
    dense = keras.layers.Dense(source.units, name="logits")
    logits = dense(inputs)
    dense.set_weights(source.get_weights())
    probs = keras.layers.Activation("softmax", dtype="float32", name=PROBS_LAYER)(logits)
    return keras.Model({input_name: inputs}, probs, name=f"{input_name.replace('-', '_')}_head")


def build_joint_model(
    audio_encoder: keras.Model,
    visual_encoder: keras.Model,
    frames_per_segment: int,
    n_classes: int,
    config: JointNetConfig,
) -> tuple[keras.Model, keras.Model]:
    """The training model and its scene classifier.

    The training model takes ``{"spectrogram": (bins, frames, ch), "frames": (n, h, w, 3)}``
    and returns ``{"fused", "audio", "visual"}`` probabilities; the visual branch's answer
    is the softmax of the mean of its frames' logits.
    """
    spectrogram = keras.Input(shape=audio_encoder.input.shape[1:], name="spectrogram")
    frame_shape = tuple(visual_encoder.input.shape[1:])
    frames = keras.Input(shape=(frames_per_segment, *frame_shape), name="frames")
    audio_emb1, audio_emb2, _ = encoder_outputs(audio_encoder)(spectrogram)
    # Every frame of the batch goes through the encoder at once, then back per segment.
    emb1, emb2, _ = encoder_outputs(visual_encoder)(keras.ops.reshape(frames, (-1, *frame_shape)))
    visual_emb1 = keras.ops.mean(
        keras.ops.reshape(emb1, (-1, frames_per_segment, emb1.shape[-1])), axis=1)
    visual_emb2 = keras.ops.mean(
        keras.ops.reshape(emb2, (-1, frames_per_segment, emb2.shape[-1])), axis=1)
    classifier = build_scene_classifier(
        {JOINT_AUDIO: audio_emb1.shape[-1], JOINT_VISUAL: visual_emb1.shape[-1]},
        n_classes, config.head_dropout, config.l2)
    fused = classifier({JOINT_AUDIO: audio_emb1, JOINT_VISUAL: visual_emb1})
    outputs = {
        FUSED: keras.layers.Identity(name=FUSED)(fused),
        AUDIO: keras.layers.Activation("softmax", dtype="float32", name=AUDIO)(audio_emb2),
        VISUAL: keras.layers.Activation("softmax", dtype="float32", name=VISUAL)(visual_emb2),
    }
    model = keras.Model({"spectrogram": spectrogram, "frames": frames}, outputs, name="joint")
    return model, classifier
