"""avsc-gui names the system libraries Qt's X11 plugin lacks instead of letting Qt abort."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app import system_libs


def test_only_the_x11_platform_is_checked():
    assert not system_libs.uses_xcb({"QT_QPA_PLATFORM": "offscreen"})
    assert system_libs.uses_xcb({"QT_QPA_PLATFORM": "xcb"})
    assert system_libs.uses_xcb({"DISPLAY": ":0"}) == sys.platform.startswith("linux")
    assert system_libs.problem({"QT_QPA_PLATFORM": "offscreen"}) is None


def test_known_libraries_map_to_debian_packages():
    assert system_libs.packages_for(
        ["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libfoo.so.9"]
    ) == ["libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 plugin is Linux-only")
def test_gui_on_x11_names_what_is_missing_or_gets_past_the_check(tmp_path):
    """With libraries missing (as on a bare Debian) avsc-gui exits 1 naming them and the
    apt packages; with all present it gets as far as Qt (no display here), not this check."""
    missing = system_libs.missing_libraries()
    env = dict(os.environ, QT_QPA_PLATFORM="xcb", DISPLAY=":97", HOME=str(tmp_path),
               XDG_CONFIG_HOME=str(tmp_path / "config"))
    done = subprocess.run([sys.executable, "-m", "app", "--smoke-test", str(tmp_path / "s.png")],
                          capture_output=True, text=True, env=env, timeout=120)
    if missing:
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("avsc-gui: error: ")
        for library in missing:
            assert library in lines[0]
        for package in system_libs.packages_for(missing):
            assert package in lines[0]
    else:
        assert "missing:" not in done.stderr
