"""A damaged manifest is refused with one line naming the file and the bad setting.

Found by the fuzz run of ``benchmarks/robustness.py``: settings of the wrong type in
``media`` / ``features`` used to fail later with a TypeError deep in decoding.
"""

from __future__ import annotations

import json
import shutil

import pytest

from avsc_core.bundle import load_bundle
from avsc_core.config import FeatureConfig, MediaConfig
from avsc_core.errors import AvscError


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("media", "channels", [1], "'channels' should be a whole number"),
        ("media", "segment_seconds", {"a": 1}, "'segment_seconds' should be a number"),
        ("media", "sample_rate", True, "'sample_rate' should be a whole number"),
        ("features", "deltas", "yes", "'deltas' should be true or false"),
        ("features", "mel_fmax", "high", "'mel_fmax' should be a number or null"),
        ("media", "channels", 5, "channels must be 1 or 2"),
    ],
)
def test_bad_settings_in_a_manifest_are_refused(trained_tiny_model, tmp_path, section, key,
                                                value, expected):
    bundle = tmp_path / "damaged"
    shutil.copytree(trained_tiny_model, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest[section][key] = value
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(AvscError) as info:
        load_bundle(bundle)
    message = str(info.value)
    assert "manifest.json" in message and f"'{section}' settings are invalid" in message
    assert expected in message and "\n" not in message


def test_settings_round_trip_and_accept_whole_numbers_for_floats():
    media = MediaConfig.from_dict({"segment_seconds": 5, "hop_seconds": 2.5})
    assert media.segment_seconds == 5 and media.hop_seconds == 2.5
    assert FeatureConfig.from_dict(FeatureConfig().to_dict()) == FeatureConfig()
    with pytest.raises(ValueError, match="mapping"):
        MediaConfig.from_dict(["not", "a", "dict"])


def test_info_describes_then_names_a_changed_network_file(trained_tiny_model, tmp_path,
                                                          capsys):
    from avsc_core.cli.main import main

    bundle = tmp_path / "changed"
    shutil.copytree(trained_tiny_model, bundle)
    network = next(bundle.rglob("*.keras"))
    network.write_bytes(network.read_bytes()[:-10] + b"\0" * 10)
    assert main(["info", "--model", str(bundle)]) == 1
    out, err = capsys.readouterr()
    assert out.startswith(f"model      {bundle}")
    assert err.strip() == (f"avsc info: error: {bundle}: {network.relative_to(bundle)} is "
                           "corrupt or was changed (checksum mismatch)")
