"""Training under tf.distribute with two logical CPU devices (as with two GPUs)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
    from avsc_core.train import TrainConfig, train_model

    config = TrainConfig.for_preset(
        "tiny", phase1_epochs=1, phase2_epochs=1, backbones=("aud-mel", "vis-inc"), batch_size=4
    )
    train_model(sys.argv[1], sys.argv[2], config, devices=["/cpu:0", "/cpu:1"])
    """
)


@pytest.mark.slow
def test_mirrored_training_on_two_devices_writes_a_bundle(tiny_dataset, tmp_path):
    out = tmp_path / "model"
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_dataset), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["training_devices"] == 2
    assert set(manifest["heads"]) == {"audio", "visual", "fused"}
