"""The training wizard (pytest-qt, offscreen): tiny preset, cancel, resume, a crash."""

from __future__ import annotations

import os
import signal

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from test_app_classify import GapMeter  # noqa: E402

from app._qt.main_window import TRAIN_TAB, MainWindow  # noqa: E402
from app._qt.train_view import RESULTS, SETTINGS  # noqa: E402
from app.settings import AppSettings  # noqa: E402
from app.train_form import form_to_config  # noqa: E402
from app.training import TrainJob  # noqa: E402
from avsc_core.train import TrainConfig  # noqa: E402

pytestmark = pytest.mark.slow

STALL_LIMIT_S = 1.0


@pytest.fixture
def window(qtbot):
    win = MainWindow(AppSettings.load())
    qtbot.addWidget(win)
    win.show()
    win.tabs.setCurrentIndex(TRAIN_TAB)
    return win


def click(qtbot, button):
    assert button.isVisible() and button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_wizard_trains_the_tiny_preset_with_cancel_and_resume(
        qtbot, window, tiny_dataset, tmp_path):
    view = window.train_view
    check, settings, train = view.check_page, view.settings_page, view.train_page
    view.dataset_page.data_edit.setText(str(tiny_dataset))
    click(qtbot, view.next_button)
    # The dataset check: class counts per split.
    qtbot.waitUntil(view.next_button.isEnabled, timeout=30_000)
    assert check.counts_table.rowCount() == 2
    counts = {check.counts_table.verticalHeaderItem(r).text():
              int(check.counts_table.item(r, 3).text()) for r in range(2)}
    assert counts == {"park": 5, "tram": 5}
    assert check.problems.toPlainText() == "No problems found."
    click(qtbot, view.next_button)
    assert view.page == SETTINGS
    settings.preset_combo.setCurrentText("tiny")
    for name, box in settings.backbone_checks.items():
        box.setChecked(name in ("aud-mel", "vis-inc"))
    settings.phase1_spin.setValue(2)
    settings.phase2_spin.setValue(2)
    settings.batch_spin.setValue(8)
    out = tmp_path / "model"
    settings.out_edit.setText(str(out))

    meter = GapMeter()
    click(qtbot, view.next_button)  # Start training
    assert not view.back_button.isEnabled()
    qtbot.waitUntil(lambda: any(c.epochs for c in train.training.curves.values()),
                    timeout=180_000)
    with qtbot.waitSignal(view.training_done, timeout=60_000) as done:
        click(qtbot, train.cancel_button)
    assert done.args == ["cancelled"]
    assert view.banner.kind == "info" and "Resume" in view.banner.text()
    assert train.resume_button.isVisible() and not train.cancel_button.isEnabled()
    finished_before = {s: list(c.epochs) for s, c in train.training.curves.items() if c.epochs}

    with qtbot.waitSignal(view.training_done, timeout=300_000) as done:
        click(qtbot, train.resume_button)
    gap = meter.stop()
    assert done.args == ["result"], view.banner.text()
    # The resumed run kept the finished epochs and trained the rest.
    curves = train.training.curves
    for stage, epochs in finished_before.items():
        assert curves[stage].epochs[: len(epochs)] == epochs
    assert curves["phase1:aud-mel"].epochs == [1, 2]
    assert curves["phase1:vis-inc"].epochs == [1, 2]
    assert curves["phase2:fused"].epochs == [1, 2]
    # Decoding or a network on the GUI thread stalls it for seconds; a loaded 2-core
    # machine's scheduling alone reaches a few hundred milliseconds.
    assert gap < STALL_LIMIT_S, f"the event loop stalled for {gap * 1000:.0f} ms"

    # Results: saved, made the current model, confusion per branch with its clips.
    assert view.page == RESULTS
    assert (out / "manifest.json").exists() and window.model == str(out)
    assert AppSettings.load().model == str(out)
    evaluation = view.evaluation
    fused = evaluation["branches"]["fused"]["confusion"]
    results = view.results_page
    table = results.confusion["fused"]
    assert table.rowCount() == 2 and table.columnCount() == 3
    assert [[int(table.item(i, j).text()) for j in range(2)] for i in range(2)] == fused
    row = 0 if sum(fused[0]) else 1
    col = max(range(2), key=lambda j: fused[row][j])
    results.show_cell("fused", row, col)
    assert results.cell_clips.count() == fused[row][col] > 0
    assert results.cell_clips.item(0).text().startswith(f"{evaluation['classes'][row]}/")


