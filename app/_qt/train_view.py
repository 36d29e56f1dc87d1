"""The training wizard: dataset, check, settings, live training, results."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app import child
from app._qt.plots import CurvesPlot
from app._qt.tasks import ProcessTask, Task, ThreadTask
from app._qt.train_results import ResultsPage
from app._qt.widgets import Banner
from app.paths import models_dir
from app.settings import AppSettings
from app.timing import format_seconds
from app.training import TrainingReport, TrainJob, interrupted_run, stage_title
from avsc_core.train import ALL_BACKBONES, FUSIONS, STRATEGIES, TrainConfig
from avsc_core.train.settings import JOINT_BATCH

log = logging.getLogger(__name__)

STEPS = ("Dataset", "Check", "Settings", "Train", "Results")
DATASET, CHECK, SETTINGS, TRAIN, RESULTS = range(5)
LAYOUTS = ("auto", "folders", "csv", "tau2021")
REFRESH_MS = 300


def _check_job(path: str, layout: str, *, send, cancel):
    from avsc_core.datasets import check_dataset, load_dataset

    dataset = load_dataset(path, layout)
    return check_dataset(dataset, progress=lambda event: send("progress", event), cancel=cancel)


def _mono(widget: QWidget) -> None:
    font = QFont("monospace")
    font.setStyleHint(QFont.StyleHint.TypeWriter)
    widget.setFont(font)


class TrainView(QWidget):
    """A five-step wizard; training runs in its own process (see :mod:`app.jobs`).

    Signals
    -------
    model_trained(str)
        A bundle was written: make it the current model.
    classify_requested()
        The user wants to try the new model.
    training_done(str)
        ``"result"``, ``"error"`` or ``"cancelled"``, when a training run ends.
    """

    model_trained = Signal(str)
    classify_requested = Signal()
    training_done = Signal(str)

    def __init__(self, settings: AppSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = settings
        self.report_: Any = None  # the dataset check's DatasetReport
        self.job: TrainJob | None = None
        self.task: Task | None = None
        self.training = TrainingReport()
        self.evaluation: dict[str, Any] | None = None
        self.model_path: str | None = None
        self._check_task: Task | None = None
        # Progress arrives faster than anyone reads it (Phase II epochs take a fraction
        # of a second): the page is redrawn at most every REFRESH_MS.
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setInterval(REFRESH_MS)
        self._refresh_timer.timeout.connect(self._refresh_if_changed)
        self._changed = self._curves_changed = False
        self._suggested_out = ""
        self._build()
        self.go(DATASET)

    # ----- layout -------------------------------------------------------------------
    def _build(self) -> None:
        self.steps = QLabel()
        self.banner = Banner()
        self.pages = QStackedWidget()
        for build in (self._dataset_page, self._check_page, self._settings_page,
                      self._train_page, self._results_page):
            self.pages.addWidget(build())
        self.back_button = QPushButton("< Back")
        self.back_button.clicked.connect(self._back)
        self.next_button = QPushButton("Next >")
        self.next_button.setDefault(True)
        self.next_button.clicked.connect(self._next)
        nav = QHBoxLayout()
        nav.addStretch(1)
        nav.addWidget(self.back_button)
        nav.addWidget(self.next_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.steps)
        layout.addWidget(self.banner)
        layout.addWidget(self.pages, 1)
        layout.addLayout(nav)

    def _dataset_page(self) -> QWidget:
        page = QWidget()
        self.data_edit = QLineEdit(self.settings.folders.get("dataset", ""))
        self.data_edit.setPlaceholderText("a dataset folder, a CSV file or a TAU 2021 folder")
        folder = QPushButton("Folder...")
        folder.clicked.connect(self._choose_data_folder)
        csv = QPushButton("CSV file...")
        csv.clicked.connect(self._choose_data_csv)
        self.layout_combo = QComboBox()
        self.layout_combo.addItems(LAYOUTS)
        row = QHBoxLayout()
        row.addWidget(self.data_edit, 1)
        row.addWidget(folder)
        row.addWidget(csv)
        form = QFormLayout()
        form.addRow("Dataset", row)
        form.addRow("Layout", self.layout_combo)
        help_text = QLabel(
            "<p>Supported layouts:</p><ul>"
            "<li><b>folders</b>: one folder per class, <code>ROOT/&lt;class&gt;/&lt;files&gt;"
            "</code>;</li>"
            "<li><b>csv</b>: a CSV with header <code>path,label[,split]</code>, paths relative "
            "to the CSV;</li>"
            "<li><b>tau2021</b>: the TAU Urban Audio-Visual Scenes 2021 development folder "
            "(<code>meta.csv</code>, <code>audio/</code>, <code>video/</code>, "
            "<code>evaluation_setup/</code>).</li></ul>"
            "<p><b>auto</b> detects which. Without a split column or fold files, 15% of each "
            "class is kept for validation and 15% for the final test.</p>")
        help_text.setWordWrap(True)
        layout = QVBoxLayout(page)
        layout.addLayout(form)
        layout.addWidget(help_text)
        layout.addStretch(1)
        return page

    def _check_page(self) -> QWidget:
        page = QWidget()
        self.check_title = QLabel("")
        self.check_title.setWordWrap(True)
        self.check_progress = QProgressBar()
        self.counts_table = QTableWidget()
        self.counts_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.problems = QPlainTextEdit()
        self.problems.setReadOnly(True)
        _mono(self.problems)
        layout = QVBoxLayout(page)
        layout.addWidget(self.check_title)
        layout.addWidget(self.check_progress)
        grid = QHBoxLayout()
        grid.addWidget(self.counts_table, 1)
        grid.addWidget(self.problems, 1)
        layout.addLayout(grid, 1)
        return page

    def _settings_page(self) -> QWidget:
        page = QWidget()
        self.preset_combo = QComboBox()
        self.preset_combo.addItems(["tiny", "paper"])
        self.preset_combo.setToolTip("paper: the published network sizes (needs a GPU); "
                                     "tiny: small networks that train in minutes on a CPU")
        self.preset_combo.currentTextChanged.connect(self._preset_defaults)
        self.strategy_combo = QComboBox()
        self.strategy_combo.addItems(list(STRATEGIES))
        self.fusion_combo = QComboBox()
        self.fusion_combo.addItems(list(FUSIONS))
        self.fusion_combo.setCurrentText("f4")
        self.backbone_checks: dict[str, QCheckBox] = {}
        backbones = QHBoxLayout()
        for name in ALL_BACKBONES:
            check = QCheckBox(name)
            check.setChecked(True)
            self.backbone_checks[name] = check
            backbones.addWidget(check)
        backbones.addStretch(1)
        self.phase1_spin = QSpinBox()
        self.phase1_spin.setRange(0, 1000)
        self.phase2_spin = QSpinBox()
        self.phase2_spin.setRange(0, 1000)
        self.joint_spin = QSpinBox()
        self.joint_spin.setRange(0, 1000)
        self.strategy_combo.setToolTip("two-phase: five backbones one by one, then a fusion "
                                       "layer (Pham et al.); joint: an acoustic encoder and "
                                       "image layers trained with the classifier (Chen et al.)")
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 4096)
        self.weights_combo = QComboBox()
        self.weights_combo.addItems(["imagenet", "none"])
        self.weights_combo.setEditable(True)
        self.weights_combo.setToolTip("ImageNet weights, none (from scratch), or a weights "
                                      "file; the tiny preset always starts from scratch")
        weights_file = QPushButton("File...")
        weights_file.clicked.connect(self._choose_weights)
        weights = QHBoxLayout()
        weights.addWidget(self.weights_combo, 1)
        weights.addWidget(weights_file)
        self.out_edit = QLineEdit()
        self.out_edit.textChanged.connect(self._out_changed)
        out_button = QPushButton("Folder...")
        out_button.clicked.connect(self._choose_out)
        out = QHBoxLayout()
        out.addWidget(self.out_edit, 1)
        out.addWidget(out_button)
        self.resume_check = QCheckBox("Resume the interrupted training run in this folder")
        self.resume_check.setEnabled(False)
        form = QFormLayout(page)
        form.addRow("Preset", self.preset_combo)
        form.addRow("Strategy", self.strategy_combo)
        form.addRow("Fusion", self.fusion_combo)
        form.addRow("Backbones", backbones)
        form.addRow("Phase I epochs (per backbone)", self.phase1_spin)
        form.addRow("Phase II epochs (per head)", self.phase2_spin)
        form.addRow("Epochs (joint optimisation)", self.joint_spin)
        form.addRow("Batch size", self.batch_spin)
        form.addRow("Visual weights", weights)
        form.addRow("Save the model in", out)
        form.addRow("", self.resume_check)
        self.strategy_combo.currentTextChanged.connect(self._strategy_changed)
        self._preset_defaults("tiny")
        self._restore_settings(self.settings.training)
        return page

    def _restore_settings(self, saved: dict[str, Any]) -> None:
        """Fill the form with the settings of the last training started here."""
        if not saved:
            return
        try:
            config = TrainConfig.from_dict(saved)
        except (TypeError, ValueError):
            return  # written by another version: keep the defaults
        self.preset_combo.setCurrentText(config.preset)
        self.strategy_combo.setCurrentText(config.strategy)
        self.fusion_combo.setCurrentText(config.fusion)
        for name, check in self.backbone_checks.items():
            check.setChecked(name in config.backbones)
        self.phase1_spin.setValue(config.phase1_epochs)
        self.phase2_spin.setValue(config.phase2_epochs)
        self.joint_spin.setValue(config.joint_epochs)
        self.batch_spin.setValue(config.batch_size)
        self.weights_combo.setCurrentText(config.visual_weights)

    def _train_page(self) -> QWidget:
        page = QWidget()
        self.train_title = QLabel("")
        title_font = QFont()
        title_font.setPointSize(12)
        title_font.setBold(True)
        self.train_title.setFont(title_font)
        self.train_status = QLabel("")
        self.train_progress = QProgressBar()
        self.train_progress.setRange(0, 1000)
        self.train_progress.setTextVisible(False)
        self.eta_label = QLabel("")
        self.loss_plot = CurvesPlot("loss", "Loss (solid: training, dashed: validation)")
        self.accuracy_plot = CurvesPlot("accuracy", "Accuracy")
        self.notes = QPlainTextEdit()
        self.notes.setReadOnly(True)
        self.notes.setMaximumHeight(70)
        self.notes.hide()
        self.cancel_button = QPushButton("Cancel training")
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue from the last finished epoch")
        self.resume_button.clicked.connect(self.resume)
        self.resume_button.hide()
        row = QHBoxLayout()
        row.addWidget(self.train_progress, 1)
        row.addWidget(self.eta_label)
        row.addWidget(self.cancel_button)
        row.addWidget(self.resume_button)
        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.accuracy_plot)
        layout = QVBoxLayout(page)
        layout.addWidget(self.train_title)
        layout.addWidget(self.train_status)
        layout.addLayout(row)
        layout.addLayout(plots, 1)
        layout.addWidget(self.notes)
        return page

    def _results_page(self) -> QWidget:
        self.results = ResultsPage()
        self.results.classify_requested.connect(self.classify_requested)
        self.results.again_requested.connect(lambda: self.go(DATASET))
        return self.results

    # ----- navigation ---------------------------------------------------------------
    @property
    def page(self) -> int:
        return self.pages.currentIndex()

    @property
    def running(self) -> bool:
        return self.task is not None and self.task.running

    def go(self, page: int) -> None:
        self.pages.setCurrentIndex(page)
        self.steps.setText("  >  ".join(
            f"<b>{i + 1} {name}</b>" if i == page else f"<span style='color:gray'>{i + 1} "
            f"{name}</span>" for i, name in enumerate(STEPS)))
        if page != TRAIN:
            self.banner.clear_message()
        if page == CHECK:
            self._start_check()
        if page == SETTINGS:
            self._suggest_out()
        self._update_nav()

    def _update_nav(self) -> None:
        page = self.page
        self.back_button.setVisible(page in (CHECK, SETTINGS, TRAIN))
        # Back during the dataset check cancels it (a large dataset takes a while).
        self.back_button.setEnabled(not self.running)
        self.next_button.setVisible(page in (DATASET, CHECK, SETTINGS))
        self.next_button.setText("Start training" if page == SETTINGS else "Next >")
        if page == CHECK:
            self.next_button.setEnabled(self._dataset_usable())
        else:
            self.next_button.setEnabled(True)

    def _back(self) -> None:
        self._cancel_check()
        if self.page == TRAIN:
            self.go(SETTINGS)
        elif self.page > DATASET:
            self.go(self.page - 1)

    def _next(self) -> None:
        if self.page == DATASET:
            if not self.data_edit.text().strip():
                self.banner.show_message("Choose a dataset folder or CSV file first.")
                return
            self.settings.folders["dataset"] = self.data_edit.text().strip()
            self.settings.save()
            self.go(CHECK)
        elif self.page == CHECK:
            self.go(SETTINGS)
        elif self.page == SETTINGS:
            self.start_from_settings()

    # ----- dataset and check --------------------------------------------------------
    def _choose_data_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Dataset folder",
                                                self.settings.folder("dataset"))
        if path:
            self.data_edit.setText(path)

    def _choose_data_csv(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Dataset CSV", self.settings.folder(
            "dataset"), "CSV files (*.csv);;All files (*)")
        if path:
            self.data_edit.setText(path)

    def _cancel_check(self) -> None:
        if self._check_task is not None and self._check_task.running:
            self._check_task.cancel()

    def _start_check(self) -> None:
        self._cancel_check()  # an earlier check of another choice
        self.report_ = None
        self.check_title.setText(f"Checking {self.data_edit.text().strip()} ...")
        self.check_progress.setRange(0, 0)
        self.check_progress.show()
        self.counts_table.clear()
        self.counts_table.setRowCount(0)
        self.problems.setPlainText("")
        task = ThreadTask(_check_job, self.data_edit.text().strip(),
                          self.layout_combo.currentText(), parent=self)
        # Only the latest check speaks: the user may have gone back and chosen another.
        task.progress.connect(lambda event: self._check_progress(event)
                              if task is self._check_task else None)
        task.result.connect(lambda report: self._show_check(report)
                            if task is self._check_task else None)
        task.failed.connect(lambda message: self._check_failed(message)
                            if task is self._check_task else None)
        task.finished.connect(self.check_progress.hide)
        task.finished.connect(self._update_nav)
        self._check_task = task.start()
        self._update_nav()

    def _check_failed(self, message: str) -> None:
        self.banner.show_message(message)
        self.check_title.setText("The dataset cannot be used.")

    def _check_progress(self, event) -> None:
        if event.total:
            self.check_progress.setRange(0, event.total)
            self.check_progress.setValue(event.done)

    def _dataset_usable(self) -> bool:
        report = self.report_
        if report is None:
            return False
        return len(report.dataset.classes) >= 2 and sum(report.counts["train"].values()) > 0

    def _show_check(self, report) -> None:
        self.report_ = report
        dataset = report.dataset
        self.check_title.setText(
            f"<b>{dataset.root}</b> ({dataset.layout} layout): {len(dataset.clips)} clips, "
            f"{len(dataset.classes)} classes, {report.total_seconds / 60:.1f} min of media")
        splits = ("train", "val", "test")
        table = self.counts_table
        table.setColumnCount(len(splits) + 1)
        table.setHorizontalHeaderLabels([*splits, "total"])
        table.setRowCount(len(dataset.classes))
        table.setVerticalHeaderLabels(dataset.classes)
        for row, name in enumerate(dataset.classes):
            counts = [report.counts[s][name] for s in splits]
            for col, value in enumerate([*counts, sum(counts)]):
                item = QTableWidgetItem(str(value))
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                table.setItem(row, col, item)
        table.resizeColumnsToContents()
        lines = []
        sections = [
            ("Unreadable files (not used)", [f"{dataset.relative(p)}: {why}"
                                             for p, why in report.unreadable]),
            ("Without a sound track (visual branch only)",
             [dataset.relative(p) for p in report.no_audio]),
            ("Without video (audio branch only)", [dataset.relative(p) for p in report.no_video]),
            ("Warnings", list(dataset.warnings)),
        ]
        for title, items in sections:
            if items:
                lines += [f"{title}: {len(items)}", *[f"  {i}" for i in items], ""]
        if not self._dataset_usable():
            lines.insert(0, "Training needs at least two classes with training clips.\n")
        self.problems.setPlainText("\n".join(lines) or "No problems found.")
        self._update_nav()

    # ----- settings -----------------------------------------------------------------
    def _preset_defaults(self, preset: str) -> None:
        config = TrainConfig.for_preset(preset)
        self.phase1_spin.setValue(config.phase1_epochs)
        self.phase2_spin.setValue(config.phase2_epochs)
        self.joint_spin.setValue(config.joint_epochs)
        self._strategy_changed(self.strategy_combo.currentText())
        self.batch_spin.setValue(config.batch_size)
        self.weights_combo.setCurrentText(config.visual_weights)

    def _strategy_changed(self, strategy: str) -> None:
        """Enable the settings the chosen strategy uses, grey out the others."""
        joint = strategy == "joint"
        for widget in (self.fusion_combo, self.phase1_spin, self.phase2_spin,
                       *self.backbone_checks.values()):
            widget.setEnabled(not joint)
        self.joint_spin.setEnabled(joint)
        if joint and self.batch_spin.value() > JOINT_BATCH:
            self.batch_spin.setValue(JOINT_BATCH)  # each item brings all its frames

    def _choose_weights(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Visual weights", self.settings.folder(
            "weights"), "Weights (*.h5 *.keras *.weights.h5);;All files (*)")
        if path:
            self.weights_combo.setCurrentText(path)

    def _choose_out(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Save the model in",
                                                str(Path(self.out_edit.text()).parent))
        if path:
            self.out_edit.setText(path)

    def _suggest_out(self) -> None:
        """A new folder under the models dir, unless the user chose one (or one to resume)."""
        current = self.out_edit.text().strip()
        if current and (current != self._suggested_out or interrupted_run(current)):
            return
        name = Path(self.data_edit.text().strip() or "model").stem or "model"
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self._suggested_out = str(models_dir() / f"{name}-{stamp}")
        self.out_edit.setText(self._suggested_out)

    def _out_changed(self, text: str) -> None:
        resumable = bool(text.strip()) and interrupted_run(text.strip())
        self.resume_check.setEnabled(resumable)
        self.resume_check.setChecked(resumable)

    def config_from_settings(self) -> TrainConfig:
        backbones = tuple(n for n, c in self.backbone_checks.items() if c.isChecked())
        weights = self.weights_combo.currentText().strip() or "none"
        return TrainConfig.for_preset(
            self.preset_combo.currentText(),
            strategy=self.strategy_combo.currentText(),
            fusion=self.fusion_combo.currentText(),
            backbones=backbones,
            phase1_epochs=self.phase1_spin.value(),
            phase2_epochs=self.phase2_spin.value(),
            joint_epochs=self.joint_spin.value(),
            batch_size=self.batch_spin.value(),
            visual_weights=weights,
        )

    def start_from_settings(self) -> None:
        try:
            config = self.config_from_settings()
        except ValueError as exc:
            self.banner.show_message(f"Settings: {exc}")
            return
        out = self.out_edit.text().strip()
        if not out:
            self.banner.show_message("Choose where to save the model.")
            return
        self.settings.training = config.to_dict()
        self.settings.save()
        self.start(TrainJob(self.data_edit.text().strip(), out, config,
                            layout=self.layout_combo.currentText(),
                            resume=self.resume_check.isChecked()))

    # ----- training -----------------------------------------------------------------
    def start(self, job: TrainJob, title: str = "Training") -> None:
        """Run ``job`` in a training process and show its progress."""
        if self.running:
            self.banner.show_message("A training run is already going; cancel it first.")
            return
        self.job = job
        self.training = TrainingReport()
        if job.resume:
            self.training.load_history(job.out)
        self.train_title.setText(f"{title}: {Path(job.out).name}")
        self.notes.clear()
        self.notes.hide()
        self.resume_button.hide()
        self.cancel_button.setEnabled(True)
        self.go(TRAIN)
        self.banner.clear_message()
        self._refresh_training()
        task = ProcessTask(child.train, (job,), "training", parent=self)
        task.progress.connect(self._on_progress)
        task.result.connect(self._on_trained)
        task.failed.connect(self._on_failed)
        task.cancelled.connect(self._on_cancelled)
        task.finished.connect(self._on_finished)
        self.task = task.start()
        self._refresh_timer.start()
        log.info("training %s -> %s (resume %s)", job.data, job.out, job.resume)
        self._update_nav()

    def cancel(self) -> None:
        if self.running:
            self.task.cancel()
            self.cancel_button.setEnabled(False)
            self.train_status.setText("Stopping after the current batch...")

    def resume(self) -> None:
        if self.job is None:
            return
        job = self.job
        self.start(TrainJob(job.data, job.out, job.config, job.layout, resume=True,
                            sample=job.sample))

    def _on_progress(self, event) -> None:
        self.training.update(event)
        self._changed = True
        self._curves_changed |= event.info.get("event") == "epoch"

    def _refresh_if_changed(self) -> None:
        if self._changed:
            self._refresh_training(curves=self._curves_changed)
            self._changed = self._curves_changed = False

    def _refresh_training(self, curves: bool = True) -> None:
        report = self.training
        self.train_status.setText(report.status)
        self.train_progress.setValue(int(report.fraction * 1000))
        self.eta_label.setText(f"this step: {format_seconds(report.eta)} left"
                               if report.eta is not None else "")
        if report.notes:
            self.notes.setPlainText("\n".join(report.notes))
            self.notes.show()
        if curves:
            self.loss_plot.set_curves(report.curves)
            self.accuracy_plot.set_curves(report.curves)

    def _on_trained(self, payload: dict[str, Any]) -> None:
        self._stop_refreshing()
        self.model_path = payload["model"]
        self.evaluation = payload["evaluation"]
        self.model_trained.emit(self.model_path)
        self.results.show_evaluation(self.model_path, self.evaluation)
        self.go(RESULTS)

    def _on_failed(self, message: str) -> None:
        self._stop_refreshing()
        self.banner.show_message(f"Training stopped: {message}")
        self.train_status.setText(f"Failed during: {stage_title(self.training.stage or '')}"
                                  if self.training.stage else "Failed")

    def _on_cancelled(self) -> None:
        self._stop_refreshing()
        self.banner.show_message("Training cancelled. The finished epochs are saved: "
                                 "Resume continues from the last one.", "info")
        self.train_status.setText("Cancelled")

    def _stop_refreshing(self) -> None:
        """Show the last progress now; the outcome's message comes after it."""
        self._refresh_timer.stop()
        self._refresh_if_changed()

    def _on_finished(self) -> None:
        self._stop_refreshing()
        outcome = self.task.outcome if self.task else "error"
        self.cancel_button.setEnabled(False)
        self.resume_button.setVisible(
            outcome != "result" and self.job is not None and interrupted_run(self.job.out))
        self._update_nav()
        self.training_done.emit(outcome or "error")
