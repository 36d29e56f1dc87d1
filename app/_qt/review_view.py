"""The review view: a labels CSV as a queue to check, one key per decision.

The rows (:class:`app.review.ReviewQueue`) are listed most in need first; the selected
row's file is shown by an embedded classify view (frames, spectrograms, branch and
backbone bars, timeline), which decodes and classifies it in the worker processes as the
Classify tab does. Each decision is in the CSV before the next key is read; the settings
remember the CSV and the last decision, so a review resumes after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont, QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app import child
from app._qt.classify_view import ClassifyView
from app._qt.plots import BAR, BAR_TOP, MISSING
from app._qt.tasks import ProcessTask, ServerClient, Task
from app._qt.widgets import Banner
from app.review import (
    COLUMN_KEYS,
    COLUMNS,
    DEFAULT_THRESHOLD,
    KEYED_CLASSES,
    NEED,
    PRECISION,
    REASON_FILTERS,
    STATES,
    ReviewQueue,
    can_review,
    row_reasons,
)
from app.settings import AppSettings
from app.training import stage_title
from avsc_core.errors import AvscError
from avsc_core.inference.review import accuracy_at_or_above, suggest_threshold

log = logging.getLogger(__name__)

FILE_TAB, THRESHOLD_TAB, ADAPT_TAB = range(3)
ALL_LABELS, ALL_REASONS = "all labels", "all rows"
# Moving through the rows quickly decodes only the row the person stops at.
SHOW_DELAY_MS = 150
FILE_WIDTH = 200  # px at most for the file column at first; the full name is its tooltip
FAILED = QColor(160, 30, 30)
CONFIRMED = QColor(30, 120, 40)
CORRECTED = QColor(190, 90, 0)
ROOT = QModelIndex()  # the table's parent index: a table has no other


class ReviewTableModel(QAbstractTableModel):
    """The rows a :class:`~app.review.ReviewQueue` shows, as a Qt table model."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.queue: ReviewQueue | None = None

    def set_queue(self, queue: ReviewQueue | None) -> None:
        self.beginResetModel()
        self.queue = queue
        self.endResetModel()

    def reset(self) -> None:
        """The queue's rows or filters changed."""
        self.beginResetModel()
        self.endResetModel()

    def index_at(self, position: int) -> int:
        """The CSV index of the row shown at ``position``."""
        assert self.queue is not None
        return self.queue.view[position]

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = ROOT) -> int:
        return 0 if parent.isValid() or self.queue is None else len(self.queue.view)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = ROOT) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: QModelIndex | QPersistentModelIndex,
             role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if self.queue is None or not index.isValid():
            return None
        row_index = self.queue.view[index.row()]
        key = COLUMN_KEYS[index.column()]
        row = self.queue.rows[row_index]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.queue.cell(row_index, key)
        if role == Qt.ItemDataRole.ForegroundRole:
            if not can_review(row):
                return QBrush(FAILED)
            if key == "reviewed_label" and row.reviewed_label:
                return QBrush(CONFIRMED if row.reviewed_label == row.label else CORRECTED)
        if role == Qt.ItemDataRole.FontRole and key == "reviewed_label":
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.TextAlignmentRole and key == "confidence":
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and key in ("file", "error"):
            return getattr(row, key) or None
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section][1]
        return str(section + 1)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort by ``column`` (clicking a header); the selection stays on its row."""
        queue = self.queue
        if queue is None:
            return
        self.layoutAboutToBeChanged.emit()
        before = list(queue.view)
        persistent = self.persistentIndexList()
        queue.sort(COLUMN_KEYS[column], order == Qt.SortOrder.DescendingOrder)
        where = {index: position for position, index in enumerate(queue.view)}
        self.changePersistentIndexList(
            persistent, [self.index(where[before[p.row()]], p.column()) for p in persistent])
        self.layoutChanged.emit()


class EvidencePlot(pg.GraphicsLayoutWidget):
    """What the reviewed rows say of the confidence: the accuracy of the answers at or
    above each confidence (top) and how many they are (bottom), with the precision wanted
    and the threshold that reaches it."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setAcceptDrops(False)
        self.accuracy_plot = self.addPlot(row=0, col=0)
        self.count_plot = self.addPlot(row=1, col=0)
        for plot in (self.accuracy_plot, self.count_plot):
            plot.setMouseEnabled(x=False, y=False)
            plot.hideButtons()
            plot.setMenuEnabled(False)
            plot.setXRange(0, 1, padding=0.02)
        self.accuracy_plot.setLabel("left", "accuracy")
        self.accuracy_plot.setYRange(0, 1.05, padding=0)
        self.count_plot.setLabel("left", "answers")
        self.count_plot.setLabel("bottom", "confidence at or above")
        self.count_plot.setXLink(self.accuracy_plot)
        self.count_plot.setMaximumHeight(150)
        self._accuracy = self.accuracy_plot.plot(
            pen=pg.mkPen(BAR, width=2), symbol="o", symbolSize=5, symbolBrush=BAR,
            symbolPen=None)
        self._counts = self.count_plot.plot(pen=pg.mkPen(BAR, width=2))
        self._target = pg.InfiniteLine(angle=0, pen=pg.mkPen(MISSING, style=Qt.PenStyle.DashLine))
        self._suggested = pg.InfiniteLine(angle=90, pen=pg.mkPen(BAR_TOP, width=2))
        self.accuracy_plot.addItem(self._target)
        self.accuracy_plot.addItem(self._suggested)
        self.thresholds = self.accuracy = self.counts = np.zeros(0)
        self.suggestion: float | None = None

    def set_evidence(self, thresholds: np.ndarray, accuracy: np.ndarray, counts: np.ndarray,
                     precision: float, suggestion: float | None) -> None:
        self.thresholds, self.accuracy, self.counts = thresholds, accuracy, counts
        self.suggestion = suggestion
        self._accuracy.setData(thresholds, accuracy)
        self._counts.setData(thresholds, counts)
        self.count_plot.setYRange(0, max(1, int(counts.max()) if counts.size else 1),
                                  padding=0.05)
        self._target.setPos(precision)
        self._suggested.setVisible(suggestion is not None)
        if suggestion is not None:
            self._suggested.setPos(suggestion)


