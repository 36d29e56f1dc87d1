"""A check of the Qt binding the app runs on.

PySide6 6.12.0's ``Signal.emit`` drops a reference to ``True`` on every call; after a few
thousand signals (minutes of use: pyqtgraph emits on every repaint) Python aborts with
"bool_dealloc". 6.11.3 does not. The app says so at start instead of dying later.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    fired = Signal(object)


def emit_loses_references(emits: int = 20) -> bool:
    """Whether emitting a signal loses references to ``True`` (the 6.12.0 bug)."""
    emitter = _Emitter()
    emitter.fired.connect(lambda _: None)
    before = sys.getrefcount(True)
    for _ in range(emits):
        emitter.fired.emit(None)
    return sys.getrefcount(True) < before


def binding_problem() -> str | None:
    """A message for the user when the installed PySide6 would crash the app, else None."""
    if not emit_loses_references():
        return None
    import PySide6

    return (f"PySide6 {PySide6.__version__} has a bug that crashes the app after a few "
            "minutes of use; install another version (6.11.3 works): "
            "pip install 'PySide6-Essentials==6.11.3'")
