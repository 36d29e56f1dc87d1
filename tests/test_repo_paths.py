"""No absolute path of any machine in the repository: tests find shared data via conftest."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# A quoted path into a home or work folder of some machine.
MACHINE_PATH = re.compile(r"""["'](/work|/home|/root|/Users|/mnt/[a-z])/""")


def _tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / line for line in out.splitlines()
            if line.endswith((".py", ".sh", ".toml", ".cfg", ".spec", "Makefile"))]


def test_no_machine_paths_in_code():
    offenders = []
    for path in _tracked_files():
        if path.resolve() == Path(__file__).resolve() or not path.exists():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if MACHINE_PATH.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
