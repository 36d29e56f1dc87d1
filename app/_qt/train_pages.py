"""The training wizard's first four pages; each owns its widgets and says what is wrong.

:class:`DatasetPage` (what to train on), :class:`CheckPage` (the dataset check, in a
thread), :class:`SettingsPage` (how to train, where to save: a
:class:`~app.train_form.TrainForm`, with its :class:`AdvancedSettings`) and :class:`TrainPage` (the training process and its
live curves). The last page is :class:`~app._qt.train_results.ResultsPage`;
:class:`~app._qt.train_view.TrainView` leads from one to the next.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app import child
from app._qt.plots import CurvesPlot
from app._qt.tasks import ProcessTask, Task, ThreadTask
from app.paths import models_dir
from app.settings import AppSettings
from app.timing import format_seconds
from app.train_form import (
    IMAGE_MODEL_CHOICES,
    JOINT_FEATURE_CHOICES,
    LAYOUT_CHOICES,
    PRECISION_CHOICES,
    PRESET_CHOICES,
    SCHEDULE_CHOICES,
    SPLIT_NOTE,
    WEIGHT_CHOICES,
    TrainForm,
    form_to_config,
    saved_form,
    split_problem,
    with_preset,
    with_strategy,
)
from app.training import TrainingReport, TrainJob, interrupted_run, stage_title
from avsc_core.train import ALL_BACKBONES, FUSIONS, STRATEGIES
from avsc_core.train.state import DEFAULT_FRACTION

log = logging.getLogger(__name__)

REFRESH_MS = 300
SPLITS = ("train", "val", "test")
MAX_EPOCHS = 1000
MAX_BATCH = 4096
MAX_JOBS = 256
MAX_STAGES = 11  # InceptionV3's; ConvNeXtTiny has 4
MAX_SEED = 2**31 - 1
MAX_MIXUP = 10.0
MAX_WARMUP = 0.95
MAX_BRANCH_WEIGHT = 10.0


def _mono(widget: QWidget) -> None:
    font = QFont("monospace")
    font.setStyleHint(QFont.StyleHint.TypeWriter)
    widget.setFont(font)


def _spin(maximum: int, minimum: int = 0) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(minimum, maximum)
    return spin


def _row(*widgets: QWidget) -> QHBoxLayout:
    """The widgets side by side, the first one stretched."""
    row = QHBoxLayout()
    for index, widget in enumerate(widgets):
        row.addWidget(widget, 1 if index == 0 else 0)
    return row


class DatasetPage(QWidget):
    """Step 1: the dataset (a folder, a CSV file or a TAU 2021 folder) and its layout."""

    def __init__(self, settings: AppSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = settings
        self.data_edit = QLineEdit(settings.folders.get("dataset", ""))
        self.data_edit.setPlaceholderText("a dataset folder, a CSV file or a TAU 2021 folder")
        folder = QPushButton("Folder...")
        folder.clicked.connect(self._choose_folder)
        csv = QPushButton("CSV file...")
        csv.clicked.connect(self._choose_csv)
        self.layout_combo = QComboBox()
        self.layout_combo.addItems(LAYOUT_CHOICES)
        self.val_spin = _share("Share of each class's clips kept to choose the best epoch "
                               "and calibrate the answers (avsc train --val-fraction)")
        self.test_spin = _share("Share of each class's clips kept for the final test, "
                                "never trained on (avsc train --test-fraction)")
        form = QFormLayout()
        form.addRow("Dataset", _row(self.data_edit, folder, csv))
        form.addRow("Layout", self.layout_combo)
        form.addRow("Validation share", self.val_spin)
        form.addRow("Test share", self.test_spin)
        help_text = QLabel(
            "<p>Supported layouts:</p><ul>"
            "<li><b>folders</b>: one folder per class, <code>ROOT/&lt;class&gt;/&lt;files&gt;"
            "</code>;</li>"
            "<li><b>csv</b>: a CSV with header <code>path,label[,split]</code>, paths relative "
            "to the CSV;</li>"
            "<li><b>tau2021</b>: the TAU Urban Audio-Visual Scenes 2021 development folder "
            "(<code>meta.csv</code>, <code>audio/</code>, <code>video/</code>, "
            "<code>evaluation_setup/</code>).</li></ul>"
            f"<p><b>auto</b> detects which. {SPLIT_NOTE}</p>")
        help_text.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(help_text)
        layout.addStretch(1)

    @property
    def data(self) -> str:
        return self.data_edit.text().strip()

    @property
    def dataset_layout(self) -> str:
        """The chosen layout (``QWidget.layout`` is the page's Qt layout)."""
        return self.layout_combo.currentText()

    @property
    def split(self) -> dict[str, float]:
        """The split shares, by the names of :class:`~app.train_form.TrainForm`'s fields."""
        return {"val_fraction": self.val_spin.value(), "test_fraction": self.test_spin.value()}

    def problem(self) -> str | None:
        """Why the wizard cannot go on from this page, or ``None``."""
        if not self.data:
            return "Choose a dataset folder or CSV file first."
        problem = split_problem(**self.split)
        return f"Split: {problem}." if problem else None

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Dataset folder",
                                                self.settings.folder("dataset"))
        if path:
            self.data_edit.setText(path)

    def _choose_csv(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Dataset CSV", self.settings.folder(
            "dataset"), "CSV files (*.csv);;All files (*)")
        if path:
            self.data_edit.setText(path)


