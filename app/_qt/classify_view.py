"""The classify view: a file's facts, frames, spectrograms and what the model says."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QFont
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app._qt.plots import BarsRow, SpectrogramPanel, TimelinePlot
from app._qt.tasks import ServerClient, Task
from app._qt.widgets import Banner, FrameStrip
from app.model_info import NO_MODEL_HTML, model_html
from app.preview import MAX_SEGMENTS, SegmentPreview
from app.results import BRANCH_TITLES, facts, result_view, timeline
from avsc_core.train import ALL_BACKBONES

log = logging.getLogger(__name__)

SCENE_TAB, MODEL_TAB = range(2)


def _names_file(message: str, path: str) -> str:
    """Error messages always name the file."""
    if path in message or Path(path).name in message:
        return message
    return f"{path}: {message}"


class ClassifyView(QWidget):
    """Drop a file, see its facts at once, then frames, spectrograms and the answer.

    Signals
    -------
    done(str)
        Analysis of a file ended: ``"result"``, ``"error"``, ``"cancelled"`` or
        ``"no-model"`` (the preview finished but there is no model to classify with).
    """

    done = Signal(str)

    def __init__(self, media: ServerClient, classifier: ServerClient,
                 model_actions: list[QAction], parent: QWidget | None = None):
        super().__init__(parent)
        self.media = media
        self.classifier = classifier
        self.file: str | None = None
        self.model: str | None = None
        self.manifest: dict | None = None
        self.result: dict[str, Any] | None = None
        self.previews: dict[int, SegmentPreview] = {}
        self.selected: int | None = None
        self._preview_task: Task | None = None
        self._classify_task: Task | None = None
        self._error_shown = ""
        self._build(model_actions)

    # ----- layout -------------------------------------------------------------------
    def _build(self, model_actions: list[QAction]) -> None:
        self.open_button = QPushButton("Open a file...")
        self.file_label = QLabel("<b>Drop a video or audio file anywhere on this window</b>")
        self.file_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status = QLabel("")
        self.status.setStyleSheet("color:#444")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        top = QHBoxLayout()
        top.addWidget(self.open_button)
        top.addWidget(self.file_label, 1)
        top.addWidget(self.status)
        top.addWidget(self.progress)
        top.addWidget(self.cancel_button)

        self.banner = Banner()
        self.facts_box = QGroupBox("File")
        self.facts_form = QFormLayout(self.facts_box)
        self.facts_form.setContentsMargins(8, 4, 8, 4)
        self.facts_box.hide()

        self.frames = FrameStrip()
        self.segment_label = QLabel("")
        self.segment_label.setStyleSheet("color:#444")
        self.timeline = TimelinePlot()
        self.timeline.setMinimumHeight(150)
        self.timeline.segment_clicked.connect(self.select_segment)
        self.timeline_branch = QComboBox()
        self.timeline_branch.addItems(list(BRANCH_TITLES))
        self.timeline_branch.currentTextChanged.connect(lambda _: self._draw_timeline())
        self.timeline_box = QGroupBox("Over time (click a point to see that segment)")
        box = QVBoxLayout(self.timeline_box)
        row = QHBoxLayout()
        row.addWidget(QLabel("branch"))
        row.addWidget(self.timeline_branch)
        row.addStretch(1)
        self.export_button = QPushButton("Export...")
        self.export_button.setToolTip("Save the answers over time as a segments CSV, WebVTT "
                                      "captions or an Audacity label track")
        self.export_button.clicked.connect(self.export_timeline)
        row.addWidget(self.export_button)
        box.addLayout(row)
        box.addWidget(self.timeline)
        self.timeline_box.hide()
        self.spectrograms = SpectrogramPanel()

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.facts_box)
        frames_row = QHBoxLayout()
        frames_row.addWidget(QLabel("<b>Sampled frames</b>"))
        frames_row.addWidget(self.segment_label, 1)
        left_layout.addLayout(frames_row)
        left_layout.addWidget(self.frames)
        left_layout.addWidget(self.timeline_box, 2)
        left_layout.addWidget(self.spectrograms, 3)

        self.label_text = QLabel("-")
        font = QFont()
        font.setPointSize(24)
        font.setBold(True)
        self.label_text.setFont(font)
        self.label_text.setWordWrap(True)
        self.confidence_text = QLabel("")
        big = QFont()
        big.setPointSize(13)
        self.confidence_text.setFont(big)
        self.scope_text = QLabel("")
        self.scope_text.setStyleSheet("color:#555")
        self.whole_button = QPushButton("Show the whole file")
        self.whole_button.clicked.connect(lambda: self.select_segment(None))
        self.whole_button.hide()
        self.verdict_text = QLabel("")
        self.verdict_text.setWordWrap(True)
        self.warnings_text = QLabel("")
        self.warnings_text.setWordWrap(True)
        self.warnings_text.setStyleSheet("color:#8a5a00")
        self.branch_bars = BarsRow(columns=3)
        self.branch_bars.setFixedHeight(185)
        self.backbone_bars = BarsRow(columns=len(ALL_BACKBONES))
        self.backbone_bars.setFixedHeight(185)

        result_box = QWidget()
        result_layout = QVBoxLayout(result_box)
        result_layout.addWidget(self.label_text)
        result_layout.addWidget(self.confidence_text)
        scope_row = QHBoxLayout()
        scope_row.addWidget(self.scope_text, 1)
        scope_row.addWidget(self.whole_button)
        result_layout.addLayout(scope_row)
        result_layout.addWidget(self.verdict_text)
        result_layout.addWidget(self.warnings_text)
        result_layout.addWidget(QLabel("<b>Branches</b> (probability per class)"))
        result_layout.addWidget(self.branch_bars)
        result_layout.addWidget(QLabel("<b>Backbones</b>"))
        result_layout.addWidget(self.backbone_bars)
        result_layout.addStretch(1)

        self.model_text = QLabel(NO_MODEL_HTML)
        self.model_text.setWordWrap(True)
        self.model_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        model_box = QWidget()
        model_layout = QVBoxLayout(model_box)
        model_layout.addWidget(self.model_text)
        buttons = QHBoxLayout()
        for action in model_actions:
            button = QToolButton()
            button.setDefaultAction(action)
            buttons.addWidget(button)
        buttons.addStretch(1)
        model_layout.addLayout(buttons)
        model_layout.addStretch(1)

        # The answer and the model share the column, one at a time, so the window fits a
        # laptop screen.
        self.side_tabs = QTabWidget()
        self.side_tabs.addTab(result_box, "Scene")
        self.side_tabs.addTab(model_box, "Model")
        right = self.side_tabs

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        splitter.setSizes([700, 480])
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.banner)
        layout.addWidget(splitter, 1)
        self._clear_result()
        self.spectrograms.clear("The spectrograms appear here.")
        self.side_tabs.setCurrentIndex(MODEL_TAB)

    # ----- model --------------------------------------------------------------------
    def set_model(self, path: str | None, manifest: dict | None) -> None:
        self.model, self.manifest = path, manifest
        self.model_text.setText(model_html(path, manifest) if path and manifest else NO_MODEL_HTML)
        if self.result is None:
            # Nothing classified yet: show what the model is, or how to get one.
            self.side_tabs.setCurrentIndex(MODEL_TAB)

    # ----- running ------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return any(t is not None and t.running for t in (self._preview_task, self._classify_task))

    def open_file(self, path: str | Path) -> None:
        """Show ``path``'s facts and preview at once, and classify it in the background."""
        self.cancel(quiet=True)
        self.file = str(path)
        self.previews, self.selected, self.result = {}, None, None
        self._error_shown = ""
        self.banner.clear_message()
        self.file_label.setText(f"<b>{Path(path).name}</b>")
        self.file_label.setToolTip(str(path))
        self._clear_facts()
        self.frames.clear("Reading the frames...")
        self.spectrograms.clear("Reading the sound...")
        self._clear_result()
        self.timeline_box.hide()
        self.segment_label.setText("")

        self._preview_task = self.media.request("preview", file=self.file,
                                                manifest=self.manifest)
        self._preview_task.item.connect(self._on_preview_item)
        self._preview_task.failed.connect(self._on_failed)
        self._preview_task.finished.connect(self._on_task_finished)
        if self.model:
            self._classify_task = self.classifier.request("classify", file=self.file,
                                                          model=self.model)
            self._classify_task.progress.connect(self._on_classify_progress)
            self._classify_task.result.connect(self._on_result)
            self._classify_task.failed.connect(self._on_failed)
            self._classify_task.finished.connect(self._on_task_finished)
            self._set_status("Waiting for the model engine..."
                             if not self.classifier.server.ready else "Classifying...")
        else:
            self._classify_task = None
            self._set_status("Reading the file...")
            self.banner.show_message(
                "No model is open, so the file is only described. Make the sample model "
                "(Model > Make a sample model), train one, or open one to classify it.", "info")
        self._set_busy(True)

    def cancel(self, quiet: bool = False) -> None:
        for task in (self._preview_task, self._classify_task):
            if task is not None and task.running:
                task.cancel()
                if quiet:
                    # A newer file replaces this one: a task no longer running drops its
                    # late answers unseen.
                    task.running = False
        if not quiet:
            self._set_status("Cancelling...")

    # ----- task callbacks -----------------------------------------------------------
    def _on_preview_item(self, item: tuple[str, Any]) -> None:
        kind, payload = item
        if kind == "facts":
            self._show_facts(payload)
        elif kind == "axes":
            self.spectrograms.set_axes(payload)
        elif kind == "segment":
            self.previews[payload.index] = payload
            if self.selected is None and payload.index == 0 or payload.index == self.selected:
                self._show_preview(payload.index)

    def _on_classify_progress(self, event) -> None:
        if event.total:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.done)
            self._set_status(f"Classifying: segment {event.done}/{event.total}")

    def _on_result(self, result: dict[str, Any]) -> None:
        self.result = result
        self.side_tabs.setCurrentIndex(SCENE_TAB)
        self.select_segment(None)
        self._draw_timeline()

    def export_timeline(self) -> None:
        """Ask where, then write the answers over time (format from the file type)."""
        from PySide6.QtWidgets import QFileDialog

        from avsc_core.timeline import FORMATS, write_timeline

        if self.result is None:
            return
        stem = Path(self.result["file"]).stem
        filters = ";;".join(f"{name} (*{suffix})" for suffix, name in FORMATS.items())
        path, chosen = QFileDialog.getSaveFileName(
            self, "Export the answers over time", str(Path.home() / f"{stem}.vtt"), filters)
        if not path:
            return
        target = Path(path)
        if target.suffix.lower() not in FORMATS:  # the filter names the type
            target = target.with_suffix(chosen[chosen.index("*") + 1:chosen.index(")")])
        try:
            write_timeline(target, self.result)
        except (OSError, ValueError) as exc:
            self.banner.show_message(f"Could not export to {target}: {exc}")
            return
        self._set_status(f"Exported to {target}")

    def _on_failed(self, message: str) -> None:
        if self._error_shown:
            return  # the other task failing on the same file says nothing new
        message = _names_file(message, self.file or "")
        self._error_shown = message
        log.warning("analysis failed: %s", message)
        self.banner.show_message(message, "error")
        for task in (self._preview_task, self._classify_task):
            if task is not None and task.running:
                task.cancel()

    def _on_task_finished(self) -> None:
        if self.busy:
            return
        self._set_busy(False)
        outcomes = [t.outcome for t in (self._preview_task, self._classify_task) if t]
        if self._error_shown:
            outcome = "error"
        elif "cancelled" in outcomes:
            outcome = "cancelled"
        elif self.result is not None:
            outcome = "result"
        else:
            outcome = "no-model"
        status = {"error": "Failed", "cancelled": "Cancelled", "result": "Done",
                  "no-model": "Described (no model)"}[outcome]
        if outcome == "result" and self.result.get("runtime"):
            # Which copy of the networks answered: Keras, or an export of the bundle.
            status += f" (runtime {self.result['runtime']})"
        self._set_status(status)
        self.status.setToolTip(self.result.get("networks", "") if outcome == "result" else "")
        if outcome == "cancelled":
            self.banner.show_message("Cancelled.", "info")
        self.done.emit(outcome)

    # ----- display ------------------------------------------------------------------
    def _set_busy(self, busy: bool) -> None:
        self.cancel_button.setEnabled(busy)
        self.progress.setVisible(busy)
        if busy:
            self.progress.setRange(0, 0)

    def _set_status(self, text: str) -> None:
        self.status.setText(text)

    def _clear_facts(self) -> None:
        while self.facts_form.rowCount():
            self.facts_form.removeRow(0)
        self.facts_box.hide()

    def _show_facts(self, info) -> None:
        self._clear_facts()
        for name, value in facts(info):
            self.facts_form.addRow(f"<b>{name}</b>", QLabel(value))
        self.facts_box.show()

    def _clear_result(self) -> None:
        self.label_text.setText("")
        self.confidence_text.setText("")
        self.scope_text.setText("")
        self.verdict_text.setText("")
        self.warnings_text.setText("")
        self.whole_button.hide()
        self.branch_bars.set_bars([])
        self.backbone_bars.set_bars([])

    def _show_preview(self, index: int) -> None:
        preview = self.previews.get(index)
        if preview is None:
            note = (f"Frames and spectrograms are kept for the first {MAX_SEGMENTS} segments."
                    if index >= MAX_SEGMENTS else "Still reading this segment...")
            self.frames.clear(note)
            self.spectrograms.clear(note)
            return
        self.segment_label.setText(f"segment {index + 1}: {preview.start:.1f}-{preview.end:.1f} s")
        self.frames.show_segment(preview)
        self.spectrograms.show_segment(preview)

    def select_segment(self, index: int | None) -> None:
        """Show the answer, frames and spectrogram of segment ``index`` (None: whole file)."""
        if self.result is None:
            return
        self.selected = index
        view = result_view(self.result, index)
        self.label_text.setText(view.label.replace("_", " "))
        self.confidence_text.setText(f"confidence {view.confidence:.0%}")
        self.scope_text.setText(f"for the {view.scope}")
        self.whole_button.setVisible(index is not None)
        self.verdict_text.setText(view.verdict)
        self.warnings_text.setText("\n".join(f"! {w}" for w in view.warnings))
        self.branch_bars.set_bars(view.branches)
        self.backbone_bars.set_bars(view.backbones)
        self.timeline.set_cursor(index)
        self._show_preview(0 if index is None else index)

    def _draw_timeline(self) -> None:
        if self.result is None or len(self.result.get("segments", [])) < 2:
            self.timeline_box.hide()
            return
        line = timeline(self.result, self.timeline_branch.currentText())
        self.timeline.set_timeline(line)
        self.timeline.set_cursor(self.selected)
        self.timeline_box.show()
