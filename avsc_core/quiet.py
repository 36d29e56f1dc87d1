"""Keeping native libraries' start-up chatter off the user's terminal.

TensorFlow 2.21 prints absl ``I0000`` lines (oneDNN, "Could not find cuda drivers") while
it is imported, whatever ``TF_CPP_MIN_LOG_LEVEL`` says, and TFLite announces its XNNPACK
delegate. None of it is about the user's files, so the command line and the app silence
the process's stderr (file descriptor 2, where C++ writes) for exactly those moments;
``--debug`` keeps everything.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 to ``/dev/null`` inside the block (Python's and C++'s writes)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all (a windowed app): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        with quiet_stderr():
            self._loader.exec_module(module)


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds ``names`` as usual, but runs their first import with stderr silenced."""

    def __init__(self, names: frozenset[str]):
        self.names = names

    def find_spec(self, fullname, path, target=None):
        if fullname not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow_import() -> None:
    """Make the first ``import tensorflow`` of this process silent on stderr.

    Idempotent; does nothing when TensorFlow is already imported.
    """
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietImport(frozenset({"tensorflow"})))
