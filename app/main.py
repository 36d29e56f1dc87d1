"""Entry point of ``avsc-gui``.

The full classify view, training wizard and batch labelling come with their own issue;
until then the window tells the user what the command line can already do.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="avsc-gui", description="avsc desktop application")
    parser.add_argument("--smoke-test", metavar="OUT.png", help="save a screenshot and exit")
    args = parser.parse_args(argv)

    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtWidgets import QApplication, QLabel, QMainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = QMainWindow()
    window.setWindowTitle("avsc - audio-visual scene classification")
    label = QLabel(
        "<h2>avsc</h2><p>The desktop app is being built.</p>"
        "<p>Meanwhile the command line works: <code>avsc --help</code></p>"
    )
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    window.setCentralWidget(label)
    window.resize(720, 480)
    window.show()
    if args.smoke_test:
        def snap() -> None:
            window.grab().save(args.smoke_test)
            app.quit()

        QTimer.singleShot(200, snap)
    return app.exec()
