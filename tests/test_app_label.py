"""Batch labelling in the app (pytest-qt, offscreen): live rows, a bad file, resume."""

from __future__ import annotations

import csv
import json
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from conftest import write_media  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from app._qt.main_window import LABEL_TAB, MainWindow  # noqa: E402
from app.settings import AppSettings  # noqa: E402


@pytest.mark.slow
def test_labelling_a_folder_with_a_bad_file(qtbot, trained_tiny_model, tmp_path):
    folder = tmp_path / "clips"
    write_media(folder / "a-park.mp4", seconds=1.0, tone_hz=300.0, frame_colour=(20, 160, 40))
    write_media(folder / "b-sound.wav", seconds=1.0, video=False, audio_codec="pcm_s16le")
    (folder / "c-broken.mp4").write_bytes(b"not a video at all" * 50)

    window = MainWindow(AppSettings.load())
    qtbot.addWidget(window)
    window.show()
    window.set_model(str(trained_tiny_model))
    window.tabs.setCurrentIndex(LABEL_TAB)
    view = window.label_view
    view.set_folder(str(folder))
    out_csv = folder / "labels.csv"
    assert view.csv_edit.text() == str(out_csv)
    assert view.model_edit.text() == str(trained_tiny_model)
    assert view.fps_spin.text() == "the model's"
    view.fps_spin.setValue(1.0)  # half the model's frames a second

    with qtbot.waitSignal(view.labelling_done, timeout=180_000) as done:
        qtbot.mouseClick(view.start_button, Qt.MouseButton.LeftButton)
        assert view.running and not view.start_button.isEnabled()
    assert done.args == ["result"], view.banner.text()
    shown = {view.table.item(r, 0).text(): [view.table.item(r, c).text() for c in range(7)]
             for r in range(view.table.rowCount())}
    assert sorted(shown) == ["a-park.mp4", "b-sound.wav", "c-broken.mp4"]
    broken = shown["c-broken.mp4"]
    assert broken[1] == "" and broken[6]  # no label, and the reason
    assert shown["a-park.mp4"][1] in ("park", "tram") and shown["a-park.mp4"][6] == ""
    assert shown["b-sound.wav"][4] == ""  # no pictures: no visual label
    assert view.status.text().startswith("Done: 2 labelled, 1 failed")
    assert view.start_button.isEnabled() and view.open_button.isEnabled()
    with open(out_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["file"] for r in rows] == ["a-park.mp4", "b-sound.wav", "c-broken.mp4"]
    assert rows[2]["error"] == broken[6]
    params = json.loads((folder / "labels.params.json").read_text())
    assert params["frames_per_second"] == 1.0

    # Starting again over the same CSV needs Resume: said at once, nothing started.
    qtbot.mouseClick(view.start_button, Qt.MouseButton.LeftButton)
    assert not view.running and "already exists" in view.banner.text()
    # With Resume the earlier rows are shown and kept; there is nothing left to do.
    view.resume_check.setChecked(True)
    with qtbot.waitSignal(view.labelling_done, timeout=180_000) as done:
        qtbot.mouseClick(view.start_button, Qt.MouseButton.LeftButton)
    assert done.args == ["result"], view.banner.text()
    assert view.table.rowCount() == 3
    assert "3 from before" in view.status.text()
