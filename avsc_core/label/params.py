"""``params.json`` beside the labels CSV: how the labels were made.

It names the model (its folder and the SHA-256 of its ``manifest.json``, which lists the
checksum of every network file), the segment settings, the avsc version, when the run
started and finished, and the counts. ``--resume`` checks it, so a CSV is never continued
with another model or other segments.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from avsc_core import __version__
from avsc_core.atomic import write_json
from avsc_core.bundle import MANIFEST, Bundle
from avsc_core.bundle.manifest import sha256
from avsc_core.config import MediaConfig
from avsc_core.errors import AvscError

PARAMS_FILE = "params.json"

# Settings that decide the labels: a CSV continued with other values would mix answers.
_MUST_MATCH = ("model_sha256", "folder", "segment_seconds", "hop_seconds")


def params_path(out_csv: str | Path) -> Path:
    return Path(out_csv).parent / PARAMS_FILE


def now() -> str:
    """The current time, ISO 8601 in UTC to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_params(
    out_csv: Path, bundle: Bundle, media: MediaConfig, folder: Path, recursive: bool, jobs: int
) -> dict[str, Any]:
    """The settings part of ``params.json`` for a run."""
    return {
        "labels": out_csv.name,
        "model": str(bundle.root.resolve()),
        "model_sha256": sha256(bundle.root / MANIFEST),
        "classes": bundle.classes,
        "folder": str(folder.resolve()),
        "recursive": recursive,
        "segment_seconds": media.segment_seconds,
        "hop_seconds": media.hop_seconds,
        "jobs": jobs,
        "avsc_version": __version__,
    }


def previous_params(out_csv: Path) -> dict[str, Any] | None:
    """The ``params.json`` written for ``out_csv`` by an earlier run, if any."""
    path = params_path(out_csv)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("labels") != out_csv.name:
        return None
    return data


def check_resume(out_csv: Path, previous: dict[str, Any] | None, current: dict[str, Any]) -> None:
    """Refuse to continue ``out_csv`` with settings that would give other labels.

    Raises
    ------
    AvscError
        The model, the folder or the segment settings differ from the earlier run's.
    """
    if previous is None:
        return
    differ = [k for k in _MUST_MATCH if k in previous and previous[k] != current[k]]
    if differ:
        what = ", ".join(
            "the model" if k == "model_sha256" else f"{k} ({previous[k]} before, {current[k]} now)"
            for k in differ
        )
        raise AvscError(
            f"{out_csv}: was started with other settings: {what}; "
            "choose another --out to label with these"
        )


def write_params(out_csv: Path, data: dict[str, Any]) -> Path:
    """Write ``params.json`` beside ``out_csv`` atomically; returns its path."""
    path = params_path(out_csv)
    write_json(path, data)
    return path
