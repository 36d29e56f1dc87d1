"""What a training run needs from outside (ImageNet weights, devices, cache space) is
checked before the first clip is decoded, each with one line saying what is missing.

Every test here makes decoding fail the test: a run that got as far as decoding before
refusing would have cost the user the whole preparation of the dataset first.
"""

from __future__ import annotations

import urllib.error
from collections import namedtuple

import pytest

from avsc_core.cli.main import main
from avsc_core.errors import AvscError
from avsc_core.features import prepare as prepare_module
from avsc_core.models import weights as weights_module
from avsc_core.train import TrainConfig, train_model
from avsc_core.train import run as run_module

INCEPTION = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
CONVNEXT = "convnext_tiny_notop.h5"
DiskUsage = namedtuple("DiskUsage", "total used free")


@pytest.fixture
def no_decoding(monkeypatch):
    """Any decoding of a clip fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a clip was decoded before the check")

    monkeypatch.setattr(prepare_module, "_prepare", refuse)
    monkeypatch.setattr(prepare_module, "_prepare_in_worker", refuse)


@pytest.fixture
def no_preparation(monkeypatch, no_decoding):
    """Preparing the clips at all fails the test (the weights and devices come first)."""

    def refuse(*args, **kwargs):
        raise AssertionError("clips were prepared before the check")

    monkeypatch.setattr(run_module, "prepare_clips", refuse)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """Empty weights caches and a network that fails at once; counts download attempts."""
    attempts: list[str] = []

    def refuse(url, timeout):
        attempts.append(url)
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setenv(weights_module.WEIGHTS_DIR_ENV, str(tmp_path / "weights"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.setattr(weights_module, "_urlopen", refuse)
    return attempts


def test_missing_imagenet_weights_are_one_line_naming_both_files_and_places(
        tiny_dataset, tmp_path, capsys, offline, no_preparation):
    out = tmp_path / "model"
    code = main(["train", str(tiny_dataset), "--out", str(out),
                 "--backbones", "aud-mel,vis-inc,vis-conv"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("avsc train: error:")]
    for expected in (INCEPTION, CONVNEXT, str(tmp_path / "weights"),
                     str(tmp_path / "keras-home" / "models"), "--visual-weights"):
        assert expected in line
    # Offline is known after the first download fails: the second file is not tried.
    assert len(offline) == 1
    assert not (out / "training").exists()


def test_joint_optimisation_checks_the_weights_of_its_image_model(
        tiny_dataset, tmp_path, offline, no_preparation):
    config = TrainConfig.for_preset("paper", strategy="joint")
    with pytest.raises(AvscError) as caught:
        train_model(tiny_dataset, tmp_path / "model", config)
    assert CONVNEXT in str(caught.value) and INCEPTION not in str(caught.value)


def test_cached_or_imported_weights_need_no_network(tmp_path, offline):
    cache = tmp_path / "weights"
    cache.mkdir()
    (cache / INCEPTION).write_bytes(b"cached")
    (cache / "convnext_tiny_notop.weights.h5").write_bytes(b"imported")
    found = weights_module.resolve_imagenet_files(["vis-inc", "vis-conv"])
    assert found == {"vis-inc": cache / INCEPTION,
                     "vis-conv": cache / "convnext_tiny_notop.weights.h5"}
    assert offline == []


@pytest.mark.parametrize("devices, words", [
    (["--devices", "2"], "--devices 2: TensorFlow cannot train on 2 GPU(s)"),
    (["--devices", "/gpu:7"], "--devices /gpu:7: TensorFlow does not see /gpu:7"),
])
def test_devices_that_are_not_there_are_refused_before_decoding(
        tiny_dataset, tmp_path, capsys, devices, words, no_preparation):
    import tensorflow as tf

    if len(tf.config.list_logical_devices("GPU")) >= 8:
        pytest.skip("this machine has the GPUs asked for")
    code = main(["train", str(tiny_dataset), "--out", str(tmp_path / "model"),
                 "--preset", "tiny", *devices])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("avsc train: error:")]
    assert words in line and "GPU" in line


def test_a_malformed_cluster_spec_is_refused_before_decoding(
        tiny_dataset, tmp_path, monkeypatch, no_preparation):
    monkeypatch.setenv("TF_CONFIG", '{"cluster": ')
    with pytest.raises(AvscError, match="TF_CONFIG: not a multi-worker cluster spec"):
        train_model(tiny_dataset, tmp_path / "model", TrainConfig.for_preset("tiny"))


def test_device_syntax_is_refused_before_tensorflow_loads(tiny_dataset, tmp_path, capsys):
    code = main(["train", str(tiny_dataset), "--out", str(tmp_path / "model"),
                 "--devices", "gpu0"])
    err = capsys.readouterr().err
    assert code == 1 and "--devices gpu0: give a number of GPUs or TensorFlow device" in err


def test_a_cache_disk_without_room_is_refused_before_decoding(
        tiny_dataset, tmp_path, monkeypatch, no_decoding):
    monkeypatch.setattr(prepare_module.shutil, "disk_usage",
                        lambda path: DiskUsage(10**9, 10**9 - 100_000, 100_000))
    with pytest.raises(AvscError) as caught:
        train_model(tiny_dataset, tmp_path / "model", TrainConfig.for_preset("tiny"), jobs=1)
    message = str(caught.value)
    assert "the feature cache needs about" in message and "--cache-dir" in message
    assert "\n" not in message


def test_a_resumed_run_checks_its_devices_too(tiny_dataset, tmp_path, monkeypatch):
    out = tmp_path / "model"
    config = TrainConfig.for_preset("tiny", backbones=("aud-mel",))
    # A run stopped by the space check has its journal, and nothing trained.
    monkeypatch.setattr(prepare_module.shutil, "disk_usage",
                        lambda path: DiskUsage(10**9, 10**9 - 100_000, 100_000))
    with pytest.raises(AvscError, match="feature cache needs"):
        train_model(tiny_dataset, out, config, jobs=1)
    assert (out / "training" / "state.json").exists()

    def refuse(*args, **kwargs):
        raise AssertionError("clips were prepared before the check")

    monkeypatch.setattr(run_module, "prepare_clips", refuse)
    with pytest.raises(AvscError, match="--devices 3"):
        train_model(tiny_dataset, out, resume=True, devices=3)
