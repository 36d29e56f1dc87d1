"""Batch labelling: every media file of a folder into a CSV, live, resumable."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QBrush, QColor, QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app import child
from app._qt.tasks import ProcessTask, Task
from app._qt.widgets import Banner
from app.review import row_reasons
from app.settings import AppSettings
from app.timing import EtaEstimator, format_seconds

log = logging.getLogger(__name__)

COLUMNS = ("file", "label", "confidence", "audio label", "visual label", "needs review",
           "error")


class LabelView(QWidget):
    """Choose a folder, a model and a CSV; rows appear as files are labelled.

    Signals
    -------
    labelling_done(str)
        ``"result"``, ``"error"`` or ``"cancelled"``.
    review_requested(str)
        The user wants to review the CSV (its path).

    Parameters
    ----------
    in_review : callable, optional
        ``in_review(csv)`` tells whether the app has ``csv`` open for review, in which
        case labelling into it waits until that review is closed.
    """

    labelling_done = Signal(str)
    review_requested = Signal(str)

    def __init__(self, settings: AppSettings, parent: QWidget | None = None,
                 in_review: Callable[[str], bool] | None = None):
        super().__init__(parent)
        self.settings = settings
        self.in_review = in_review or (lambda csv: False)
        self.task: Task | None = None
        self.rows: list[Any] = []
        self._eta = EtaEstimator()
        self._build()

    def _build(self) -> None:
        self.folder_edit = QLineEdit(self.settings.folders.get("label", ""))
        self.folder_edit.setPlaceholderText("the folder of videos or sound files to label")
        self.folder_edit.editingFinished.connect(self._suggest_csv)
        folder = QPushButton("Folder...")
        folder.clicked.connect(self._choose_folder)
        self.model_edit = QLineEdit(self.settings.model or "")
        self.model_edit.setPlaceholderText("a model folder (the current model by default)")
        model = QPushButton("Model...")
        model.clicked.connect(self._choose_model)
        self.csv_edit = QLineEdit()
        self.csv_edit.setPlaceholderText("where to write the labels (CSV)")
        self.csv_edit.textChanged.connect(self._csv_changed)
        csv = QPushButton("Save as...")
        csv.clicked.connect(self._choose_csv)
        self.recursive_check = QCheckBox("Include subfolders")
        self.resume_check = QCheckBox("Resume: keep the rows already in the CSV, label the rest")
        self.jobs_spin = QSpinBox()
        self.jobs_spin.setRange(1, 64)
        self.jobs_spin.setToolTip("Processes working together (extra ones decode files while "
                                  "one runs the model)")
        self.confidence_spin = QDoubleSpinBox()
        self.confidence_spin.setRange(0.0, 1.0)
        self.confidence_spin.setSingleStep(0.05)
        self.confidence_spin.setDecimals(2)
        self.confidence_spin.setSpecialValueText("off")
        self.confidence_spin.setValue(self.settings.min_confidence or 0.0)
        self.confidence_spin.setToolTip("Files whose confidence is under this are marked "
                                        "'low confidence' for review (off: only files whose "
                                        "sound and pictures disagree, or unlike the training "
                                        "data, are marked)")
        self.fps_spin = QDoubleSpinBox()
        self.fps_spin.setRange(0.0, 30.0)
        self.fps_spin.setSingleStep(0.5)
        self.fps_spin.setDecimals(1)
        self.fps_spin.setSpecialValueText("the model's")
        self.fps_spin.setToolTip("Video frames a second the visual networks look at (the "
                                 "model's: 2 for TAU models). 1 halves their work, most of "
                                 "a video's, and moves the visual answer, the mean over the "
                                 "frames, a little")
        form = QFormLayout()
        for title, edit, button in (("Folder", self.folder_edit, folder),
                                    ("Model", self.model_edit, model),
                                    ("Labels CSV", self.csv_edit, csv)):
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            row.addWidget(button)
            form.addRow(title, row)
        options = QHBoxLayout()
        options.addWidget(self.recursive_check)
        options.addWidget(self.resume_check)
        options.addWidget(QLabel("processes"))
        options.addWidget(self.jobs_spin)
        options.addStretch(1)
        form.addRow("", options)
        rate = QHBoxLayout()
        rate.addWidget(QLabel("video frames a second"))
        rate.addWidget(self.fps_spin)
        rate.addStretch(1)
        form.addRow("", rate)
        review = QHBoxLayout()
        review.addWidget(QLabel("mark files for review under confidence"))
        review.addWidget(self.confidence_spin)
        review.addStretch(1)
        form.addRow("", review)

        self.start_button = QPushButton("Label the folder")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button = QPushButton("Open the CSV")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(self.open_csv)
        self.review_button = QPushButton("Review the labels")
        self.review_button.setToolTip("Check the answers, the least sure first, and correct "
                                      "them with the keyboard")
        self.review_button.setEnabled(False)
        self.review_button.clicked.connect(
            lambda: self.review_requested.emit(self.csv_edit.text().strip()))
        self.progress = QProgressBar()
        self.status = QLabel("")
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.progress, 1)
        buttons.addWidget(self.status)
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.review_button)

        self.banner = Banner()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(COLUMNS) - 1):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.banner)
        layout.addWidget(self.table, 1)
        self._suggest_csv()

    # ----- choosing -----------------------------------------------------------------
    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder to label",
                                                self.settings.folder("label"))
        if path:
            self.set_folder(path)

    def set_folder(self, path: str) -> None:
        self.folder_edit.setText(path)
        self._suggest_csv(force=True)

    def _choose_model(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Model folder",
                                                self.settings.folder("model"))
        if path:
            self.model_edit.setText(path)

    def _choose_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Labels CSV", self.csv_edit.text() or self.settings.folder("label"),
            "CSV files (*.csv)", options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.csv_edit.setText(path)

    def _suggest_csv(self, force: bool = False) -> None:
        folder = self.folder_edit.text().strip()
        if folder and (force or not self.csv_edit.text().strip()):
            self.csv_edit.setText(str(Path(folder) / "labels.csv"))

    def _csv_changed(self, text: str) -> None:
        exists = bool(text.strip()) and Path(text.strip()).is_file()
        self.open_button.setEnabled(exists)
        self.review_button.setEnabled(exists and not self.running)

    def set_model(self, path: str | None) -> None:
        """The current model changed: label with it from now on (not mid-run)."""
        if not self.running:
            self.model_edit.setText(path or "")

    # ----- running ------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.task is not None and self.task.running

    def start(self) -> None:
        folder = self.folder_edit.text().strip()
        model = self.model_edit.text().strip()
        out_csv = self.csv_edit.text().strip()
        resume = self.resume_check.isChecked()
        self.banner.clear_message()
        if not folder or not model or not out_csv:
            self.banner.show_message("Choose a folder, a model and where to write the CSV.")
            return
        if Path(out_csv).exists() and not resume:
            self.banner.show_message(f"{out_csv}: already exists. Tick Resume to continue it, "
                                     "or choose another file name.")
            return
        if self.in_review(out_csv):
            self.banner.show_message(f"{out_csv}: is open for review. Close it in the "
                                     "Review labels tab first, or choose another file name.")
            return
        self.settings.remember_folder("label", folder)
        min_confidence = self.confidence_spin.value() or None
        self.settings.min_confidence = min_confidence
        self.settings.save()
        self.table.setRowCount(0)
        self.rows = []
        if resume:
            self._show_earlier_rows(out_csv)
        self._eta = EtaEstimator()
        self.progress.setRange(0, 0)
        self.status.setText("Starting (loading TensorFlow)...")
        task = ProcessTask(
            child.label,
            (folder, model, out_csv, self.recursive_check.isChecked(), resume,
             self.jobs_spin.value(), min_confidence, self.fps_spin.value() or None),
            "labelling", parent=self)
        task.progress.connect(self._on_progress)
        task.item.connect(self.add_row)
        task.result.connect(self._on_result)
        task.failed.connect(lambda message: self.banner.show_message(message))
        task.cancelled.connect(lambda: self.banner.show_message(
            "Cancelled. The rows written so far are in the CSV: tick Resume and start again "
            "to label the rest.", "info"))
        task.finished.connect(self._on_finished)
        self.task = task.start()
        self._set_running(True)

    def cancel(self) -> None:
        if self.running:
            self.task.cancel()
            self.cancel_button.setEnabled(False)
            self.status.setText("Stopping after the current file...")

    def open_csv(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(self.csv_edit.text().strip()))

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self._csv_changed(self.csv_edit.text())
        for widget in (self.folder_edit, self.model_edit, self.csv_edit,
                       self.recursive_check, self.resume_check, self.jobs_spin,
                       self.confidence_spin, self.fps_spin):
            widget.setEnabled(not running)

    def _show_earlier_rows(self, out_csv: str) -> None:
        from avsc_core.errors import AvscError
        from avsc_core.label import read_rows

        try:
            for row in read_rows(out_csv):
                self.add_row(row)
        except (AvscError, OSError) as exc:
            self.banner.show_message(str(exc))

    def add_row(self, row) -> None:
        """Append one labelled file (a :class:`avsc_core.label.LabelRow`)."""
        self.rows.append(row)
        index = self.table.rowCount()
        self.table.insertRow(index)
        confidence = "" if row.confidence is None else f"{row.confidence:.0%}"
        cells = (row.file, row.label.replace("_", " "), confidence,
                 row.audio_label.replace("_", " "), row.visual_label.replace("_", " "),
                 ", ".join(row_reasons(row)), row.error)
        for col, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if row.error:
                item.setForeground(QBrush(QColor(160, 30, 30)))
            if col == 2:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(index, col, item)
        self.table.scrollToBottom()

    def _on_progress(self, event) -> None:
        if not event.total:
            return
        self.progress.setRange(0, event.total)
        self.progress.setValue(event.done)
        eta = self._eta.eta(event.done, event.total)
        left = f", about {format_seconds(eta)} left" if eta is not None else ""
        self.status.setText(f"{event.done}/{event.total} files{left}")

    def _on_result(self, summary: dict[str, Any]) -> None:
        self.status.setText(
            f"Done: {summary['labelled']} labelled, {summary['failed']} failed"
            + (f", {summary['already_done']} from before" if summary["already_done"] else "")
            + f" in {format_seconds(summary['seconds'])}")
        self.banner.show_message(f"Labels written to {summary['out_csv']}", "info")

    def _on_finished(self) -> None:
        self._set_running(False)
        if self.task.outcome != "result":
            self.progress.setRange(0, max(1, self.progress.maximum()))
            if self.task.outcome == "error":
                self.status.setText("Failed")
            else:
                self.status.setText("Cancelled")
        self._csv_changed(self.csv_edit.text())
        self.labelling_done.emit(self.task.outcome or "error")
