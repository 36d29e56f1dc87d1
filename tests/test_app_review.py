"""The review view (pytest-qt, offscreen), driven by the keyboard: a labels CSV the tiny
model wrote, decisions written at once, a killed app that resumes after its last
decision, the exports, the threshold the evidence suggests, and adapting the model."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from conftest import REPO, TINY_CLASSES, write_media
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from app._qt.main_window import REVIEW_TAB, MainWindow
from app._qt.review_view import ADAPT_TAB, THRESHOLD_TAB
from app.review import COLUMN_KEYS
from app.settings import AppSettings
from avsc_core.inference.review import suggest_threshold
from avsc_core.locks import OutputBusyError, OutputLock

ANSWER_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def labelled(tiny_dataset, trained_tiny_model, tmp_path_factory) -> Path:
    """A labels CSV the tiny model wrote (``avsc label``'s own function): three clips of
    each class, one of each whose pictures are the other class's (its branches disagree)
    and three whose pictures blend the classes' colours (the model is less sure). Its
    media folder is elsewhere, as its parameters file records."""
    from avsc_core.label import label_folder

    root = tmp_path_factory.mktemp("review")
    media = root / "media"
    media.mkdir()
    for label in TINY_CLASSES:
        for i in range(3):
            shutil.copy(tiny_dataset / label / f"{label}-{i}.mp4", media / f"{label}-{i}.mp4")
    (park_hz, park_look), (tram_hz, tram_look) = TINY_CLASSES["park"], TINY_CLASSES["tram"]
    for name, hz, look in (("sounds-park.mp4", park_hz, tram_look),
                           ("sounds-tram.mp4", tram_hz, park_look)):
        write_media(media / name, seconds=2.0, fps=4, size=(48, 32), tone_hz=hz,
                    frame_colour=look)
    for k, (hz, tram_share) in enumerate(((park_hz, 0.5), (tram_hz, 0.45), (800.0, 0.3))):
        look = tuple(round(p + (t - p) * tram_share) for p, t in zip(park_look, tram_look))
        write_media(media / f"blend-{k}.mp4", seconds=2.0, fps=4, size=(48, 32), tone_hz=hz,
                    frame_colour=look)
    # The review threshold is the median confidence of the answers nothing else flags, so
    # that the queue has both kinds of rows to order, however sure this tiny model is.
    probe = root / "probe" / "labels.csv"
    label_folder(media, trained_tiny_model, probe)
    clean = sorted(float(r["confidence"]) for r in read(probe) if not r["needs_review"])
    assert len(clean) >= 2, read(probe)
    out = root / "labels" / "labels.csv"
    label_folder(media, trained_tiny_model, out, min_confidence=clean[len(clean) // 2])
    rows = read(out)
    assert any(r["needs_review"] for r in rows) and any(not r["needs_review"] for r in rows)
    return out


def read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def copy_labels(labelled: Path, folder: Path) -> Path:
    """A copy of the labels CSV and its parameters file, for one test to change."""
    folder.mkdir(parents=True)
    for name in ("labels.csv", "labels.params.json"):
        shutil.copy(labelled.parent / name, folder / name)
    return folder / "labels.csv"


def need_order(rows: list[dict[str, str]]) -> list[str]:
    """The files most in need of a look first, worked out here from the CSV alone."""
    def key(item):
        position, row = item
        reasons = [r for r in row["needs_review"].split(";") if r]
        if row["error"]:
            return (2, 0, 0.0, position)
        return (0 if reasons else 1, -len(reasons), float(row["confidence"]), position)

    return [row["file"] for _, row in sorted(enumerate(rows), key=key)]


def classes_of(labels: Path) -> list[str]:
    return json.loads(labels.with_name("labels.params.json").read_text())["classes"]


def shown_files(view) -> list[str]:
    model = view.table_model
    return [model.data(model.index(r, 0)) for r in range(model.rowCount())]


def current_file(view) -> str | None:
    index = view.current_index()
    return None if index is None else view.queue.rows[index].file


def reviewed(labels: Path) -> dict[str, str]:
    return {r["file"]: r["reviewed_label"] for r in read(labels)}


def open_window(qtbot, workers, model: Path | None = None) -> MainWindow:
    window = MainWindow(AppSettings.load(), *workers)
    qtbot.addWidget(window)
    with qtbot.waitActive(window):
        window.show()
        window.activateWindow()
    if model is not None:
        assert window.set_model(str(model))
    return window


def press(qtbot, view, *keys) -> None:
    for key in keys:
        qtbot.keyClick(view.table, key)


@pytest.mark.slow
def test_reviewing_with_the_keyboard_writes_each_decision_and_exports(
        qtbot, workers, labelled, trained_tiny_model, tmp_path, monkeypatch):
    labels = copy_labels(labelled, tmp_path / "labels")
    rows = read(labels)
    order = need_order(rows)
    label_of = {r["file"]: r["label"] for r in rows}
    classes = classes_of(labels)
    window = open_window(qtbot, workers, trained_tiny_model)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(labels), ""))
    window.open_labels_action.trigger()
    view = window.review_view
    assert window.tabs.currentIndex() == REVIEW_TAB
    assert shown_files(view) == order
    assert current_file(view) == order[0]
    assert "<b>1</b> park" in view.classes_text.text()
    assert "<b>2</b> tram" in view.classes_text.text()

    # The selected file is shown as the Classify tab shows it, from the worker processes.
    panel = view.panel
    qtbot.waitUntil(lambda: panel.result is not None, timeout=ANSWER_TIMEOUT_MS)
    assert Path(panel.result["file"]).name == order[0]
    assert panel.label_text.text() == label_of[order[0]].replace("_", " ")
    assert set(panel.branch_bars.values) == {"fused", "audio", "visual"}
    assert set(panel.backbone_bars.values) == {"aud-mel", "vis-inc"}
    assert panel.frames.times

    # Enter accepts the model's label, a number key picks a class: each is in the CSV at
    # once, and the next row to review is selected.
    press(qtbot, view, Qt.Key.Key_Return)
    assert reviewed(labels)[order[0]] == label_of[order[0]]
    assert current_file(view) == order[1]
    press(qtbot, view, Qt.Key.Key_2)
    assert reviewed(labels)[order[1]] == classes[1]
    assert current_file(view) == order[2]
    # S and Space skip; N/P and Down/Up move; none of them writes.
    before = labels.read_bytes()
    press(qtbot, view, Qt.Key.Key_S)
    assert current_file(view) == order[3]
    press(qtbot, view, Qt.Key.Key_Space)
    assert current_file(view) == order[4]
    press(qtbot, view, Qt.Key.Key_P)
    assert current_file(view) == order[3]
    press(qtbot, view, Qt.Key.Key_Up)
    assert current_file(view) == order[2]
    press(qtbot, view, Qt.Key.Key_Down, Qt.Key.Key_N)
    assert current_file(view) == order[4]
    assert labels.read_bytes() == before
    # A accepts too; Delete takes a decision back; 1 picks the first class.
    press(qtbot, view, Qt.Key.Key_A)
    assert reviewed(labels)[order[4]] == label_of[order[4]]
    press(qtbot, view, Qt.Key.Key_Up, Qt.Key.Key_Delete)
    assert reviewed(labels)[order[4]] == "" and current_file(view) == order[4]
    press(qtbot, view, Qt.Key.Key_1)
    assert reviewed(labels)[order[4]] == classes[0]
    assert current_file(view) == order[5]
    # C opens the class list (for models with more classes than number keys).
    press(qtbot, view, Qt.Key.Key_C)
    popup = view.class_combo.view()
    qtbot.waitUntil(popup.isVisible, timeout=5_000)
    qtbot.keyClick(popup, Qt.Key.Key_Down)
    qtbot.keyClick(popup, Qt.Key.Key_Return)
    assert reviewed(labels)[order[5]] == classes[1]
    decided = {order[0]: label_of[order[0]], order[1]: classes[1], order[4]: classes[0],
               order[5]: classes[1]}
    assert {f: v for f, v in reviewed(labels).items() if v} == decided
    # Every column is kept, in the CSV's order.
    assert [{k: v for k, v in r.items() if k != "reviewed_label"} for r in read(labels)] == [
        {k: v for k, v in r.items() if k != "reviewed_label"} for r in rows]
    assert AppSettings.load().review == {"csv": str(labels), "file": order[5]}

    # The CSV is held while it is open: a labelling run into it is refused, here and in
    # the Label tab (which says why).
    from avsc_core.label import label_folder

    media = labelled.parent.parent / "media"
    with pytest.raises(OutputBusyError, match="is being written by"):
        label_folder(media, trained_tiny_model, labels, resume=True)
    window.label_view.set_folder(str(media))
    window.label_view.csv_edit.setText(str(labels))
    window.label_view.resume_check.setChecked(True)
    window.label_view.start()
    assert not window.label_view.running
    assert "is open for review" in window.label_view.banner.text()

    # The filters: the reviewed rows only, then those still to review.
    view.state_filter.setCurrentText("reviewed")
    view._filters_changed()
    assert shown_files(view) == [f for f in order if f in decided]
    view.state_filter.setCurrentText("to review")
    view._filters_changed()
    assert shown_files(view) == [f for f in order if f not in decided]
    # Sorting by a column (a header click) keeps the selected row selected.
    view.state_filter.setCurrentText("all")
    view._filters_changed()
    selected = current_file(view)
    view.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
    assert shown_files(view) == sorted(order, reverse=True)
    assert current_file(view) == selected
    view.table.sortByColumn(COLUMN_KEYS.index("reviewed_label"), Qt.SortOrder.AscendingOrder)
    decisions = [reviewed(labels)[f] for f in shown_files(view)]
    assert decisions == sorted(decisions) and decisions[0] == ""  # the undecided first

    # The threshold the reviewed rows support, as the core works it out from the CSV.
    view.side_tabs.setCurrentIndex(THRESHOLD_TAB)
    done = [r for r in read(labels) if r["reviewed_label"]]
    confidences = [float(r["confidence"]) for r in done]
    correct = [r["reviewed_label"] == r["label"] for r in done]
    assert view.evidence_plot.counts.max() == len(done)
    assert view.evidence_plot.suggestion == suggest_threshold(confidences, correct, 0.95)
    view.precision_spin.setValue(0.5)
    assert view.evidence_plot.suggestion == suggest_threshold(confidences, correct, 0.5)

    # Exports: the reviewed rows; then those and the unflagged rows at or above 0.6.
    targets = iter([tmp_path / "out" / "reviewed.csv", tmp_path / "out" / "confident.csv"])
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(next(targets)), "CSV files (*.csv)"))
    view.export_reviewed_button.click()
    assert "4 rows" in view.banner.text()
    exported = read(tmp_path / "out" / "reviewed.csv")
    assert [r["file"] for r in exported] == [r["file"] for r in rows if r["file"] in decided]
    assert {r["file"]: r["reviewed_label"] for r in exported} == decided
    view.threshold_spin.setValue(0.6)
    view.export_confident_button.click()
    confident = [r["file"] for r in rows if r["file"] in decided or (
        not r["needs_review"] and not r["error"] and float(r["confidence"]) >= 0.6)]
    assert [r["file"] for r in read(tmp_path / "out" / "confident.csv")] == confident
    assert len(confident) > len(decided)


DRIVER = r"""
import json, os, sys
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app._qt.main_window import MainWindow
from app._qt.tasks import ServerClient, Task
from app.settings import AppSettings

app = QApplication([])


class Idle(Task):
    def __init__(self):
        super().__init__()
        self.running = True

    def cancel(self):
        pass


class NoWorker(ServerClient):
    # The app is killed: it must leave no decoding or model process behind.
    def start(self):
        pass

    def request(self, kind, **kwargs):
        return Idle()


window = MainWindow(AppSettings.load(), NoWorker("media"), NoWorker("classifier"))
window.show()
window.activateWindow()
QTest.qWaitForWindowExposed(window)
assert window.open_labels(sys.argv[1])
view = window.review_view
keys = {"enter": Qt.Key.Key_Return, "2": Qt.Key.Key_2, "s": Qt.Key.Key_S, "a": Qt.Key.Key_A}
for name in sys.argv[2:]:
    index = view.current_index()
    QTest.keyClick(view.table, keys[name])
    row = view.queue.rows[index]
    print(json.dumps({"key": name, "file": row.file, "reviewed": row.reviewed_label}),
          flush=True)
print("waiting", flush=True)
app.exec()
"""


@pytest.mark.slow
def test_a_killed_app_keeps_every_decision_and_resumes_after_the_last(
        qtbot, workers, labelled, tmp_path):
    labels = copy_labels(labelled, tmp_path / "labels")
    order = need_order(read(labels))
    classes = classes_of(labels)
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(labels), "enter", "2", "s", "a"], cwd=REPO,
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        lines = []
        for line in driver.stdout:
            if line.strip() == "waiting":
                break
            lines.append(json.loads(line))
        else:
            pytest.fail(f"the app exited early with {driver.wait()}")
        # Killed as a crash or a power cut would stop it: no chance to save anything.
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert [(d["key"], d["file"]) for d in lines] == [
        ("enter", order[0]), ("2", order[1]), ("s", order[2]), ("a", order[3])]
    label_of = {r["file"]: r["label"] for r in read(labels)}
    assert {f: v for f, v in reviewed(labels).items() if v} == {
        order[0]: label_of[order[0]], order[1]: classes[1], order[3]: label_of[order[3]]}
    # The lock died with the app.
    with OutputLock(labels):
        pass

    # The app starts again where it stopped: after the last decision (the row skipped
    # before it waits for a later pass).
    window = open_window(qtbot, workers)
    view = window.review_view
    assert window.tabs.currentIndex() == REVIEW_TAB and view.holds(labels)
    assert current_file(view) == order[4]
    press(qtbot, view, Qt.Key.Key_Return)
    assert reviewed(labels)[order[4]] == label_of[order[4]]
    # Closing the window keeps the review to resume; Close forgets it.
    window.close()
    assert AppSettings.load().review == {"csv": str(labels), "file": order[4]}
    window = open_window(qtbot, workers)
    assert current_file(window.review_view) == order[5]
    window.review_view.close_button.click()
    assert AppSettings.load().review == {}
    with OutputLock(labels):
        pass
    # Reopened from the Label tab's button, it starts at the first row to review: the one
    # skipped.
    window.label_view.csv_edit.setText(str(labels))
    window.label_view.review_button.click()
    assert window.review_view.holds(labels) and current_file(window.review_view) == order[2]


@pytest.mark.slow
def test_the_adapt_button_trains_new_heads_and_offers_the_new_model(
        qtbot, workers, labelled, trained_tiny_model, tmp_path):
    labels = copy_labels(labelled, tmp_path / "labels")
    window = open_window(qtbot, workers, trained_tiny_model)
    assert window.open_labels(labels)
    view = window.review_view
    view.side_tabs.setCurrentIndex(ADAPT_TAB)
    # Nothing reviewed yet: said at once, nothing started.
    view.start_adapt()
    assert not view.adapting and "Review some rows first" in view.banner.text()
    for _ in range(len(read(labels))):
        press(qtbot, view, Qt.Key.Key_Return)
    assert all(r["reviewed_label"] == r["label"] for r in read(labels))

    # An error in the worker is reported and the controls come back.
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "something").write_text("x")
    view.adapt_out_edit.setText(str(taken))
    with qtbot.waitSignal(view.adapt_done, timeout=ANSWER_TIMEOUT_MS) as done:
        view.adapt_button.click()
        assert view.adapting and view.adapt_cancel_button.isEnabled()
    assert done.args == ["error"]
    assert "is not empty" in view.banner.text()
    assert view.adapt_button.isEnabled() and not view.adapt_cancel_button.isEnabled()

    # Cancelled once it reports progress: nothing is written.
    cancelled = tmp_path / "cancelled"
    view.adapt_out_edit.setText(str(cancelled))
    with qtbot.waitSignal(view.adapt_done, timeout=ANSWER_TIMEOUT_MS) as done:
        view.adapt_button.click()
        qtbot.waitUntil(lambda: "/" in view.adapt_status.text(), timeout=ANSWER_TIMEOUT_MS)
        view.adapt_cancel_button.click()
    assert done.args == ["cancelled"] and "nothing was written" in view.banner.text()
    assert not cancelled.exists()

    out = tmp_path / "adapted"
    view.adapt_out_edit.setText(str(out))
    with qtbot.waitSignal(view.adapt_done, timeout=300_000) as done:
        view.adapt_button.click()
    assert done.args == ["result"], view.banner.text()
    assert view.adapt_status.text() == "Done"
    assert (out / "manifest.json").is_file()
    assert "adapted on" in view.adapt_result.text()
    assert view.use_model_button.isVisible()
    view.use_model_button.click()
    assert window.model == str(out)
    assert AppSettings.load().model == str(out)
    # The next adaptation goes to a new folder.
    assert view.adapt_out_edit.text() != str(out)
