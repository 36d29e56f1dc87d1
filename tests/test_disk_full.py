"""A full disk is one line naming the file being written, never a traceback or a
half-written file under its final name."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import numpy as np
import pytest

from avsc_core.atomic import save_npy


@pytest.fixture
def small_disk(tmp_path):
    """A 256-kB tmpfs (needs root, as CI runs here; skipped elsewhere)."""
    target = tmp_path / "small"
    target.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(target)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield target
    subprocess.run(["umount", str(target)], capture_output=True)


def test_a_short_write_names_the_file_and_leaves_nothing(small_disk):
    path = small_disk / "big.npy"
    with pytest.raises(OSError) as info:
        save_npy(path, np.zeros(1 << 20, np.float32))
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert list(small_disk.iterdir()) == []


def test_the_cli_says_which_file_did_not_fit(small_disk, make_media):
    clip = make_media("clip.wav", seconds=10.0, video=False, audio_codec="pcm_s16le")
    out = small_disk / "mel.npy"
    done = subprocess.run([sys.executable, "-m", "avsc_core", "features", str(clip), "--kind",
                           "mel", "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"avsc features: error: {out}: no space left on the disk"
    assert not out.exists()
