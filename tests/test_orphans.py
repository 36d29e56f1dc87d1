"""Pool workers end when the process that started them is killed (not left running)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

POOL = """
import concurrent.futures, multiprocessing, os, sys, time
from avsc_core.orphans import exit_with_parent

if __name__ == "__main__":
    initializer = exit_with_parent if sys.argv[1] == "watched" else None
    pool = concurrent.futures.ProcessPoolExecutor(
        1, mp_context=multiprocessing.get_context("spawn"), initializer=initializer)
    print(pool.submit(os.getpid).result(), flush=True)
    time.sleep(600)
"""


def _running(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        state = next(line for line in status.read_text().splitlines()
                     if line.startswith("State:"))
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "zombie" not in state


def _worker_after_kill(tmp_path: Path, mode: str) -> int:
    script = tmp_path / "pool.py"
    script.write_text(POOL)
    parent = subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE,
                              text=True, cwd=Path(__file__).resolve().parents[1])
    worker = int(parent.stdout.readline())
    assert _running(worker)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    return worker


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_pool_worker_exits_when_its_parent_is_killed(tmp_path):
    """Without the watch (``plain``) the worker stays: it holds its own queue's pipe."""
    worker = _worker_after_kill(tmp_path, "watched")
    deadline = time.monotonic() + 20
    while _running(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(worker)
