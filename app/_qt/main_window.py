"""The main window: the classify, train, label and review views, menus, drops and the
model."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, QMimeData, QUrl
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
)
from PySide6.QtWidgets import QFileDialog, QMainWindow, QTabWidget, QWidget

from app._qt.classify_view import ClassifyView
from app._qt.label_view import LabelView
from app._qt.plots import configure
from app._qt.review_view import ReviewView
from app._qt.tasks import ServerClient
from app._qt.train_view import TrainView
from app.paths import log_dir, models_dir, sample_data_dir
from app.settings import AppSettings
from app.training import sample_job
from avsc_core.media import MEDIA_EXTENSIONS

log = logging.getLogger(__name__)

CLASSIFY_TAB, TRAIN_TAB, LABEL_TAB, REVIEW_TAB = range(4)
MEDIA_FILTER = "Media files ({});;All files (*)".format(
    " ".join(f"*{e}" for e in sorted(MEDIA_EXTENSIONS)))
LABELS_FILTER = "Labels CSV (*.csv);;All files (*)"


def dropped_paths(mime: QMimeData) -> list[Path]:
    """Local files and folders in a drop."""
    if not mime.hasUrls():
        return []
    return [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile() and u.toLocalFile()]


class MainWindow(QMainWindow):
    """avsc's window. ``model`` is the current model bundle folder (or None)."""

    def __init__(self, settings: AppSettings, media: ServerClient | None = None,
                 classifier: ServerClient | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        configure()
        self.settings = settings
        # Worker processes given by the caller (tests share them) are the caller's to stop.
        self.media = media or ServerClient("media", parent=self)
        self.classifier = classifier or ServerClient("classifier", parent=self)
        self._owned = [c for c, given in ((self.media, media), (self.classifier, classifier))
                       if given is None]
        self.model: str | None = None
        self.setWindowTitle("avsc - what kind of place was this shot in?")
        self.setAcceptDrops(True)
        self._make_actions()
        self.classify_view = ClassifyView(self.media, self.classifier,
                                          [self.open_model_action, self.sample_model_action])
        self.classify_view.open_button.clicked.connect(self.choose_file)
        self.train_view = TrainView(settings)
        self.train_view.model_trained.connect(self._on_model_trained)
        self.train_view.classify_requested.connect(
            lambda: self.tabs.setCurrentIndex(CLASSIFY_TAB))
        self.review_view = ReviewView(settings, self.media, self.classifier)
        self.review_view.open_button.clicked.connect(self.choose_labels)
        self.review_view.model_chosen.connect(lambda path: self.set_model(path, remember=True))
        self.label_view = LabelView(settings, in_review=self.review_view.holds)
        self.label_view.review_requested.connect(self.open_labels)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.classify_view, "Classify")
        self.tabs.addTab(self.train_view, "Train")
        self.tabs.addTab(self.label_view, "Label a folder")
        self.tabs.addTab(self.review_view, "Review labels")
        self.setCentralWidget(self.tabs)
        self._make_menus()
        self.classifier.ready.connect(
            lambda: self.statusBar().showMessage("Model engine ready", 4000))
        for client in (self.media, self.classifier):
            client.stopped.connect(lambda why: self.statusBar().showMessage(why, 8000))
        self.resize(1200, 800)
        if settings.window_geometry:
            self.restoreGeometry(QByteArray.fromBase64(settings.window_geometry.encode()))
        # A review the app was closed (or killed) in goes on where it stopped.
        if self.review_view.resume():
            self.tabs.setCurrentIndex(REVIEW_TAB)
        elif self.review_view.banner.text():  # e.g. a labelling run is writing that CSV now
            self.statusBar().showMessage(self.review_view.banner.text(), 15000)

    # ----- menus --------------------------------------------------------------------
    def _make_actions(self) -> None:
        self.open_action = QAction("&Open a file...", self)
        self.open_action.setShortcut(QKeySequence.StandardKey.Open)
        self.open_action.triggered.connect(self.choose_file)
        self.open_labels_action = QAction("Open &labels...", self)
        self.open_labels_action.setToolTip("Review a labels CSV, the least sure answers first")
        self.open_labels_action.triggered.connect(self.choose_labels)
        self.open_model_action = QAction("Open a &model...", self)
        self.open_model_action.triggered.connect(self.choose_model)
        self.sample_model_action = QAction("Make a &sample model", self)
        self.sample_model_action.setToolTip(
            "Make synthetic scenes and train a small model on them (a few minutes)")
        self.sample_model_action.triggered.connect(self.make_sample_model)
        self.cache_action = QAction("Feature &cache folder...", self)
        self.cache_action.setToolTip(
            "Where training keeps decoded frames and spectrograms (about 0.8 MB per 10-s clip)")
        self.cache_action.triggered.connect(self.choose_cache_dir)
        self.quit_action = QAction("&Quit", self)
        self.quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        self.quit_action.triggered.connect(self.close)

    def _make_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &recent")
        file_menu.addAction(self.open_labels_action)
        file_menu.addSeparator()
        file_menu.addAction(self.cache_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        model_menu = self.menuBar().addMenu("&Model")
        model_menu.addAction(self.open_model_action)
        model_menu.addAction(self.sample_model_action)
        help_menu = self.menuBar().addMenu("&Help")
        logs = help_menu.addAction("Open the log folder")
        logs.triggered.connect(
            lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(log_dir()))))
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for file in self.settings.recent_files:
            action = self.recent_menu.addAction(file)
            action.triggered.connect(lambda _=False, f=file: self.open_file(f))
        self.recent_menu.setEnabled(bool(self.settings.recent_files))

    # ----- files --------------------------------------------------------------------
    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a video or audio file",
                                              self.settings.folder("open"), MEDIA_FILTER)
        if path:
            self.open_file(path)

    def open_file(self, path: str | Path) -> None:
        """Show and classify ``path`` in the classify view."""
        self.tabs.setCurrentIndex(CLASSIFY_TAB)
        self.settings.remember_folder("open", path)
        self.settings.add_recent(path)
        self._fill_recent()
        self.classify_view.open_file(path)

    def choose_labels(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a labels CSV to review",
                                              self.settings.folder("labels"), LABELS_FILTER)
        if path:
            self.open_labels(path)

    def open_labels(self, path: str | Path) -> bool:
        """Review the labels CSV ``path`` in the review view."""
        self.tabs.setCurrentIndex(REVIEW_TAB)
        return self.review_view.open_csv(path)

    def handle_drop(self, mime: QMimeData) -> bool:
        """Open what was dropped: a media file, a labels CSV, a model folder, or a folder
        to label."""
        paths = dropped_paths(mime)
        if not paths:
            return False
        path = paths[0]
        if path.is_dir():
            if (path / "manifest.json").exists():
                self.set_model(str(path), remember=True)
            else:
                self.label_view.set_folder(str(path))
                self.tabs.setCurrentIndex(LABEL_TAB)
            return True
        if path.suffix.lower() == ".csv":
            self.open_labels(path)
        else:
            self.open_file(path)
        return True

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if dropped_paths(event.mimeData()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        if dropped_paths(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        if self.handle_drop(event.mimeData()):
            event.acceptProposedAction()

    def choose_cache_dir(self) -> None:
        """Let the user pick the feature cache folder that training and evaluation use."""
        from avsc_core.features import default_cache_dir

        current = self.settings.cache_dir or str(default_cache_dir())
        path = QFileDialog.getExistingDirectory(
            self, f"Feature cache folder (now {current})", current)
        if path:
            self.settings.cache_dir = path
            self.settings.save()
            self.statusBar().showMessage(f"Feature cache: {path}", 5000)

    # ----- model --------------------------------------------------------------------
    def choose_model(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a model (its folder)",
                                                self.settings.folder("model", models_dir()))
        if path:
            self.set_model(path, remember=True)

    def set_model(self, path: str | None, remember: bool = False) -> bool:
        """Make ``path`` the current model; a bad bundle leaves the previous one in place."""
        from avsc_core.bundle import read_manifest
        from avsc_core.errors import AvscError

        manifest = None
        if path:
            try:
                manifest = read_manifest(path)
            except AvscError as exc:
                self.classify_view.banner.show_message(f"Cannot open the model: {exc}")
                log.warning("cannot open model %s: %s", path, exc)
                return False
        self.model = path
        self.classify_view.set_model(path, manifest)
        self.label_view.set_model(path)
        self.review_view.set_model(path)
        if path:
            self.classifier.start()
        if remember:
            self.settings.model = path
            if path:
                self.settings.remember_folder("model", Path(path).parent)
            self.settings.save()
        self.statusBar().showMessage(f"Model: {path}" if path else "No model", 5000)
        return True

    def _on_model_trained(self, path: str) -> None:
        self.set_model(path, remember=True)

    def make_sample_model(self) -> None:
        """Make the sample data and train the sample model, shown in the Train tab."""
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        job = sample_job(sample_data_dir(), models_dir(), stamp, self.settings.cache_dir)
        self.tabs.setCurrentIndex(TRAIN_TAB)
        self.train_view.start(job, title="Making the sample model")

    # ----- closing ------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        self.settings.window_geometry = bytes(self.saveGeometry().toBase64().data()).decode()
        self.settings.save()
        self.classify_view.cancel(quiet=True)
        self.review_view.panel.cancel(quiet=True)
        self.review_view.shutdown()
        for view in (self.train_view, self.label_view):
            if view.running:
                log.info("stopping %s on exit", type(view).__name__)
                view.task.job.stop()
        for client in self._owned:
            client.shutdown()
        super().closeEvent(event)