def _share(tip: str) -> QDoubleSpinBox:
    """A split share box, 0 to 0.95 in steps of 0.05, at the core's default."""
    spin = QDoubleSpinBox()
    spin.setDecimals(2)
    spin.setRange(0.0, 0.95)
    spin.setSingleStep(0.05)
    spin.setValue(DEFAULT_FRACTION)
    spin.setToolTip(tip)
    return spin


def _check_job(path: str, layout: str, val_fraction: float, test_fraction: float, seed: int,
               *, send, cancel):
    from avsc_core.datasets import check_dataset, load_dataset

    dataset = load_dataset(path, layout, val_fraction, test_fraction, seed)
    return check_dataset(dataset, progress=lambda event: send("progress", event), cancel=cancel)


class CheckPage(QWidget):
    """Step 2: the dataset check, in a thread: clips per class and split, problem files.

    Signals
    -------
    failed(str)
        The dataset cannot be read: why, in one line.
    finished()
        The check ended (done, failed or cancelled).
    """

    failed = Signal(str)
    finished = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.report: Any = None  # the DatasetReport of the last check that succeeded
        self.task: Task | None = None
        self.title = QLabel("")
        self.title.setWordWrap(True)
        self.progress = QProgressBar()
        self.counts_table = QTableWidget()
        self.counts_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.problems = QPlainTextEdit()
        self.problems.setReadOnly(True)
        _mono(self.problems)
        grid = QHBoxLayout()
        grid.addWidget(self.counts_table, 1)
        grid.addWidget(self.problems, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.progress)
        layout.addLayout(grid, 1)

    @property
    def running(self) -> bool:
        return self.task is not None and self.task.running

    @property
    def usable(self) -> bool:
        """Whether the checked dataset can train a model: two classes with training clips."""
        report = self.report
        if report is None:
            return False
        return len(report.dataset.classes) >= 2 and sum(report.counts["train"].values()) > 0

    def start(self, data: str, layout: str, val_fraction: float = DEFAULT_FRACTION,
              test_fraction: float = DEFAULT_FRACTION, seed: int = 0) -> None:
        """Check the dataset at ``data``, split as training will split it (these shares,
        this seed), stopping a check still running."""
        self.cancel()
        self.report = None
        self.title.setText(f"Checking {data} ...")
        self.progress.setRange(0, 0)
        self.progress.show()
        self.counts_table.clear()
        self.counts_table.setRowCount(0)
        self.problems.setPlainText("")
        task = ThreadTask(_check_job, data, layout, val_fraction, test_fraction, seed,
                          parent=self)
        # Only the latest check speaks: the user may have gone back and chosen another.
        task.progress.connect(lambda event: self._show_progress(event)
                              if task is self.task else None)
        task.result.connect(lambda report: self._show(report) if task is self.task else None)
        task.failed.connect(lambda message: self._fail(message) if task is self.task else None)
        task.finished.connect(lambda: self._end() if task is self.task else None)
        self.task = task.start()

    def cancel(self) -> None:
        if self.running:
            self.task.cancel()

    def _show_progress(self, event) -> None:
        if event.total:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.done)

    def _fail(self, message: str) -> None:
        self.title.setText("The dataset cannot be used.")
        self.failed.emit(message)

    def _end(self) -> None:
        self.progress.hide()
        self.finished.emit()

    def _show(self, report) -> None:
        self.report = report
        dataset = report.dataset
        self.title.setText(
            f"<b>{dataset.root}</b> ({dataset.layout} layout): {len(dataset.clips)} clips, "
            f"{len(dataset.classes)} classes, {report.total_seconds / 60:.1f} min of media")
        table = self.counts_table
        table.setColumnCount(len(SPLITS) + 1)
        table.setHorizontalHeaderLabels([*SPLITS, "total"])
        table.setRowCount(len(dataset.classes))
        table.setVerticalHeaderLabels(dataset.classes)
        for row, name in enumerate(dataset.classes):
            counts = [report.counts[s][name] for s in SPLITS]
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
        if not self.usable:
            lines.insert(0, "Training needs at least two classes with training clips.\n")
        self.problems.setPlainText("\n".join(lines) or "No problems found.")


