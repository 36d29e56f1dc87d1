"""Settings that persist between sessions: current model, recent files, last folders,
the window's size, where the review of a labels CSV stopped.

Stored as JSON in the user config dir, written atomically; a damaged file is ignored
(with a log line) rather than stopping the app from starting.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from app.paths import config_dir
from avsc_core.atomic import write_json

log = logging.getLogger(__name__)

MAX_RECENT = 10
FILE_NAME = "gui.json"


@dataclass
class AppSettings:
    """What the app remembers.

    Attributes
    ----------
    model : str or None
        The current model bundle, reopened on start.
    recent_files : list of str
        Most recent first, at most :data:`MAX_RECENT`.
    folders : dict
        Last folder used per purpose (``"open"``, ``"model"``, ``"dataset"``, ``"label"``...).
    training : dict
        The training settings last used in the wizard.
    window_geometry : str or None
        The main window's size and place when it was last closed (Qt's saved geometry,
        base64).
    cache_dir : str or None
        Where training and evaluation keep decoded frames and spectrograms (``None``:
        :func:`avsc_core.features.default_cache_dir`).
    min_confidence : float or None
        Labelling flags files whose fused confidence is under it as needing review
        (``None``: no minimum; disagreeing branches and unfamiliar files are flagged
        anyway).
    review : dict
        The labels CSV under review when the app last closed (``"csv"``, absolute) and
        the file of its last decision (``"file"``, as the CSV names it), so the review
        resumes after it; empty once the review is closed.
    """

    model: str | None = None
    recent_files: list[str] = field(default_factory=list)
    folders: dict[str, str] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    window_geometry: str | None = None
    cache_dir: str | None = None
    review: dict[str, str] = field(default_factory=dict)
    min_confidence: float | None = None
    path: Path | None = field(default=None, repr=False, compare=False)

    @classmethod
    def load(cls, path: Path | None = None) -> AppSettings:
        path = path or config_dir() / FILE_NAME
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(data, dict):
                    raise TypeError("not a JSON object")
            except (OSError, ValueError, TypeError) as exc:
                log.warning("ignoring unreadable settings %s: %s", path, exc)
                data = {}
        names = {f.name for f in fields(cls)} - {"path"}
        settings = cls(**{k: v for k, v in data.items() if k in names})
        settings.path = path
        settings.recent_files = [str(p) for p in settings.recent_files][:MAX_RECENT]
        if not isinstance(settings.review, dict):
            settings.review = {}
        return settings

    def save(self) -> None:
        if self.path is None:
            return
        data = asdict(self)
        data.pop("path")
        try:
            write_json(self.path, data)
        except OSError as exc:
            log.warning("cannot save settings to %s: %s", self.path, exc)

    def add_recent(self, file: str | Path) -> None:
        file = str(Path(file).resolve())
        self.recent_files = [file] + [f for f in self.recent_files if f != file]
        del self.recent_files[MAX_RECENT:]
        self.save()

    def remember_review(self, csv: str | Path | None, file: str | None = None) -> None:
        """Remember the labels CSV under review and its last decided ``file`` (``csv=None``:
        the review was closed, nothing to resume)."""
        self.review = {} if csv is None else {"csv": str(Path(csv).resolve()),
                                              **({"file": file} if file is not None else {})}
        self.save()

    def folder(self, purpose: str, default: str | Path | None = None) -> str:
        """The last folder used for ``purpose``, or ``default`` (or home)."""
        return self.folders.get(purpose) or str(default or Path.home())

    def remember_folder(self, purpose: str, path: str | Path) -> None:
        path = Path(path)
        self.folders[purpose] = str(path if path.is_dir() else path.parent)
        self.save()
