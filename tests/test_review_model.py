"""The review queue without Qt: its order, filters, decisions, lock, evidence and exports."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from app.review import (
    ALL,
    ANY_REASON,
    NO_REASON,
    REVIEWED,
    TO_REVIEW,
    ReviewQueue,
    export_rows,
    labels_source,
)
from app.settings import AppSettings
from avsc_core.errors import AvscError
from avsc_core.inference.review import accuracy_at_or_above, suggest_threshold
from avsc_core.label.csv_out import HEADER, LabelRow, write_rows
from avsc_core.locks import OutputBusyError, OutputLock

CLASSES = ["tram", "park", "bus"]  # the model's order, not the alphabet's
ROWS = [
    LabelRow("a.mp4", "park", 0.97, "park", "park"),
    LabelRow("b.mp4", "tram", 0.55, "tram", "park", "", "low confidence;branches disagree"),
    LabelRow("c.mp4", "park", 0.40, "park", "park", "", "low confidence"),
    LabelRow("d.mp4", "", None, "", "", "cannot decode"),
    LabelRow("e.mp4", "bus", 0.62, "bus", "bus", "", "low confidence"),
    LabelRow("f.mp4", "tram", 0.91, "tram", "tram", "", "unfamiliar;branches disagree;"
             "low confidence"),
    LabelRow("g.mp4", "bus", 0.80, "bus", "bus"),
    LabelRow("h.mp4", "park", 0.99, "park", "park", "", "", "park"),
]
NEED_ORDER = ["f.mp4", "b.mp4", "c.mp4", "e.mp4", "g.mp4", "a.mp4", "h.mp4", "d.mp4"]


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture
def labels(tmp_path) -> Path:
    """A labels CSV of hand-made rows, with the parameters file ``avsc label`` writes."""
    path = tmp_path / "out" / "labels.csv"
    write_rows(path, ROWS)
    (tmp_path / "out" / "labels.params.json").write_text(json.dumps({
        "labels": "labels.csv", "model": str(tmp_path / "gone-model"), "classes": CLASSES,
        "folder": str(tmp_path / "media"), "min_confidence": 0.7,
    }))
    return path


@pytest.fixture
def queue(labels):
    opened = ReviewQueue.open(labels)
    yield opened
    opened.close()


def files(queue: ReviewQueue) -> list[str]:
    return [queue.rows[i].file for i in queue.view]


def test_the_files_most_in_need_come_first(queue):
    # More reasons first, then the less confident; then the rest; failed files last.
    assert files(queue) == NEED_ORDER
    queue.sort("needs_review", descending=True)
    assert files(queue) == NEED_ORDER[::-1]


@pytest.mark.parametrize("key, descending, expected", [
    ("file", False, list("abcdefgh")),
    ("file", True, list("hgfedcba")),
    ("confidence", False, list("cbegfahd")),  # no confidence (a failed file) last
    # Rows that tie keep the queue's order: the most in need first.
    ("label", False, list("degcahfb")),
    ("reviewed_label", True, list("hfbcegad")),
])
def test_any_column_sorts(queue, key, descending, expected):
    queue.sort(key, descending)
    assert [f[0] for f in files(queue)] == expected


def test_filters_by_label_reason_and_state(queue):
    queue.set_filters(label="park")
    assert files(queue) == ["c.mp4", "a.mp4", "h.mp4"]
    queue.set_filters(reason="branches disagree")
    assert files(queue) == ["f.mp4", "b.mp4"]
    queue.set_filters(reason="unfamiliar")
    assert files(queue) == ["f.mp4"]
    queue.set_filters(reason=ANY_REASON)
    assert files(queue) == ["f.mp4", "b.mp4", "c.mp4", "e.mp4"]
    queue.set_filters(reason=NO_REASON)
    assert files(queue) == ["g.mp4", "a.mp4", "h.mp4"]
    queue.set_filters(state=TO_REVIEW)
    assert files(queue) == ["f.mp4", "b.mp4", "c.mp4", "e.mp4", "g.mp4", "a.mp4"]
    queue.set_filters(state=REVIEWED)
    assert files(queue) == ["h.mp4"]
    queue.set_filters(label="bus", reason="low confidence", state=TO_REVIEW)
    assert files(queue) == ["e.mp4"]
    queue.set_filters(state=ALL)
    assert files(queue) == NEED_ORDER
    assert queue.counts() == {TO_REVIEW: 6, REVIEWED: 1, "failed": 1, "shown": 8, "total": 8}
    with pytest.raises(ValueError):
        queue.set_filters(state="later")


def test_each_decision_is_in_the_csv_at_once_with_every_column(queue, labels):
    queue.accept(queue.index_of("f.mp4"))
    queue.decide(queue.index_of("b.mp4"), "park")
    header, rows = read_csv(labels)
    assert header == list(HEADER)
    assert [r["file"] for r in rows] == [f"{c}.mp4" for c in "abcdefgh"]  # CSV order kept
    by_file = {r["file"]: r for r in rows}
    assert by_file["f.mp4"]["reviewed_label"] == "tram"
    assert by_file["b.mp4"]["reviewed_label"] == "park"
    # Everything else is as it was: the reasons, the branches, the failure, the old review.
    assert by_file["b.mp4"]["needs_review"] == "low confidence;branches disagree"
    assert by_file["b.mp4"]["visual_label"] == "park" and by_file["b.mp4"]["label"] == "tram"
    assert by_file["d.mp4"]["error"] == "cannot decode"
    assert by_file["h.mp4"]["reviewed_label"] == "park"
    assert by_file["a.mp4"]["reviewed_label"] == ""
    # Undecided again, and refusals.
    queue.decide(queue.index_of("b.mp4"), "")
    assert {r["file"]: r for r in read_csv(labels)[1]}["b.mp4"]["reviewed_label"] == ""
    with pytest.raises(AvscError, match="no answer to review"):
        queue.accept(queue.index_of("d.mp4"))
    with pytest.raises(ValueError, match="not one of the classes"):
        queue.decide(0, "airport")


def test_a_decision_that_cannot_be_written_leaves_the_csv_whole(queue, labels, monkeypatch):
    before = labels.read_bytes()

    def crash(*args):
        raise OSError(28, "No space left on device")

    # The temporary file is written, then the rename fails: the CSV is untouched.
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(AvscError, match="cannot save the decision"):
        queue.accept(0)
    monkeypatch.undo()
    assert labels.read_bytes() == before
    assert queue.rows[0].reviewed_label == ""  # not kept as decided either
    assert sorted(p.name for p in labels.parent.iterdir()) == [
        ".labels.csv.lock", "labels.csv", "labels.params.json"]  # no temporary file left


def test_the_open_queue_holds_the_csv_against_labelling_runs(labels):
    queue = ReviewQueue.open(labels)
    # What avsc label takes before writing: refused while the queue is open.
    with pytest.raises(OutputBusyError, match="is being written by"):
        OutputLock(labels).acquire()
    queue.close()
    # And the other way round: a run in progress keeps the review out, saying why.
    with OutputLock(labels), pytest.raises(OutputBusyError,
                                           match="review it once that run has finished"):
        ReviewQueue.open(labels)
    ReviewQueue.open(labels).close()


def test_refusals_name_the_file(tmp_path):
    with pytest.raises(AvscError, match="no such labels CSV"):
        ReviewQueue.open(tmp_path / "missing.csv")
    other = tmp_path / "other.csv"
    other.write_text("path,label\nx.mp4,park\n")
    with pytest.raises(AvscError, match="not a labels CSV"):
        ReviewQueue.open(other)
    # A refused CSV is not left locked.
    with OutputLock(other):
        pass


def test_the_next_row_to_review_and_where_a_review_resumes(queue):
    index = queue.index_of
    assert queue.next_to_review() == index("f.mp4")
    assert queue.next_to_review(index("c.mp4")) == index("e.mp4")
    # Reviewed and failed rows are passed over; after the last one it goes round.
    assert queue.next_to_review(index("a.mp4")) == index("f.mp4")
    queue.accept(index("f.mp4"))
    queue.accept(index("b.mp4"))
    assert queue.next_to_review(index("b.mp4")) == index("c.mp4")
    # Only the rows shown count, but a decided row filtered out still keeps its place.
    queue.set_filters(state=TO_REVIEW)
    assert queue.position(index("b.mp4")) is None
    assert queue.next_to_review(index("b.mp4")) == index("c.mp4")
    queue.set_filters(label="bus")
    assert queue.next_to_review(index("b.mp4")) == index("e.mp4")
    for name in ("c.mp4", "e.mp4", "g.mp4", "a.mp4"):
        queue.accept(index(name))
    queue.set_filters()
    assert queue.next_to_review(index("a.mp4")) is None


def test_the_source_gives_classes_in_the_models_order_folder_and_minimum(queue, tmp_path):
    assert queue.classes == ("tram", "park", "bus")
    assert [queue.keyed_class(n) for n in (1, 2, 3, 4, 0)] == ["tram", "park", "bus", None,
                                                                None]
    assert queue.source.folder == tmp_path / "media"
    assert queue.media_path(0) == tmp_path / "media" / "a.mp4"
    assert queue.source.min_confidence == 0.7
    assert queue.source.model is None  # the recorded model is gone


def test_without_parameters_the_labels_are_the_classes(tmp_path):
    path = tmp_path / "bare.csv"
    rows = [LabelRow("x.mp4", "tram", 0.5), LabelRow("y.mp4", "bus", 0.6, reviewed_label="park")]
    write_rows(path, rows)
    source = labels_source(path, rows)
    assert source.classes == ("bus", "park", "tram")
    assert source.folder == tmp_path and source.min_confidence is None


def test_threshold_from_evidence_on_hand_made_rows():
    confidences = [0.30, 0.45, 0.60, 0.70, 0.80, 0.85, 0.90, 0.95, 0.97, 0.99]
    correct = [False, False, True, False, True, True, True, True, True, True]
    thresholds, accuracy, counts = accuracy_at_or_above(confidences, correct)
    assert list(thresholds) == sorted(confidences)
    assert list(counts) == list(range(10, 0, -1))
    assert accuracy[0] == pytest.approx(0.7) and accuracy[3] == pytest.approx(6 / 7)
    assert accuracy[4] == 1.0
    assert suggest_threshold(confidences, correct, 0.95) == 0.80
    assert suggest_threshold(confidences, correct, 0.85) == 0.60  # 7 of 8 right
    assert suggest_threshold(confidences, correct, 0.70) == 0.30
    # Not monotonic: at or above 0.7 one answer of two is right, yet at or above 0.6 two
    # of three are: the lower threshold reaches 2/3.
    assert suggest_threshold([0.6, 0.7, 0.8], [True, False, True], 2 / 3) == 0.6
    assert suggest_threshold([0.6, 0.7, 0.8], [True, False, False], 0.9) is None
    assert suggest_threshold([], [], 0.95) is None
    # Ties share a threshold: both answers at 0.5 are in or out together.
    assert suggest_threshold([0.5, 0.5, 0.9], [True, False, True], 0.9) == 0.9
    with pytest.raises(ValueError, match="precision"):
        suggest_threshold(confidences, correct, 1.5)
    with pytest.raises(ValueError, match="confidences but"):
        accuracy_at_or_above([0.5], [True, False])


def test_the_evidence_is_the_reviewed_rows(queue):
    queue.accept(queue.index_of("f.mp4"))  # 0.91, right
    queue.decide(queue.index_of("b.mp4"), "park")  # 0.55, wrong
    assert sorted(zip(*queue.evidence())) == [(0.55, False), (0.91, True), (0.99, True)]


def test_exports_reviewed_only_and_reviewed_plus_confident(queue, labels, tmp_path):
    queue.decide(queue.index_of("b.mp4"), "park")
    reviewed = tmp_path / "exports" / "reviewed.csv"
    assert queue.export(reviewed) == 2
    header, rows = read_csv(reviewed)
    assert header == list(HEADER)
    assert [(r["file"], r["reviewed_label"]) for r in rows] == [("b.mp4", "park"),
                                                                ("h.mp4", "park")]
    # Confident: at or above the threshold and no reason; never a failed file.
    confident = tmp_path / "exports" / "confident.csv"
    assert queue.export(confident, threshold=0.8) == 4
    _, rows = read_csv(confident)
    assert [(r["file"], r["reviewed_label"]) for r in rows] == [
        ("a.mp4", ""), ("b.mp4", "park"), ("g.mp4", ""), ("h.mp4", "park")]
    assert [r.file for r in export_rows(queue.rows, 0.85)] == ["a.mp4", "b.mp4", "h.mp4"]
    # The export knows its files and model as the reviewed CSV does.
    params = json.loads((tmp_path / "exports" / "confident.params.json").read_text())
    assert params["labels"] == "confident.csv" and params["classes"] == CLASSES
    assert params["exported"] == {"from": str(labels), "threshold": 0.8, "rows": 4}
    assert ReviewQueue.open(confident).source.folder == tmp_path / "media"
    with pytest.raises(AvscError, match="is the CSV under review"):
        queue.export(labels)
    assert not list((tmp_path / "exports").glob(".*.tmp"))


def test_the_settings_remember_where_the_review_stopped(tmp_path, labels):
    settings = AppSettings.load(tmp_path / "gui.json")
    settings.remember_review(labels, "b.mp4")
    assert AppSettings.load(tmp_path / "gui.json").review == {"csv": str(labels),
                                                              "file": "b.mp4"}
    settings.remember_review(None)
    assert AppSettings.load(tmp_path / "gui.json").review == {}
    (tmp_path / "gui.json").write_text(json.dumps({"review": "damaged"}))
    assert AppSettings.load(tmp_path / "gui.json").review == {}