def _line(placeholder: str, tip: str) -> QLineEdit:
    edit = QLineEdit()
    edit.setPlaceholderText(placeholder)
    edit.setToolTip(tip)
    return edit


def _value(widget: QWidget) -> Any:
    """The value a settings widget shows, as the form holds it."""
    if isinstance(widget, QCheckBox):
        return widget.isChecked()
    if isinstance(widget, QComboBox):
        return widget.currentText()
    if isinstance(widget, QLineEdit):
        return widget.text()
    return widget.value()  # a spin box


def _show_value(widget: QWidget, value: Any) -> None:
    if isinstance(widget, QCheckBox):
        widget.setChecked(bool(value))
    elif isinstance(widget, QComboBox):
        widget.setCurrentText(str(value))
    elif isinstance(widget, QLineEdit):
        widget.setText(str(value))
    else:
        widget.setValue(value)


def _combo(choices: tuple[str, ...], tip: str = "") -> QComboBox:
    combo = QComboBox()
    combo.addItems(choices)
    combo.setToolTip(tip)
    return combo


def _rate(tip: str) -> QDoubleSpinBox:
    """A learning-rate box: Adam rates from 1e-6 to 1."""
    spin = QDoubleSpinBox()
    spin.setDecimals(6)
    spin.setRange(1e-6, 1.0)
    spin.setSingleStep(1e-4)
    spin.setToolTip(tip)
    return spin


def _fraction(maximum: float, zero: str, tip: str) -> QDoubleSpinBox:
    """A box for a setting from 0 to ``maximum``; 0 reads ``zero`` unless it is blank."""
    spin = QDoubleSpinBox()
    spin.setDecimals(3)
    spin.setRange(0.0, maximum)
    spin.setSingleStep(0.01 if maximum < 1 else 0.1)
    spin.setSpecialValueText(zero)
    spin.setToolTip(tip)
    return spin


def _count(maximum: int, zero: str, tip: str) -> QSpinBox:
    """A spin box whose 0 means ``zero`` (a default or "off")."""
    spin = _spin(maximum)
    spin.setSpecialValueText(zero)
    spin.setToolTip(tip)
    return spin


