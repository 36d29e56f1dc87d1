"""The training wizard: dataset, check, settings, live training, results.

Each step is a page of its own (:mod:`app._qt.train_pages`,
:class:`~app._qt.train_results.ResultsPage`); this view leads from one to the next,
shows their messages and remembers what the user chose.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QStackedWidget, QVBoxLayout, QWidget

from app._qt.tasks import Task
from app._qt.train_pages import CheckPage, DatasetPage, SettingsPage, TrainPage
from app._qt.train_results import ResultsPage
from app._qt.widgets import Banner
from app.settings import AppSettings
from app.train_form import TrainForm, form_to_config, saved_settings
from app.training import TrainJob

STEPS = ("Dataset", "Check", "Settings", "Train", "Results")
DATASET, CHECK, SETTINGS, TRAIN, RESULTS = range(5)


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
        self.evaluation: dict[str, Any] | None = None
        self.model_path: str | None = None
        self.steps = QLabel()
        self.banner = Banner()
        self.dataset_page = DatasetPage(settings)
        self.check_page = CheckPage()
        self.settings_page = SettingsPage(settings)
        self.train_page = TrainPage()
        self.results_page = ResultsPage()
        self.pages = QStackedWidget()
        for page in (self.dataset_page, self.check_page, self.settings_page, self.train_page,
                     self.results_page):
            self.pages.addWidget(page)
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
        self._connect_pages()
        self.go(DATASET)

    def _connect_pages(self) -> None:
        self.check_page.failed.connect(self.banner.show_message)
        self.check_page.finished.connect(self._update_nav)
        train = self.train_page
        train.resume_button.clicked.connect(self.resume)
        train.trained.connect(self._on_trained)
        train.failed.connect(lambda message: self.banner.show_message(
            f"Training stopped: {message}"))
        train.cancelled.connect(lambda: self.banner.show_message(
            "Training cancelled. The finished epochs are saved: Resume continues from the "
            "last one.", "info"))
        train.finished.connect(self._on_finished)
        self.results_page.classify_requested.connect(self.classify_requested)
        self.results_page.again_requested.connect(lambda: self.go(DATASET))

    # ----- navigation ---------------------------------------------------------------
    @property
    def page(self) -> int:
        return self.pages.currentIndex()

    @property
    def running(self) -> bool:
        """Whether a training run is going (the dataset check does not count)."""
        return self.train_page.running

    @property
    def task(self) -> Task | None:
        """The training run's task, the last one started (the app stops it on quit)."""
        return self.train_page.task

    def go(self, page: int) -> None:
        self.pages.setCurrentIndex(page)
        self.steps.setText("  >  ".join(
            f"<b>{i + 1} {name}</b>" if i == page else f"<span style='color:gray'>{i + 1} "
            f"{name}</span>" for i, name in enumerate(STEPS)))
        if page != TRAIN:
            self.banner.clear_message()
        if page == CHECK:
            # The seed is the settings page's (the last one used until it is changed):
            # with groups of unequal size (TAU's locations) it changes the counts too.
            self.check_page.start(self.dataset_page.data, self.dataset_page.dataset_layout,
                                  **self.dataset_page.split,
                                  seed=self.settings_page.form().seed)
        if page == SETTINGS:
            self.settings_page.suggest_out(self.dataset_page.data)
        self._update_nav()

    def _update_nav(self) -> None:
        page = self.page
        self.back_button.setVisible(page in (CHECK, SETTINGS, TRAIN))
        # Back during the dataset check cancels it (a large dataset takes a while).
        self.back_button.setEnabled(not self.running)
        self.next_button.setVisible(page in (DATASET, CHECK, SETTINGS))
        self.next_button.setText("Start training" if page == SETTINGS else "Next >")
        self.next_button.setEnabled(self.check_page.usable if page == CHECK else True)

    def _back(self) -> None:
        self.check_page.cancel()
        if self.page == TRAIN:
            self.go(SETTINGS)
        elif self.page > DATASET:
            self.go(self.page - 1)

    def _next(self) -> None:
        if self.page == DATASET:
            problem = self.dataset_page.problem()
            if problem:
                self.banner.show_message(problem)
                return
            self.settings.folders["dataset"] = self.dataset_page.data
            self.settings.save()
            self.go(CHECK)
        elif self.page == CHECK:
            self.go(SETTINGS)
        elif self.page == SETTINGS:
            self.start_from_settings()

    # ----- training -----------------------------------------------------------------
    def form(self) -> TrainForm:
        """The wizard's form: the dataset page's choice and the settings page's."""
        return self.settings_page.form(self.dataset_page.data, self.dataset_page.dataset_layout,
                                       **self.dataset_page.split)

    def start_from_settings(self) -> None:
        problem = self.settings_page.problem()
        if problem:
            self.banner.show_message(problem)
            return
        form = self.form()
        config, options = form_to_config(form)
        self.settings.training = saved_settings(form)
        self.settings.save()
        self.start(TrainJob(config=config, cache_dir=self.settings.cache_dir,
                            **dataclasses.asdict(options)))

    def start(self, job: TrainJob, title: str = "Training") -> None:
        """Run ``job`` in a training process and show its progress."""
        if self.running:
            self.banner.show_message("A training run is already going; cancel it first.")
            return
        self.go(TRAIN)
        self.banner.clear_message()
        self.train_page.start(job, title)
        self._update_nav()

    def resume(self) -> None:
        """Continue the last run from its last finished epoch."""
        job = self.train_page.resumed_job()
        if job is not None:
            self.start(job)

    def _on_trained(self, payload: dict[str, Any]) -> None:
        self.model_path = payload["model"]
        self.evaluation = payload["evaluation"]
        self.model_trained.emit(self.model_path)
        self.results_page.show_evaluation(self.model_path, self.evaluation)
        self.go(RESULTS)

    def _on_finished(self, outcome: str) -> None:
        self._update_nav()
        self.training_done.emit(outcome)