def test_a_training_process_that_dies_is_reported_and_the_window_recovers(
        qtbot, window, tiny_dataset, tmp_path):
    view = window.train_view
    config = TrainConfig.for_preset("tiny", phase1_epochs=1, phase2_epochs=1,
                                    backbones=("aud-mel",), batch_size=8)
    out = tmp_path / "crash"
    view.start(TrainJob(str(tiny_dataset), str(out), config))
    qtbot.waitUntil(lambda: view.train_page.training.stage is not None, timeout=120_000)
    with qtbot.waitSignal(view.training_done, timeout=30_000) as done:
        os.kill(view.task.job.pid, signal.SIGKILL)
    assert done.args == ["error"]
    message = view.banner.text()
    assert "training process stopped unexpectedly (signal 9)" in message
    assert not view.train_page.cancel_button.isEnabled() and not view.running
    # The journal was written before the crash: the run can be resumed.
    assert view.train_page.resume_button.isVisible()
    assert view.back_button.isEnabled()


def test_choosing_joint_optimisation_offers_its_settings_only(window):
    view = window.train_view
    settings = view.settings_page
    settings.preset_combo.setCurrentText("paper")
    assert settings.batch_spin.value() == 32
    settings.strategy_combo.setCurrentText("joint")
    assert settings.batch_spin.value() == 8  # a joint item is a segment with all its frames
    assert settings.joint_spin.isEnabled()
    assert not settings.phase1_spin.isEnabled() and not settings.fusion_combo.isEnabled()
    settings.joint_spin.setValue(4)
    config, _ = form_to_config(view.form())
    assert (config.strategy, config.joint_epochs) == ("joint", 4)
    settings.strategy_combo.setCurrentText("two-phase")
    assert settings.phase1_spin.isEnabled() and not settings.joint_spin.isEnabled()


def test_the_window_reopens_at_the_size_it_was_closed_at(qtbot):
    first = MainWindow(AppSettings.load())
    qtbot.addWidget(first)
    first.show()
    first.resize(760, 720)  # within the offscreen screen (800x800), which restoring fits into
    qtbot.waitUntil(lambda: first.width() == 760, timeout=5_000)
    first.close()

    second = MainWindow(AppSettings.load())
    qtbot.addWidget(second)
    second.show()
    assert (second.width(), second.height()) == (760, 720)
    second.close()


def test_wizard_trains_a_joint_model_and_shows_its_curves(qtbot, window, tiny_dataset, tmp_path):
    view = window.train_view
    view.dataset_page.data_edit.setText(str(tiny_dataset))
    click(qtbot, view.next_button)
    qtbot.waitUntil(view.next_button.isEnabled, timeout=30_000)
    click(qtbot, view.next_button)
    settings = view.settings_page
    settings.preset_combo.setCurrentText("tiny")
    settings.strategy_combo.setCurrentText("joint")
    settings.joint_spin.setValue(2)
    out = tmp_path / "joint"
    settings.out_edit.setText(str(out))
    with qtbot.waitSignal(view.training_done, timeout=300_000) as done:
        click(qtbot, view.next_button)  # Start training
    assert done.args == ["result"], view.banner.text()
    curve = view.train_page.training.curves["joint"]
    assert curve.epochs == [1, 2]
    assert all(0.0 <= a <= 1.0 for a in curve.values["accuracy"])  # the fused accuracy
    assert view.page == RESULTS and window.model == str(out)
    assert view.results_page.confusion["fused"].rowCount() == 2


def test_back_during_the_dataset_check_cancels_it(qtbot, window, tiny_dataset, monkeypatch):
    import time

    import avsc_core.media

    real_probe = avsc_core.media.probe
    probed = []

    def slow_probe(path):  # a large dataset's check, in miniature
        probed.append(path)
        time.sleep(0.3)
        return real_probe(path)

    monkeypatch.setattr(avsc_core.media, "probe", slow_probe)
    view = window.train_view
    view.dataset_page.data_edit.setText(str(tiny_dataset))
    click(qtbot, view.next_button)
    qtbot.waitUntil(lambda: len(probed) >= 1, timeout=10_000)
    click(qtbot, view.back_button)
    qtbot.waitUntil(lambda: not view.check_page.task.running, timeout=5_000)
    assert view.page == 0 and view.check_page.report is None
    assert len(probed) < 10  # it stopped before the last file


def test_the_split_shares_reach_the_check_and_the_job(qtbot, window, tiny_dataset,
                                                     monkeypatch):
    view, page = window.train_view, window.train_view.dataset_page
    page.data_edit.setText(str(tiny_dataset))
    page.val_spin.setValue(0.5)
    page.test_spin.setValue(0.5)
    view._next()  # refused: nothing would be left to train on
    assert view.page == 0 and "Split: val and test fractions leave nothing" in view.banner.text()
    page.val_spin.setValue(0.2)
    page.test_spin.setValue(0.4)
    click(qtbot, view.next_button)
    qtbot.waitUntil(view.next_button.isEnabled, timeout=30_000)
    table = view.check_page.counts_table
    counts = {table.horizontalHeaderItem(c).text(): int(table.item(0, c).text())
              for c in range(table.columnCount())}
    assert counts == {"train": 2, "val": 1, "test": 2, "total": 5}  # 5 clips a class
    click(qtbot, view.next_button)
    view.settings_page.out_edit.setText("/nowhere/model")
    jobs = []
    monkeypatch.setattr(view, "start", jobs.append)  # no training process
    view.start_from_settings()
    (job,) = jobs
    assert (job.val_fraction, job.test_fraction) == (0.2, 0.4)