class AdvancedSettings(QGroupBox):
    """The settings a run of the paper's recipe, or this machine, may need changed: per
    visual-backbone epochs, early stopping, learning rates and their schedule, mixup, the
    random seed, precision, decoding processes and the joint encoders. :attr:`widgets` maps each
    :class:`~app.train_form.TrainForm` field shown here to its widget."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Advanced", parent)
        self.widgets: dict[str, QWidget] = {
            "visual_epochs": _count(
                MAX_EPOCHS, "as Phase I", "Epochs of each visual backbone; a visual epoch is "
                "every frame (20 per clip), hence fewer of them in the paper's recipe"),
            "patience": _count(
                MAX_EPOCHS, "off", "Early stopping: a network stops after this many epochs "
                "without a lower validation loss and keeps its best epoch"),
            "audio_lr": _rate("Adam learning rate of the audio backbones (joint: of the "
                              "acoustic encoder and the classifier)"),
            "visual_lr": _rate("Adam learning rate of the visual backbones (joint: of the "
                               "image model's layers)"),
            "fusion_lr": _rate("Adam learning rate of the fusion heads (Phase II)"),
            "mixup_alpha": _fraction(MAX_MIXUP, "off", "mixup's Beta(alpha, alpha) parameter: "
                                     "training examples are blended pairwise; 0 turns it off"),
            "seed": _spin(MAX_SEED),
            "lr_schedule": _combo(SCHEDULE_CHOICES, "cosine: a linear warm-up, then cosine "
                                  "decay to 0 by the last epoch; constant: the rate throughout"),
            "warmup_fraction": _fraction(MAX_WARMUP, "", "Share of each network's steps "
                                         "spent warming up (cosine only)"),
            "precision": _combo(PRECISION_CHOICES, "mixed: float16 computation, for GPUs with "
                                "tensor cores; auto: mixed on a GPU, float32 otherwise"),
            "jobs": _count(MAX_JOBS, "one per core",
                           "Processes decoding clips and computing features"),
            "devices": _line("every visible GPU", "The GPUs to train on: a number, or "
                             "TensorFlow device names such as /gpu:0,/gpu:1"),
            "joint_feature": _combo(JOINT_FEATURE_CHOICES,
                                    "The spectrogram the joint acoustic encoder takes"),
            "joint_image_model": _combo(IMAGE_MODEL_CHOICES, "The pre-trained image model "
                                        "whose bottom layers encode the frames (the tiny "
                                        "preset uses a small CNN)"),
            "joint_visual_stages": _count(MAX_STAGES, "default",
                                          "Stages of the image model kept"),
            "joint_freeze_visual": QCheckBox("Keep the image layers fixed"),
            "joint_branch_weight": _fraction(MAX_BRANCH_WEIGHT, "", "Weight of each "
                                             "encoder's own loss beside the fused one"),
        }
        self.widgets["seed"].setToolTip("Seeds the split, shuffling, mixup and initial "
                                        "weights: the same seed trains the same model")
        labels = {
            "visual_epochs": "Phase I epochs (visual backbones)",
            "patience": "Early stopping patience",
            "audio_lr": "Audio learning rate",
            "visual_lr": "Visual learning rate",
            "fusion_lr": "Fusion learning rate",
            "mixup_alpha": "Mixup alpha",
            "seed": "Random seed",
            "lr_schedule": "Learning-rate schedule",
            "warmup_fraction": "Warm-up fraction",
            "precision": "Precision",
            "jobs": "Decoding processes",
            "devices": "GPUs",
            "joint_feature": "Joint: spectrogram",
            "joint_image_model": "Joint: image model",
            "joint_visual_stages": "Joint: image model stages",
            "joint_freeze_visual": "Joint: image layers",
            "joint_branch_weight": "Joint: encoders' own loss weight",
        }
        form = QFormLayout(self)
        for name, widget in self.widgets.items():
            form.addRow(labels[name], widget)


class SettingsPage(QWidget):
    """Step 3: the training settings and the model's folder, as a
    :class:`~app.train_form.TrainForm`; starts with the last training's settings."""

    def __init__(self, settings: AppSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = settings
        self._suggested_out = ""
        self.preset_combo = _combo(PRESET_CHOICES, "paper: the published network sizes "
                                   "(needs a GPU); tiny: small networks that train in "
                                   "minutes on a CPU")
        self.strategy_combo = _combo(STRATEGIES, "two-phase: five backbones one by one, then "
                                     "a fusion layer (Pham et al.); joint: an acoustic "
                                     "encoder and image layers trained with the classifier "
                                     "(Chen et al.)")
        self.fusion_combo = _combo(FUSIONS)
        self.backbone_checks = {name: QCheckBox(name) for name in ALL_BACKBONES}
        backbones = QHBoxLayout()
        for check in self.backbone_checks.values():
            backbones.addWidget(check)
        backbones.addStretch(1)
        self.phase1_spin = _spin(MAX_EPOCHS)
        self.phase2_spin = _spin(MAX_EPOCHS)
        self.joint_spin = _spin(MAX_EPOCHS)
        self.batch_spin = _spin(MAX_BATCH, minimum=1)
        self.weights_combo = _combo(WEIGHT_CHOICES, "ImageNet weights, none (from scratch), "
                                    "or a weights file; the tiny preset always starts from "
                                    "scratch")
        self.weights_combo.setEditable(True)
        weights_file = QPushButton("File...")
        weights_file.clicked.connect(self._choose_weights)
        self.out_edit = QLineEdit()
        self.out_edit.textChanged.connect(self._out_changed)
        out_button = QPushButton("Folder...")
        out_button.clicked.connect(self._choose_out)
        self.resume_check = QCheckBox("Resume the interrupted training run in this folder")
        self.resume_check.setEnabled(False)
        self.resume_check.setToolTip(
            "Continue from its last finished epoch, with the dataset split it drew when it "
            "started (the shares on the dataset page are for new runs)")
        self.advanced = AdvancedSettings()
        # The form field each widget shows (but the backbones' checks, the folder and
        # resume), to read and show a form by name and grey out what it ignores.
        self.widgets: dict[str, QWidget] = {
            "preset": self.preset_combo,
            "strategy": self.strategy_combo,
            "fusion": self.fusion_combo,
            "phase1_epochs": self.phase1_spin,
            "phase2_epochs": self.phase2_spin,
            "joint_epochs": self.joint_spin,
            "batch_size": self.batch_spin,
            "visual_weights": self.weights_combo,
            **self.advanced.widgets,
        }
        form = QFormLayout()
        form.addRow("Preset", self.preset_combo)
        form.addRow("Strategy", self.strategy_combo)
        form.addRow("Fusion", self.fusion_combo)
        form.addRow("Backbones", backbones)
        form.addRow("Phase I epochs (per backbone)", self.phase1_spin)
        form.addRow("Phase II epochs (per head)", self.phase2_spin)
        form.addRow("Epochs (joint optimisation)", self.joint_spin)
        form.addRow("Batch size", self.batch_spin)
        form.addRow("Visual weights", _row(self.weights_combo, weights_file))
        form.addRow("Save the model in", _row(self.out_edit, out_button))
        form.addRow("", self.resume_check)
        # Hidden until asked for: the presets' recipes suit most runs.
        self.advanced_button = QPushButton("Advanced settings")
        self.advanced_button.setCheckable(True)
        self.advanced_button.setToolTip("Per-network epochs, early stopping, learning rates "
                                        "and their schedule, mixup, the random seed, "
                                        "precision, decoding processes, the joint encoders")
        self.advanced_button.toggled.connect(self.advanced.setVisible)
        self.advanced.hide()
        button_row = QHBoxLayout()
        button_row.addWidget(self.advanced_button)
        button_row.addStretch(1)
        form.addRow("", button_row)
        content = QWidget()
        column = QVBoxLayout(content)
        column.addLayout(form)
        column.addWidget(self.advanced)
        column.addStretch(1)
        # Shown, the advanced settings may not fit a small window: the page scrolls.
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(content)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll)
        self.show_form(saved_form(settings.training))
        self.preset_combo.currentTextChanged.connect(
            lambda preset: self.show_form(with_preset(self.form(), preset)))
        self.strategy_combo.currentTextChanged.connect(
            lambda strategy: self.show_form(with_strategy(self.form(), strategy)))
        self.advanced.widgets["lr_schedule"].currentTextChanged.connect(
            lambda _: self._grey_out(self.form()))

    def form(self, data: str = "", layout: str = "auto",
             val_fraction: float = DEFAULT_FRACTION,
             test_fraction: float = DEFAULT_FRACTION) -> TrainForm:
        """What the page shows, with the dataset and split chosen on the first page."""
        return TrainForm(
            **{name: _value(widget) for name, widget in self.widgets.items()},
            backbones=tuple(n for n, c in self.backbone_checks.items() if c.isChecked()),
            data=data,
            layout=layout,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            out=self.out_edit.text().strip(),
            resume=self.resume_check.isChecked(),
        )

    def show_form(self, form: TrainForm) -> None:
        """Show ``form``'s settings, folder and resume choice (its dataset is not here)."""
        # Showing a preset or a strategy must not apply its defaults over the form's values.
        with QSignalBlocker(self.preset_combo), QSignalBlocker(self.strategy_combo):
            for name, widget in self.widgets.items():
                _show_value(widget, getattr(form, name))
        for name, check in self.backbone_checks.items():
            check.setChecked(name in form.backbones)
        if self.out_edit.text().strip() != form.out:
            self.out_edit.setText(form.out)  # offers resume when the folder holds a run
        self.resume_check.setChecked(form.resume and self.resume_check.isEnabled())
        self._grey_out(form)

    def _grey_out(self, form: TrainForm) -> None:
        """Disable the widgets of the settings ``form`` ignores."""
        for name, widget in self.widgets.items():
            widget.setEnabled(not form.unused(name))
        for check in self.backbone_checks.values():
            check.setEnabled(not form.unused("backbones"))

    def problem(self) -> str | None:
        """Why training cannot start with these settings, or ``None``."""
        try:
            form_to_config(self.form())
        except ValueError as exc:
            return f"Settings: {exc}"
        if not self.out_edit.text().strip():
            return "Choose where to save the model."
        return None

    def suggest_out(self, data: str) -> None:
        """A new folder under the models dir, named after ``data``, unless the user chose
        one (or one to resume)."""
        current = self.out_edit.text().strip()
        if current and (current != self._suggested_out or interrupted_run(current)):
            return
        name = Path(data or "model").stem or "model"
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self._suggested_out = str(models_dir() / f"{name}-{stamp}")
        self.out_edit.setText(self._suggested_out)

    def _out_changed(self, text: str) -> None:
        resumable = bool(text.strip()) and interrupted_run(text.strip())
        self.resume_check.setEnabled(resumable)
        self.resume_check.setChecked(resumable)

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


