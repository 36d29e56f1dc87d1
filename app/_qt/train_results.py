"""The wizard's last page: how the new model scores on clips it never trained on."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.evaluation import clips_in_cell
from app.results import BRANCH_TITLES

BRANCHES = tuple(BRANCH_TITLES)
RIGHT = (60, 140, 90)
WRONG = (200, 80, 60)


def _item(text: str) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
    return item


class ResultsPage(QWidget):
    """Accuracy and log loss per branch, a confusion matrix per branch with the accuracy
    of each class, and the clips of a clicked cell.

    ``evaluation`` is :func:`app.evaluation.clip_predictions`'s result.
    """

    classify_requested = Signal()
    again_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.evaluation: dict[str, Any] = {}
        self.title = QLabel("")
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary = QTableWidget()
        self.summary.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.summary.verticalHeader().hide()
        self.summary.setSizeAdjustPolicy(QTableWidget.SizeAdjustPolicy.AdjustToContents)
        self.summary.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Maximum)
        self.branch_tabs = QTabWidget()
        self.confusion: dict[str, QTableWidget] = {}
        for branch in BRANCHES:
            table = QTableWidget()
            table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
            table.cellClicked.connect(
                lambda row, col, branch=branch: self.show_cell(branch, row, col))
            self.confusion[branch] = table
            self.branch_tabs.addTab(table, branch)
        self.cell_title = QLabel("Click a cell to list its clips.")
        self.cell_title.setWordWrap(True)
        self.cell_clips = QListWidget()
        classify = QPushButton("Classify a file with this model")
        classify.clicked.connect(self.classify_requested)
        again = QPushButton("Train another model")
        again.clicked.connect(self.again_requested)

        side = QVBoxLayout()
        side.addWidget(self.cell_title)
        side.addWidget(self.cell_clips, 1)
        body = QHBoxLayout()
        body.addWidget(self.branch_tabs, 3)
        body.addLayout(side, 2)
        buttons = QHBoxLayout()
        buttons.addWidget(classify)
        buttons.addWidget(again)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.summary)
        layout.addWidget(QLabel("<b>Confusion matrix</b> (rows: true class, columns: "
                                "predicted; last column: accuracy of the class)"))
        layout.addLayout(body, 1)
        layout.addLayout(buttons)

    def show_evaluation(self, model: str, evaluation: dict[str, Any]) -> None:
        self.evaluation = evaluation
        classes = evaluation.get("classes", [])
        self.title.setText(
            f"<b>Model saved</b> to {model} and opened as the current model.<br>"
            f"Scores on the {evaluation.get('split', 'test')} split "
            f"({len(evaluation.get('clips', []))} clips the model never trained on).")
        branches = evaluation.get("branches", {})
        self.summary.setColumnCount(3)
        self.summary.setHorizontalHeaderLabels(["branch", "accuracy", "log loss"])
        self.summary.setRowCount(len(BRANCHES))
        for row, branch in enumerate(BRANCHES):
            metrics = branches.get(branch)
            cells = [branch, "-", "-"] if not metrics else [
                branch, f"{metrics['accuracy']:.1%}", f"{metrics['log_loss']:.3f}"]
            for col, text in enumerate(cells):
                self.summary.setItem(row, col, QTableWidgetItem(text))
        self.summary.resizeColumnsToContents()
        self.summary.resizeRowsToContents()
        for branch, table in self.confusion.items():
            self._fill_confusion(table, classes, branches.get(branch))
        self.cell_clips.clear()
        self.cell_title.setText("Click a cell to list its clips.")

    @staticmethod
    def _fill_confusion(table: QTableWidget, classes: list[str], metrics: dict | None) -> None:
        table.clear()
        if not metrics:
            table.setRowCount(1)
            table.setColumnCount(1)
            table.setItem(0, 0, QTableWidgetItem("this branch did not run"))
            return
        matrix = metrics["confusion"]
        n = len(classes)
        names = [c.replace("_", " ") for c in classes]
        table.setRowCount(n)
        table.setColumnCount(n + 1)
        table.setHorizontalHeaderLabels([*names, "accuracy"])
        table.setVerticalHeaderLabels(names)
        for i in range(n):
            total = sum(matrix[i]) or 1
            for j in range(n):
                item = _item(str(matrix[i][j]))
                if matrix[i][j]:
                    # Shaded by the share of the row: where a class's clips went.
                    share = matrix[i][j] / total
                    item.setBackground(QBrush(QColor(*(RIGHT if i == j else WRONG),
                                                     int(40 + 180 * share))))
                table.setItem(i, j, item)
            accuracy = metrics["per_class_accuracy"].get(classes[i])
            table.setItem(i, n, _item("-" if accuracy is None else f"{accuracy:.0%}"))
        table.resizeColumnsToContents()

    def show_cell(self, branch: str, row: int, col: int) -> None:
        """List the clips of a confusion cell: true class ``row``, predicted ``col``."""
        classes = self.evaluation.get("classes", [])
        if row >= len(classes) or col >= len(classes):
            return
        clips = clips_in_cell(self.evaluation, branch, classes[row], classes[col])
        self.cell_title.setText(
            f"<b>{len(clips)}</b> {classes[row]} clip(s) that the {branch} branch called "
            f"<b>{classes[col]}</b>:")
        self.cell_clips.clear()
        for clip in clips:
            confidence = clip["confidence"].get(branch)
            self.cell_clips.addItem(f"{clip['file']}  ({confidence:.0%})")
