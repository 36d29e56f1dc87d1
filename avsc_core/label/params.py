"""The parameters file beside each labels CSV: how its labels were made.

``labels.csv`` gets ``labels.params.json`` (a CSV not named ``*.csv`` gets its full name
plus ``.params.json``). It names the model (its folder and the SHA-256 of its
``manifest.json``, which lists the checksum of every network file), the segment
settings and the video frame rate, the avsc version, when the run started and finished,
and the counts. ``--resume`` checks it, so a CSV is never continued with another model
or other settings, and refuses a CSV whose rows have no parameters at all (nothing tells
which model wrote them).

A shard (``--shard I/N``) records ``"shard": "I/N"`` and, in its counts, the files of
the whole folder (``folder_files``); ``label merge`` checks the shards against them.

Each CSV has its own file because several CSVs often share a folder: one ``params.json``
per folder was overwritten by the next CSV's run. Such a legacy ``params.json`` is still
read when its ``"labels"`` field names the CSV, so older runs resume.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from avsc_core import __version__
from avsc_core.atomic import write_json
from avsc_core.bundle import MANIFEST, Bundle
from avsc_core.bundle.manifest import sha256
from avsc_core.config import MediaConfig
from avsc_core.errors import AvscError

PARAMS_SUFFIX = ".params.json"
# Written by earlier versions, one per folder; read only.
LEGACY_PARAMS_FILE = "params.json"

# Settings that decide the labels: a CSV continued with other values would mix answers
# (or, for the shard, other files).
_MUST_MATCH = ("model_sha256", "folder", "segment_seconds", "hop_seconds",
               "frames_per_second", "shard")


def params_path(out_csv: str | Path) -> Path:
    """The parameters file of ``out_csv``: ``labels.csv`` -> ``labels.params.json``."""
    out_csv = Path(out_csv)
    stem = out_csv.stem if out_csv.suffix.lower() == ".csv" else out_csv.name
    return out_csv.with_name(stem + PARAMS_SUFFIX)


def now() -> str:
    """The current time, ISO 8601 in UTC to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_params(
    out_csv: Path,
    bundle: Bundle,
    media: MediaConfig,
    folder: Path,
    recursive: bool,
    jobs: int,
    *,
    shard: str | None = None,
    format: str = "csv",
    engine: str = "local",
    runtime: str | None = None,
) -> dict[str, Any]:
    """The settings part of the parameters file for a run (``shard`` as ``"I/N"``).

    ``runtime`` (what ran the networks: ``"keras"``, ``"onnx-int8"``...) is recorded, not
    checked on resume: machines with and without a GPU may label shards of one archive."""
    return {
        "labels": out_csv.name,
        "model": str(bundle.root.resolve()),
        "model_sha256": sha256(bundle.root / MANIFEST),
        "classes": bundle.classes,
        "folder": str(folder.resolve()),
        "recursive": recursive,
        "segment_seconds": media.segment_seconds,
        "hop_seconds": media.hop_seconds,
        "frames_per_second": media.frames_per_second,
        "jobs": jobs,
        "shard": shard,
        "format": format,
        "engine": engine,
        "runtime": runtime,
        "avsc_version": __version__,
    }


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def params_folder(out_csv: Path, params: Mapping[str, Any] | None) -> Path | None:
    """The labelled folder ``params`` (``out_csv``'s parameters) records, or ``None``.

    It is taken relative to the CSV's folder (an absolute one stands as it is), so that a
    CSV moved with its media still finds them.
    """
    folder = (params or {}).get("folder")
    return out_csv.parent / folder if isinstance(folder, str) and folder else None


def previous_params(out_csv: Path) -> dict[str, Any] | None:
    """The parameters an earlier run wrote for ``out_csv``, if any.

    Its own parameters file first, else a legacy ``params.json`` in its folder that names
    it (``"labels"``).
    """
    for path in (params_path(out_csv), out_csv.parent / LEGACY_PARAMS_FILE):
        data = _read(path)
        if data is not None and data.get("labels") == out_csv.name:
            return data
    return None


def check_params_owner(out_csv: Path) -> None:
    """Refuse to overwrite the parameters file of another CSV that maps to the same name.

    ``labels`` and ``labels.csv`` share ``labels.params.json``.

    Raises
    ------
    AvscError
        The parameters file names another CSV, and that CSV exists.
    """
    path = params_path(out_csv)
    owner = (_read(path) or {}).get("labels")
    if isinstance(owner, str) and owner != out_csv.name and (out_csv.parent / owner).exists():
        raise AvscError(f"{out_csv}: its parameters file {path.name} belongs to {owner} "
                        "beside it; choose another --out")


def _shown(value: object) -> object:
    return "none" if value is None else value


def check_resume(
    out_csv: Path, rows: int, previous: dict[str, Any] | None, current: dict[str, Any]
) -> None:
    """Refuse to continue ``out_csv`` when its ``rows`` may come from another model.

    Raises
    ------
    AvscError
        The CSV has rows but no parameters file, or the model, the folder, the segment
        settings, the frame rate or the shard differ from the earlier run's (a setting
        the earlier run's file does not record, written by an older avsc, is not
        checked; :func:`~avsc_core.label.run.label_folder` fills in the frame rate such a
        run used, the model's).
    """
    if previous is None:
        if rows:
            raise AvscError(
                f"{out_csv}: has {rows} rows but no {params_path(out_csv).name} beside it, "
                "so which model wrote them is unknown; put that file back or choose "
                "another --out"
            )
        return
    differ = [k for k in _MUST_MATCH if k in previous and previous[k] != current[k]]
    if differ:
        what = ", ".join(
            "the model" if k == "model_sha256"
            else f"{k} ({_shown(previous[k])} before, {_shown(current[k])} now)"
            for k in differ
        )
        raise AvscError(
            f"{out_csv}: was started with other settings: {what}; "
            "choose another --out to label with these"
        )


def write_params(out_csv: Path, data: dict[str, Any]) -> Path:
    """Write the parameters file of ``out_csv`` atomically; returns its path."""
    path = params_path(out_csv)
    write_json(path, data)
    return path