def test_the_advanced_settings_reach_the_job_and_are_remembered(qtbot, window, monkeypatch):
    view = window.train_view
    settings = view.settings_page
    advanced = settings.advanced.widgets
    settings.preset_combo.setCurrentText("paper")
    paper = TrainConfig.for_preset("paper")
    assert advanced["visual_epochs"].value() == paper.visual_epochs
    assert advanced["lr_schedule"].currentText() == "cosine"
    # Joint options are greyed out for two-phase training, the warm-up for a constant rate.
    assert not advanced["joint_image_model"].isEnabled()
    assert advanced["warmup_fraction"].isEnabled()
    advanced["lr_schedule"].setCurrentText("constant")
    assert not advanced["warmup_fraction"].isEnabled()
    advanced["lr_schedule"].setCurrentText("cosine")
    advanced["visual_epochs"].setValue(4)
    advanced["patience"].setValue(3)
    advanced["audio_lr"].setValue(5e-4)
    advanced["visual_lr"].setValue(2e-5)
    advanced["warmup_fraction"].setValue(0.1)
    advanced["precision"].setCurrentText("mixed")
    advanced["jobs"].setValue(2)
    advanced["mixup_alpha"].setValue(0.0)
    assert advanced["mixup_alpha"].text() == "off"
    advanced["seed"].setValue(12345)
    advanced["fusion_lr"].setValue(3e-3)
    assert not advanced["joint_branch_weight"].isEnabled()
    settings.out_edit.setText("/nowhere/model")
    jobs = []
    monkeypatch.setattr(view, "start", jobs.append)  # no training process
    # GPUs that cannot be named are refused in the banner before anything starts.
    advanced["devices"].setText("gpu0")
    view.start_from_settings()
    assert not jobs and "GPUs 'gpu0'" in view.banner.text()
    advanced["devices"].setText(" /gpu:0,/gpu:1 ")
    view.start_from_settings()
    (job,) = jobs
    assert job.devices == "/gpu:0,/gpu:1"
    assert (job.config.preset, job.config.visual_epochs, job.config.patience,
            job.config.audio_lr, job.config.visual_lr, job.config.warmup_fraction,
            job.config.precision, job.jobs) == ("paper", 4, 3, 5e-4, 2e-5, 0.1, "mixed", 2)
    assert (job.config.mixup_alpha, job.config.seed, job.config.fusion_lr) == (0.0, 12345, 3e-3)
    assert job.out == "/nowhere/model"

    # The joint options, once joint optimisation is chosen.
    settings.strategy_combo.setCurrentText("joint")
    assert advanced["joint_image_model"].isEnabled() and not advanced["visual_epochs"].isEnabled()
    advanced["joint_image_model"].setCurrentText("inception_v3")
    advanced["joint_visual_stages"].setValue(5)
    advanced["joint_freeze_visual"].setChecked(True)
    advanced["joint_feature"].setCurrentText("gam")
    assert advanced["joint_branch_weight"].isEnabled() and not advanced["fusion_lr"].isEnabled()
    advanced["joint_branch_weight"].setValue(0.5)
    config, _ = form_to_config(view.form())
    assert (config.joint_branch_weight, config.seed) == (0.5, 12345)
    assert (config.strategy, config.joint_image_model, config.joint_visual_stages,
            config.joint_freeze_visual, config.joint_feature, config.patience) == (
        "joint", "inception_v3", 5, True, "gam", 3)

    # A new window shows the settings of the last training started.
    again = MainWindow(AppSettings.load())
    qtbot.addWidget(again)
    remembered = again.train_view.settings_page.advanced.widgets
    assert (remembered["visual_epochs"].value(), remembered["patience"].value(),
            remembered["precision"].currentText(), remembered["jobs"].value()) == (
        4, 3, "mixed", 2)
    # A preset change puts back the preset's defaults; the processes are the machine's.
    again.train_view.settings_page.preset_combo.setCurrentText("tiny")
    tiny = TrainConfig.for_preset("tiny")
    assert (remembered["visual_epochs"].value(), remembered["patience"].value(),
            remembered["lr_schedule"].currentText(), remembered["audio_lr"].value(),
            remembered["jobs"].value()) == (tiny.visual_epochs, tiny.patience,
                                            tiny.lr_schedule, tiny.audio_lr, 2)