class ClassCombo(QComboBox):
    """The class list, for more classes than number keys; gives the keyboard back to the
    table when its list closes, so arrow keys never change a decision by accident."""

    closed = Signal()

    def hidePopup(self) -> None:
        super().hidePopup()
        self.closed.emit()


def _spin(low: float, high: float, value: float) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setDecimals(2)
    spin.setSingleStep(0.01)
    spin.setValue(value)
    spin.setMaximumWidth(90)
    return spin


class ReviewView(QWidget):
    """Check the answers of a labels CSV, the least sure first, one key per decision.

    Signals
    -------
    model_chosen(str)
        The user wants the adapted model as the app's model.
    adapt_done(str)
        ``"result"``, ``"error"`` or ``"cancelled"``, when an adaptation ends.
    """

    model_chosen = Signal(str)
    adapt_done = Signal(str)

    def __init__(self, settings: AppSettings, media: ServerClient, classifier: ServerClient,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = settings
        self.queue: ReviewQueue | None = None
        self.model: str | None = None
        self.adapt_task: Task | None = None
        self.adapted: str | None = None
        self._shown: int | None = None
        self._show_timer = QTimer(self)
        self._show_timer.setSingleShot(True)
        self._show_timer.setInterval(SHOW_DELAY_MS)
        self._show_timer.timeout.connect(self._show_selected)
        self._build(media, classifier)
        self._make_keys()
        self._set_open(False)

    # ----- layout -------------------------------------------------------------------
    def _build(self, media: ServerClient, classifier: ServerClient) -> None:
        self.open_button = QPushButton("Open labels...")
        self.csv_label = QLabel("<b>Open a labels CSV to review it</b> (File > Open labels...)")
        self.csv_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.counts_label = QLabel("")
        self.counts_label.setStyleSheet("color:#444")
        self.close_button = QPushButton("Close")
        self.close_button.setToolTip("Stop reviewing this CSV (a labelling run may write it "
                                     "again); the decisions are already saved")
        self.close_button.clicked.connect(lambda: self.close_csv())
        top = QHBoxLayout()
        top.addWidget(self.open_button)
        top.addWidget(self.csv_label, 1)
        top.addWidget(self.counts_label)
        top.addWidget(self.close_button)
        self.banner = Banner()

        self.label_filter = QComboBox()
        self.reason_filter = QComboBox()
        self.reason_filter.addItems([ALL_REASONS, *REASON_FILTERS])
        self.state_filter = QComboBox()
        self.state_filter.addItems(list(STATES))
        for combo in (self.label_filter, self.reason_filter, self.state_filter):
            combo.activated.connect(lambda _: self._filters_changed())
        filters = QHBoxLayout()
        for title, combo in (("label", self.label_filter), ("reason", self.reason_filter),
                             ("state", self.state_filter)):
            filters.addWidget(QLabel(title))
            filters.addWidget(combo)
        filters.addStretch(1)

        self.table_model = ReviewTableModel(self)
        self.table = QTableView()
        self.table.setModel(self.table_model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.setAlternatingRowColors(True)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header = self.table.horizontalHeader()
        # Widths are fitted once per CSV (see open_csv): fitting them on every decision
        # would measure rows each time.
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setSortIndicator(COLUMN_KEYS.index(NEED), Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_changed)

        self.row_text = QLabel("")
        self.row_text.setWordWrap(True)
        self.keys_text = QLabel(
            "<b>Enter</b>/<b>A</b> accept the model's label &nbsp; <b>1</b>-<b>9</b> pick a "
            "class &nbsp; <b>C</b> class list &nbsp; <b>S</b>/<b>Space</b> skip &nbsp; "
            "<b>Down</b>/<b>Up</b>, <b>N</b>/<b>P</b> next/previous &nbsp; "
            "<b>Delete</b> undecide")
        self.keys_text.setWordWrap(True)
        self.keys_text.setStyleSheet("color:#444")
        self.classes_text = QLabel("")
        self.classes_text.setWordWrap(True)
        self.class_combo = ClassCombo()
        self.class_combo.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.class_combo.setToolTip("Pick the right class (C opens this list)")
        self.class_combo.activated.connect(self._on_class_chosen)
        self.class_combo.closed.connect(self.table.setFocus)
        classes_row = QHBoxLayout()
        classes_row.addWidget(self.classes_text, 1)
        classes_row.addWidget(QLabel("label as"))
        classes_row.addWidget(self.class_combo)

        # The keys act while the keyboard is in this pane, so typing in the other tabs'
        # fields (a folder name, a precision) never decides a row.
        self.queue_pane = QWidget()
        left = QVBoxLayout(self.queue_pane)
        left.setContentsMargins(0, 0, 0, 0)
        left.addLayout(filters)
        left.addWidget(self.table, 1)
        left.addWidget(self.row_text)
        left.addLayout(classes_row)
        left.addWidget(self.keys_text)

        self.panel = ClassifyView(media, classifier, [])
        self.panel.open_button.hide()
        self.side_tabs = QTabWidget()
        self.side_tabs.addTab(self.panel, "File")
        self.side_tabs.addTab(self._build_threshold(), "Threshold && export")
        self.side_tabs.addTab(self._build_adapt(), "Adapt the model")

        # Explicit minimums below the panes' natural ones, so the window can be made as
        # small as the other tabs allow: the splitter hands the user the rest.
        self.queue_pane.setMinimumSize(240, 300)
        self.side_tabs.setMinimumSize(320, 300)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.queue_pane)
        splitter.addWidget(self.side_tabs)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([520, 680])
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.banner)
        layout.addWidget(splitter, 1)

    def _build_threshold(self) -> QWidget:
        self.precision_spin = _spin(0.5, 1.0, PRECISION)
        self.precision_spin.setToolTip("The share of right answers wanted among those trusted "
                                       "without a look")
        self.precision_spin.valueChanged.connect(lambda _: self._update_evidence())
        self.suggestion_text = QLabel("")
        self.suggestion_text.setWordWrap(True)
        self.use_suggestion_button = QPushButton("Use it")
        self.use_suggestion_button.clicked.connect(self._use_suggestion)
        suggestion = QHBoxLayout()
        suggestion.addWidget(self.suggestion_text, 1)
        suggestion.addWidget(self.use_suggestion_button)
        self.threshold_spin = _spin(0.0, 1.0, DEFAULT_THRESHOLD)
        self.threshold_spin.setToolTip("Rows not reviewed are exported as confident at or "
                                       "above this confidence, when nothing flags them")
        form = QFormLayout()
        form.addRow("Precision wanted", self.precision_spin)
        form.addRow("", suggestion)
        form.addRow("Trust answers at or above", self.threshold_spin)
        self.evidence_plot = EvidencePlot()
        self.export_reviewed_button = QPushButton("Export reviewed only...")
        self.export_reviewed_button.setToolTip("A labels CSV of the rows a person reviewed")
        self.export_reviewed_button.clicked.connect(lambda: self.export(confident=False))
        self.export_confident_button = QPushButton("Export reviewed + confident...")
        self.export_confident_button.setToolTip(
            "The reviewed rows and those not reviewed whose confidence is at or above the "
            "threshold with no reason to look (their reviewed_label stays empty)")
        self.export_confident_button.clicked.connect(lambda: self.export(confident=True))
        exports = QHBoxLayout()
        exports.addWidget(self.export_reviewed_button)
        exports.addWidget(self.export_confident_button)
        exports.addStretch(1)
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addLayout(form)
        layout.addWidget(QLabel("<b>Reviewed answers</b>: accuracy of those at or above "
                                "each confidence, and how many"))
        layout.addWidget(self.evidence_plot, 1)
        layout.addLayout(exports)
        return page

    def _build_adapt(self) -> QWidget:
        self.adapt_model_text = QLabel("")
        self.adapt_model_text.setWordWrap(True)
        self.adapt_out_edit = QLineEdit()
        self.adapt_out_edit.setPlaceholderText("a new folder for the adapted model")
        out_button = QPushButton("In folder...")
        out_button.clicked.connect(self._choose_adapt_folder)
        out_row = QHBoxLayout()
        out_row.addWidget(self.adapt_out_edit, 1)
        out_row.addWidget(out_button)
        self.adapt_button = QPushButton("Adapt")
        self.adapt_button.setToolTip("Train new fusion heads on the reviewed files, backbones "
                                     "frozen (avsc adapt); the model itself is not changed")
        self.adapt_button.clicked.connect(self.start_adapt)
        self.adapt_cancel_button = QPushButton("Cancel")
        self.adapt_cancel_button.setEnabled(False)
        self.adapt_cancel_button.clicked.connect(self.cancel_adapt)
        self.adapt_progress = QProgressBar()
        self.adapt_progress.setTextVisible(False)
        self.adapt_status = QLabel("")
        buttons = QHBoxLayout()
        buttons.addWidget(self.adapt_button)
        buttons.addWidget(self.adapt_cancel_button)
        buttons.addWidget(self.adapt_progress, 1)
        self.adapt_result = QLabel("")
        self.adapt_result.setWordWrap(True)
        self.adapt_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.use_model_button = QPushButton("Use the new model")
        self.use_model_button.hide()
        self.use_model_button.clicked.connect(self._use_adapted)
        form = QFormLayout()
        form.addRow("Model", self.adapt_model_text)
        form.addRow("New model", out_row)
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addWidget(QLabel("New fusion heads learnt from the rows reviewed so far; a "
                                "quarter of them is held out to score the model before and "
                                "after."))
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.adapt_status)
        layout.addWidget(self.adapt_result)
        layout.addWidget(self.use_model_button)
        layout.addStretch(1)
        return page

    def _make_keys(self) -> None:
        bindings: list[tuple[tuple[str, ...], Callable[[], None]]] = [
            (("Return", "Enter", "A"), self.accept),
            (("S", "Space"), self.skip),
            (("N",), lambda: self.move(1)),
            (("P",), lambda: self.move(-1)),
            (("Delete", "Backspace"), self.undecide),
            (("C",), self.choose_class),
        ]
        bindings += [((str(n),), lambda n=n: self.pick(n)) for n in range(1, KEYED_CLASSES + 1)]
        for keys, slot in bindings:
            for key in keys:
                # Owned by the pane (its Qt parent).
                shortcut = QShortcut(QKeySequence(key), self.queue_pane)
                shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
                shortcut.activated.connect(slot)

    # ----- opening and closing ------------------------------------------------------
    def set_model(self, path: str | None) -> None:
        """The app's model changed: the one to use where the CSV names none that exists."""
        self.model = path
        if self.queue is not None and self.queue.source.model is None:
            self._set_panel_model()

    @property
    def review_model(self) -> str | None:
        """The model that labelled the CSV, else the app's."""
        if self.queue is not None and self.queue.source.model:
            return self.queue.source.model
        return self.model

    def holds(self, csv: str | Path) -> bool:
        """Whether ``csv`` is the CSV open for review (and locked by it)."""
        return self.queue is not None and self.queue.csv == Path(csv).resolve()

    def resume(self) -> bool:
        """Reopen the CSV the settings say was under review when the app closed."""
        csv = self.settings.review.get("csv")
        if not csv:
            return False
        if not Path(csv).is_file():
            log.info("the labels CSV under review is gone: %s", csv)
            self.settings.remember_review(None)
            return False
        return self.open_csv(csv)

    def open_csv(self, path: str | Path) -> bool:
        """Review ``path``: lock it, list its rows, select the first to review after the
        last decision remembered for it (the first to review when none)."""
        self.close_csv(forget=False)
        self.banner.clear_message()
        try:
            queue = ReviewQueue.open(path, self.model)
        except AvscError as exc:
            self.banner.show_message(f"Cannot review it: {exc}")
            return False
        self.queue = queue
        remembered = self.settings.review
        last = remembered.get("file") if remembered.get("csv") == str(queue.csv) else None
        self.settings.remember_review(queue.csv, last)
        self.settings.remember_folder("labels", queue.csv)
        self.csv_label.setText(f"<b>{queue.csv.name}</b>")
        self.csv_label.setToolTip(str(queue.csv))
        self.label_filter.clear()
        self.label_filter.addItems([ALL_LABELS, *(c.replace("_", " ") for c in queue.classes)])
        self.reason_filter.setCurrentIndex(0)
        self.state_filter.setCurrentIndex(0)
        self.class_combo.clear()
        self.class_combo.addItems([c.replace("_", " ") for c in queue.classes])
        self.classes_text.setText("&nbsp; ".join(
            f"<b>{n}</b> {c.replace('_', ' ')}"
            for n, c in enumerate(queue.classes[:KEYED_CLASSES], start=1)))
        self.table.horizontalHeader().setSortIndicator(COLUMN_KEYS.index(NEED),
                                                       Qt.SortOrder.AscendingOrder)
        self.table_model.set_queue(queue)
        self.table.resizeColumnsToContents()
        self.table.setColumnWidth(0, min(self.table.columnWidth(0), FILE_WIDTH))
        self._set_panel_model()
        self._set_adapt_defaults()
        self._update_evidence()
        threshold = self.evidence_plot.suggestion
        if threshold is None:
            threshold = queue.source.min_confidence
        self.threshold_spin.setValue(DEFAULT_THRESHOLD if threshold is None else threshold)
        self._set_open(True)
        start = queue.next_to_review(queue.index_of(last) if last else None)
        self.select_index(start if start is not None else (queue.view or [None])[0])
        self._update_counts()
        self.table.setFocus()
        log.info("reviewing %s (%d rows)", queue.csv, len(queue.rows))
        return True

    def close_csv(self, forget: bool = True) -> None:
        """Stop reviewing (``forget``: nothing to resume at the next start)."""
        if self.queue is None:
            return
        self.queue.close()
        self.queue = None
        self._shown = None
        self.table_model.set_queue(None)
        if forget:
            self.settings.remember_review(None)
        self.csv_label.setText("<b>Open a labels CSV to review it</b> (File > Open labels...)")
        self.counts_label.setText("")
        self.row_text.setText("")
        self._set_open(False)

    def shutdown(self) -> None:
        """The app is closing: stop the adaptation and release the CSV, remembering it."""
        if self.adapt_task is not None and self.adapt_task.running:
            log.info("stopping the adaptation on exit")
            self.adapt_task.job.stop()
        self.close_csv(forget=False)

    def _set_open(self, is_open: bool) -> None:
        for widget in (self.close_button, self.label_filter, self.reason_filter,
                       self.state_filter, self.class_combo, self.export_reviewed_button,
                       self.export_confident_button):
            widget.setEnabled(is_open)
        self._update_adapt_buttons()

    def _set_panel_model(self) -> None:
        from avsc_core.bundle import read_manifest

        model, manifest = self.review_model, None
        if model:
            try:
                manifest = read_manifest(model)
            except AvscError as exc:
                log.warning("cannot read the model %s: %s", model, exc)
                model = None
        self.panel.set_model(model, manifest)
        self.adapt_model_text.setText(model or "none: open a model (Model > Open a model...)")

    # ----- selection ----------------------------------------------------------------
    def current_index(self) -> int | None:
        """The CSV index of the selected row."""
        current = self.table.currentIndex()
        if self.queue is None or not current.isValid():
            return None
        return self.table_model.index_at(current.row())

    def select_index(self, index: int | None) -> None:
        """Select row ``index`` of the CSV (nothing when ``None`` or filtered out)."""
        position = None if self.queue is None or index is None else self.queue.position(index)
        if position is None:
            self.table.clearSelection()
            self.table.setCurrentIndex(QModelIndex())
            self._describe(None)
            return
        cell = self.table_model.index(position, 0)
        self.table.setCurrentIndex(cell)
        self.table.selectRow(position)
        self.table.scrollTo(cell)

    def _on_current_changed(self, current: QModelIndex, previous: QModelIndex) -> None:
        index = self.current_index()
        self._describe(index)
        if index is not None and index != self._shown:
            self._show_timer.start()

    def _describe(self, index: int | None) -> None:
        if self.queue is None or index is None:
            self.row_text.setText("")
            return
        row = self.queue.rows[index]
        if not can_review(row):
            self.row_text.setText(f"<b>{row.file}</b>: could not be labelled ({row.error})")
            return
        reasons = ", ".join(row_reasons(row)) or "nothing flags it"
        decided = (f"reviewed as <b>{row.reviewed_label.replace('_', ' ')}</b>"
                   if row.reviewed_label else "not reviewed")
        self.row_text.setText(
            f"<b>{row.file}</b>: the model says <b>{row.label.replace('_', ' ')}</b> "
            f"({row.confidence or 0:.0%}); {reasons}; {decided}")

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self.queue is not None:
            # The keys act when the keyboard is in the queue, also for a review resumed
            # while the window was hidden.
            self.table.setFocus()
        # The file is decoded only once the view is seen (a review resumed at start waits).
        self._show_timer.start()

    def _show_selected(self) -> None:
        index = self.current_index()
        if self.queue is None or index is None or index == self._shown or not self.isVisible():
            return
        self._shown = index
        self.panel.open_file(self.queue.media_path(index))

    # ----- decisions ----------------------------------------------------------------
    def accept(self) -> None:
        """The model's label is right."""
        index = self.current_index()
        if self.queue is not None and index is not None:
            self._decide(index, self.queue.rows[index].label)

    def pick(self, number: int) -> None:
        """The class number key ``number`` names is right."""
        index = self.current_index()
        if self.queue is None or index is None:
            return
        label = self.queue.keyed_class(number)
        if label is None:
            self.banner.show_message(f"There is no class {number}: the model has "
                                     f"{len(self.queue.classes)}.", "info")
            return
        self._decide(index, label)

    def choose_class(self) -> None:
        """Open the class list (for a class beyond the number keys)."""
        if self.queue is not None and self.current_index() is not None:
            self.class_combo.setFocus()
            self.class_combo.showPopup()

    def _on_class_chosen(self, position: int) -> None:
        index = self.current_index()
        self.table.setFocus()
        if self.queue is not None and index is not None and 0 <= position < len(self.queue.classes):
            self._decide(index, self.queue.classes[position])

    def undecide(self) -> None:
        """Forget the decision on the selected row; stay on it."""
        index = self.current_index()
        if self.queue is not None and index is not None:
            self._decide(index, "", advance=False)

    def skip(self) -> None:
        self.move(1)

    def move(self, step: int) -> None:
        """Select the row ``step`` rows down (up when negative), within the list."""
        if self.queue is None or not self.queue.view:
            return
        current = self.table.currentIndex()
        position = current.row() + step if current.isValid() else 0
        position = min(max(position, 0), len(self.queue.view) - 1)
        self.select_index(self.table_model.index_at(position))

    def _decide(self, index: int, label: str, advance: bool = True) -> None:
        """Write the decision, remember it, go to the next row to review."""
        assert self.queue is not None
        queue = self.queue
        self.banner.clear_message()
        try:
            queue.decide(index, label)
        except AvscError as exc:
            self.banner.show_message(str(exc))
            return
        self.settings.remember_review(queue.csv, queue.rows[index].file)
        target = queue.next_to_review(index) if advance else index
        if target is None:
            self.banner.show_message("Every row shown is reviewed.", "info")
            target = index
        self.table_model.reset()
        self.select_index(target)
        self.table.setFocus()
        self._update_counts()
        self._update_evidence()

    def _filters_changed(self) -> None:
        if self.queue is None:
            return
        keep = self.current_index()
        label = self.label_filter.currentIndex()  # 0: all labels
        reason = self.reason_filter.currentText()
        self.queue.set_filters(
            label=self.queue.classes[label - 1] if label > 0 else None,
            reason=None if reason == ALL_REASONS else reason,
            state=self.state_filter.currentText())
        self.table_model.reset()
        if keep is not None and self.queue.position(keep) is None:
            keep = self.queue.next_to_review(keep)
        self.select_index(keep if keep is not None else (self.queue.view or [None])[0])
        self._update_counts()
        self.table.setFocus()

    def _update_counts(self) -> None:
        if self.queue is None:
            return
        counts = self.queue.counts()
        self.counts_label.setText(
            f"{counts['to review']} to review, {counts['reviewed']} reviewed, "
            f"{counts['failed']} failed; {counts['shown']} of {counts['total']} shown")

    # ----- threshold and exports ----------------------------------------------------
    def _update_evidence(self) -> None:
        if self.queue is None:
            return
        confidences, correct = self.queue.evidence()
        thresholds, accuracy, counts = accuracy_at_or_above(confidences, correct)
        precision = self.precision_spin.value()
        suggestion = suggest_threshold(confidences, correct, precision)
        self.evidence_plot.set_evidence(thresholds, accuracy, counts, precision, suggestion)
        self.use_suggestion_button.setEnabled(suggestion is not None)
        if not confidences:
            text = "No row reviewed yet: review some to see how often the model is right."
        elif suggestion is None:
            text = (f"Even the most confident of the {len(confidences)} reviewed answers "
                    f"fall short of {precision:.0%}.")
        else:
            at = int(np.searchsorted(thresholds, suggestion))
            text = (f"At or above <b>{suggestion:.2f}</b>, {round(accuracy[at] * counts[at])} "
                    f"of the {counts[at]} reviewed answers were right ({accuracy[at]:.0%}); "
                    f"{len(confidences)} reviewed in all.")
        self.suggestion_text.setText(text)

    def _use_suggestion(self) -> None:
        if self.evidence_plot.suggestion is not None:
            self.threshold_spin.setValue(self.evidence_plot.suggestion)

    def export(self, confident: bool) -> None:
        """Ask where, then write the reviewed rows (``confident``: and the sure ones)."""
        if self.queue is None:
            return
        csv = self.queue.csv
        threshold = self.threshold_spin.value() if confident else None
        suffix = "confident" if confident else "reviewed"
        path, _ = QFileDialog.getSaveFileName(
            self, "Export reviewed + confident rows" if confident else "Export reviewed rows",
            str(csv.with_name(f"{csv.stem}-{suffix}.csv")), "CSV files (*.csv)")
        if not path:
            return
        try:
            written = self.queue.export(path, threshold)
        except AvscError as exc:
            self.banner.show_message(str(exc))
            return
        which = (f"reviewed or at or above {threshold:.2f} with no reason to look"
                 if confident else "reviewed")
        self.banner.show_message(f"{written} rows ({which}) written to {path}", "info")

    # ----- adapting -----------------------------------------------------------------
    @property
    def adapting(self) -> bool:
        return self.adapt_task is not None and self.adapt_task.running

    def _set_adapt_defaults(self) -> None:
        model = self.review_model
        if not model or self.adapting:
            return
        base = Path(model)
        out = base.with_name(f"{base.name}-adapted")
        number = 2
        while out.exists():
            out = base.with_name(f"{base.name}-adapted-{number}")
            number += 1
        self.adapt_out_edit.setText(str(out))

    def _choose_adapt_folder(self) -> None:
        current = Path(self.adapt_out_edit.text().strip() or Path.home() / "adapted")
        folder = QFileDialog.getExistingDirectory(self, "Folder to write the new model in",
                                                  str(current.parent))
        if folder:
            self.adapt_out_edit.setText(str(Path(folder) / current.name))

    def _update_adapt_buttons(self) -> None:
        self.adapt_button.setEnabled(self.queue is not None and not self.adapting)
        self.adapt_cancel_button.setEnabled(self.adapting)
        self.adapt_out_edit.setEnabled(not self.adapting)

    def start_adapt(self) -> None:
        """Train new heads on the reviewed rows, in a worker process."""
        model, out = self.review_model, self.adapt_out_edit.text().strip()
        if self.queue is None or self.adapting:
            return
        self.banner.clear_message()
        if not model or not out:
            self.banner.show_message("Choose the model to adapt (Model > Open a model...) and "
                                     "a folder for the new one.")
            return
        if not self.queue.counts()["reviewed"]:
            self.banner.show_message("Review some rows first: the new heads learn from them.")
            return
        self.adapted = None
        self.use_model_button.hide()
        self.adapt_result.setText("")
        self.adapt_progress.setRange(0, 0)
        self.adapt_status.setText("Starting (loading TensorFlow)...")
        task = ProcessTask(child.adapt, (model, str(self.queue.csv), out,
                                         self.settings.cache_dir), "adapting", parent=self)
        task.progress.connect(self._on_adapt_progress)
        task.result.connect(self._on_adapt_result)
        task.failed.connect(lambda message: self.banner.show_message(
            f"Adapting failed: {message}"))
        task.cancelled.connect(lambda: self.banner.show_message(
            "Adapting cancelled; nothing was written.", "info"))
        task.finished.connect(self._on_adapt_finished)
        self.adapt_task = task.start()
        self._update_adapt_buttons()

    def cancel_adapt(self) -> None:
        if self.adapting:
            self.adapt_task.cancel()
            self.adapt_cancel_button.setEnabled(False)
            self.adapt_status.setText("Cancelling...")

    def _on_adapt_progress(self, event) -> None:
        if event.total:
            self.adapt_progress.setRange(0, event.total)
            self.adapt_progress.setValue(event.done)
            self.adapt_status.setText(f"{stage_title(event.stage)}: {event.done}/{event.total}")
        else:
            self.adapt_status.setText(stage_title(event.stage))

    def _on_adapt_result(self, result: dict[str, Any]) -> None:
        self.adapted = result["model"]
        self.adapt_result.setText(result["summary"].replace("\n", "<br>"))
        self.use_model_button.show()
        self.banner.show_message(f"New model written to {self.adapted}. Use it with the "
                                 "button in the Adapt tab.", "info")

    def _on_adapt_finished(self) -> None:
        assert self.adapt_task is not None
        outcome = self.adapt_task.outcome or "error"
        self.adapt_progress.setRange(0, 1)
        self.adapt_progress.setValue(1 if outcome == "result" else 0)
        self.adapt_status.setText({"result": "Done", "cancelled": "Cancelled"}.get(outcome,
                                                                                   "Failed"))
        self._update_adapt_buttons()
        self._set_adapt_defaults()  # the next one must not overwrite this one
        self.adapt_done.emit(outcome)

    def _use_adapted(self) -> None:
        if self.adapted:
            self.model_chosen.emit(self.adapted)
            self.use_model_button.hide()
