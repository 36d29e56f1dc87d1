"""Small widgets: the frame strip, message banners, image conversion."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from app.preview import SegmentPreview


def pixmap_from_rgb(rgb: np.ndarray) -> QPixmap:
    """A QPixmap of an ``(h, w, 3)`` uint8 RGB array."""
    rgb = np.ascontiguousarray(rgb)
    height, width = rgb.shape[:2]
    image = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy())


class FrameStrip(QScrollArea):
    """The sampled frames of one segment, each with its time stamp."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumHeight(132)
        self.setMaximumHeight(140)
        self.times: list[float] = []
        self.clear()

    def clear(self, note: str = "") -> None:
        self.times = []
        inner = QWidget()
        layout = QHBoxLayout(inner)
        layout.setContentsMargins(4, 4, 4, 4)
        label = QLabel(note or "The sampled frames appear here.")
        label.setStyleSheet("color: gray")
        layout.addWidget(label)
        layout.addStretch(1)
        self.setWidget(inner)

    def show_segment(self, preview: SegmentPreview) -> None:
        if preview.thumbnails is None or preview.frame_times is None:
            self.clear("No video stream: no frames to show.")
            return
        inner = QWidget()
        layout = QHBoxLayout(inner)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        self.times = [float(t) for t in preview.frame_times]
        for frame, time in zip(preview.thumbnails, preview.frame_times):
            cell = QVBoxLayout()
            cell.setSpacing(1)
            picture = QLabel()
            picture.setPixmap(pixmap_from_rgb(frame))
            caption = QLabel(f"{time:.1f} s")
            caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
            caption.setStyleSheet("color: #444; font-size: 9pt")
            cell.addWidget(picture)
            cell.addWidget(caption)
            layout.addLayout(cell)
        layout.addStretch(1)
        self.setWidget(inner)


class Banner(QLabel):
    """A one-line message above a view: errors in red, information in blue."""

    STYLES: ClassVar[dict[str, str]] = {
        "error": "background:#fde8e8; color:#8a1c1c; border:1px solid #e6a1a1;",
        "info": "background:#e8f0fd; color:#1c3f8a; border:1px solid #a1b8e6;",
    }

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.kind = ""
        self.hide()

    def show_message(self, text: str, kind: str = "error") -> None:
        self.kind = kind
        self.setText(text)
        self.setStyleSheet(self.STYLES[kind] + " padding:6px; border-radius:3px;")
        self.show()

    def clear_message(self) -> None:
        self.kind = ""
        self.setText("")
        self.hide()
