"""Entry point of ``avsc-gui`` (also ``python -m app``).

``avsc-gui [--model M] [FILE]`` opens the window (straight to FILE's result);
``avsc-gui --smoke-test OUT.png [--model M] [FILE]`` classifies FILE, saves a screenshot
of the window and exits: 0 when FILE was classified (or only described, without a model),
1 when the file or the model given with ``--model`` failed, so installed builds can be
checked without a display (``QT_QPA_PLATFORM=offscreen``).

The window is shown before anything heavy loads: TensorFlow is only ever imported by the
worker processes (see :mod:`app.jobs`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("app")

SMOKE_TIMEOUT_MS = 600_000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avsc-gui", description="avsc desktop application: drop a video, see what "
        "kind of place it was shot in, train models, label folders.")
    parser.add_argument("file", nargs="?", type=Path, metavar="FILE",
                        help="a video or audio file to classify at start")
    parser.add_argument("--model", type=Path, metavar="M",
                        help="model bundle folder (default: the last one used)")
    parser.add_argument("--smoke-test", type=Path, metavar="OUT.png",
                        help="classify FILE, save a screenshot of the window and exit")
    parser.add_argument("--check-system", action="store_true",
                        help="check that the system has the libraries the window needs, "
                        "name the packages to install if not, and exit")
    return parser


def _resources() -> Path:
    """``resources/`` of the source tree, or of the packaged app (PyInstaller's folder)."""
    bundled = getattr(sys, "_MEIPASS", None)
    return Path(bundled) / "resources" if bundled else Path(__file__).resolve().parents[1] / "resources"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from app.system_libs import problem as system_problem

    missing = system_problem()
    if missing:  # Qt would abort with a message that names no package
        print(f"avsc-gui: error: {missing}", file=sys.stderr)
        return 1
    if args.check_system:
        print("avsc-gui: the system has what the window needs")
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from avsc_core.quiet import quiet_tensorflow_import

    quiet_tensorflow_import()
    from app.logs import setup_logging

    log_file = setup_logging("gui")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app._qt.main_window import MainWindow
    from app.settings import AppSettings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("avsc")
    app.setDesktopFileName("avsc")  # matches the installer's menu entry
    icon = _resources() / "icons" / "avsc.png"
    if icon.exists():
        from PySide6.QtGui import QIcon

        app.setWindowIcon(QIcon(str(icon)))
    settings = AppSettings.load()
    window = MainWindow(settings)
    _install_excepthook(window)
    window.show()
    log.info("started; log file %s", log_file)
    from app._qt.binding import binding_problem

    problem = binding_problem()
    if problem:
        log.error(problem)
        print(f"avsc-gui: warning: {problem}", file=sys.stderr)
        window.classify_view.banner.show_message(problem)
    # The media process imports its decoders while the user looks at the window.
    QTimer.singleShot(0, window.media.start)

    model = str(args.model) if args.model else settings.model
    model_failed = bool(model) and not window.set_model(model, remember=False)
    if model_failed:
        print(f"avsc-gui: error: {window.classify_view.banner.text()}", file=sys.stderr)
        if not args.model:
            settings.model = None  # the remembered model is gone: forget it
            settings.save()
    if args.file:
        QTimer.singleShot(0, lambda: window.open_file(args.file))

    code = [0]
    if args.smoke_test:
        out = args.smoke_test

        def snap(outcome: str) -> None:
            # Let the last repaint land before grabbing.
            def save() -> None:
                saved = window.grab().save(str(out))
                ok = saved and outcome in ("result", "no-model", "idle") and not (
                    model_failed and args.model)
                if not saved:
                    print(f"avsc-gui: error: cannot write {out}", file=sys.stderr)
                elif not ok and not model_failed:
                    print(f"avsc-gui: error: {window.classify_view.banner.text()}",
                          file=sys.stderr)
                code[0] = 0 if ok else 1
                window.close()
                app.quit()

            QTimer.singleShot(300, save)

        if args.file:
            window.classify_view.done.connect(snap)
            QTimer.singleShot(SMOKE_TIMEOUT_MS, lambda: snap("timeout"))
        else:
            QTimer.singleShot(500, lambda: snap("idle"))
    status = app.exec()
    _dispose(window, app)
    return code[0] if args.smoke_test else status


def _dispose(window, app) -> None:
    """Delete the window before the interpreter exits.

    Left to the final garbage collection, PySide6 6.12 with pyqtgraph aborts the process
    ("bool_dealloc") after the window is gone, turning a clean exit into exit code 134.
    """
    import gc

    from PySide6.QtCore import QCoreApplication, QEvent

    window.close()
    window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    app.processEvents()
    gc.collect()


def _install_excepthook(window) -> None:
    """A bug in a slot is logged and shown in the window instead of passing silently."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        log.error("unexpected error", exc_info=(kind, value, tb))
        try:
            window.statusBar().showMessage(f"Unexpected error: {kind.__name__}: {value} "
                                           "(details in the log)", 15000)
        except RuntimeError:
            previous(kind, value, tb)

    sys.excepthook = hook