class TrainPage(QWidget):
    """Step 4: one training run in its own process (see :mod:`app.jobs`), with its step,
    time left and loss and accuracy curves; cancel, and resume what was cut short.

    Signals
    -------
    trained(dict)
        The run wrote its bundle: :func:`app.child.train`'s result.
    failed(str)
        The run stopped on an error, in one line.
    cancelled()
        The run stopped when asked; its finished epochs are saved.
    finished(str)
        After each of those: ``"result"``, ``"error"`` or ``"cancelled"``.
    """

    trained = Signal(dict)
    failed = Signal(str)
    cancelled = Signal()
    finished = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.job: TrainJob | None = None
        self.task: Task | None = None
        self.training = TrainingReport()
        # Progress arrives faster than anyone reads it (Phase II epochs take a fraction
        # of a second): the page is redrawn at most every REFRESH_MS.
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setInterval(REFRESH_MS)
        self._refresh_timer.timeout.connect(self._refresh_if_changed)
        self._changed = self._curves_changed = False
        self.title = QLabel("")
        title_font = QFont()
        title_font.setPointSize(12)
        title_font.setBold(True)
        self.title.setFont(title_font)
        self.status = QLabel("")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
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
        self.resume_button.hide()
        row = _row(self.progress, self.eta_label, self.cancel_button, self.resume_button)
        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot)
        plots.addWidget(self.accuracy_plot)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.status)
        layout.addLayout(row)
        layout.addLayout(plots, 1)
        layout.addWidget(self.notes)

    @property
    def running(self) -> bool:
        return self.task is not None and self.task.running

    def resumed_job(self) -> TrainJob | None:
        """The last job, to continue from its last finished epoch."""
        return None if self.job is None else dataclasses.replace(self.job, resume=True)

    def start(self, job: TrainJob, title: str) -> None:
        """Run ``job`` in a training process and show its progress (none may be running)."""
        self.job = job
        self.training = TrainingReport()
        if job.resume:
            self.training.load_history(job.out)
        self.title.setText(f"{title}: {Path(job.out).name}")
        self.notes.clear()
        self.notes.hide()
        self.resume_button.hide()
        self.cancel_button.setEnabled(True)
        self._refresh()
        task = ProcessTask(child.train, (job,), "training", parent=self)
        task.progress.connect(self._on_progress)
        task.result.connect(self._on_trained)
        task.failed.connect(self._on_failed)
        task.cancelled.connect(self._on_cancelled)
        task.finished.connect(self._on_finished)
        self.task = task.start()
        self._refresh_timer.start()
        log.info("training %s -> %s (resume %s)", job.data, job.out, job.resume)

    def cancel(self) -> None:
        if self.running:
            self.task.cancel()
            self.cancel_button.setEnabled(False)
            self.status.setText("Stopping after the current batch...")

    def _on_progress(self, event) -> None:
        self.training.update(event)
        self._changed = True
        self._curves_changed |= event.info.get("event") == "epoch"

    def _refresh_if_changed(self) -> None:
        if self._changed:
            self._refresh(curves=self._curves_changed)
            self._changed = self._curves_changed = False

    def _refresh(self, curves: bool = True) -> None:
        report = self.training
        self.status.setText(report.status)
        self.progress.setValue(int(report.fraction * 1000))
        self.eta_label.setText(f"this step: {format_seconds(report.eta)} left"
                               if report.eta is not None else "")
        if report.notes:
            self.notes.setPlainText("\n".join(report.notes))
            self.notes.show()
        if curves:
            self.loss_plot.set_curves(report.curves)
            self.accuracy_plot.set_curves(report.curves)

    def _stop_refreshing(self) -> None:
        """Show the last progress now; the outcome's message comes after it."""
        self._refresh_timer.stop()
        self._refresh_if_changed()

    def _on_trained(self, payload: dict[str, Any]) -> None:
        self._stop_refreshing()
        self.trained.emit(payload)

    def _on_failed(self, message: str) -> None:
        self._stop_refreshing()
        stage = self.training.stage
        self.status.setText(f"Failed during: {stage_title(stage)}" if stage else "Failed")
        self.failed.emit(message)

    def _on_cancelled(self) -> None:
        self._stop_refreshing()
        self.status.setText("Cancelled")
        self.cancelled.emit()

    def _on_finished(self) -> None:
        self._stop_refreshing()
        outcome = (self.task.outcome if self.task else None) or "error"
        self.cancel_button.setEnabled(False)
        self.resume_button.setVisible(
            outcome != "result" and self.job is not None and interrupted_run(self.job.out))
        self.finished.emit(outcome)
