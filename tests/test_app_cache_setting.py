"""The app's feature cache folder: chosen from the File menu, remembered, used by training
and by the evaluation that follows it."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


from app import child  # noqa: E402
from app._qt import main_window  # noqa: E402
from app._qt.main_window import MainWindow  # noqa: E402
from app.settings import AppSettings  # noqa: E402
from app.training import TrainJob  # noqa: E402
from avsc_core.train import TrainConfig  # noqa: E402


def test_the_chosen_cache_folder_is_remembered_and_given_to_training(qtbot, tmp_path,
                                                                     monkeypatch):
    window = MainWindow(AppSettings.load())
    qtbot.addWidget(window)
    chosen = tmp_path / "big disk" / "cache"
    chosen.mkdir(parents=True)
    monkeypatch.setattr(main_window.QFileDialog, "getExistingDirectory",
                        lambda *args, **kwargs: str(chosen))
    window.cache_action.trigger()
    assert AppSettings.load().cache_dir == str(chosen)
    started: list[TrainJob] = []
    monkeypatch.setattr(window.train_view, "start",
                        lambda job, title="Training": started.append(job))
    window.make_sample_model()
    assert [job.cache_dir for job in started] == [str(chosen)]


def test_the_training_process_prepares_into_the_job_s_cache(tmp_path, monkeypatch):
    seen = {}

    def train_model(data, out, config, **kwargs):
        seen["train"] = kwargs["cache_dir"]
        return tmp_path / "model"

    def clip_predictions(model, data, layout, **kwargs):
        seen["evaluate"] = kwargs["cache_dir"]
        return {}

    monkeypatch.setattr("avsc_core.train.run.train_model", train_model)
    monkeypatch.setattr("app.evaluation.clip_predictions", clip_predictions)
    job = TrainJob("data", str(tmp_path / "model"), TrainConfig.for_preset("tiny"),
                   cache_dir=str(tmp_path / "cache"))
    child.train(job, send=lambda *args: None, cancel=lambda: False)
    assert seen == {"train": str(tmp_path / "cache"), "evaluate": str(tmp_path / "cache")}
