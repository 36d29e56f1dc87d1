"""The manifest of a model bundle, and its validation.

A bundle is data, not code: the manifest is JSON, the networks are ``.keras`` files loaded
in safe mode (no Python lambdas, nothing unpickled), and each file's SHA-256 is checked
before loading, so a truncated copy or a swapped file is refused with a clear message.

An optional ``exports`` dict holds optimised copies of the same networks written by
``avsc export`` (:mod:`avsc_core.export`), keyed ``"<format>-<precision>"``, each file with
its checksum like the Keras files.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from avsc_core import __version__
from avsc_core.atomic import write_json
from avsc_core.config import FeatureConfig, MediaConfig
from avsc_core.errors import AvscError

MANIFEST = "manifest.json"
FORMAT = "avsc-model"
SCHEMA_VERSION = 1
STRATEGIES = ("two-phase", "joint")


class BundleError(AvscError):
    """A model bundle is missing, incomplete, corrupt or of an unknown version."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def file_entry(root: Path, path: Path) -> dict[str, str]:
    """``{"file": relative path, "sha256": ...}`` for a file inside the bundle."""
    return {"file": path.relative_to(root).as_posix(), "sha256": sha256(path)}


def now() -> str:
    """The current UTC time as manifests record it (ISO 8601, seconds)."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def head_entries(root: Path, heads: Mapping[str, tuple[Path, Sequence[str]]]
                 ) -> dict[str, dict[str, Any]]:
    """``manifest["heads"]``: each head's inputs, file and checksum, from
    ``{head: (its file inside root, the backbones it reads)}``."""
    return {name: {"inputs": list(inputs), **file_entry(root, Path(path))}
            for name, (path, inputs) in heads.items()}


def stamped(fields: Mapping[str, Any], created: str | None = None) -> dict[str, Any]:
    """A manifest of ``fields`` (plain values, in their order) after the format, schema
    and program version it is written in and its creation time (now unless ``created``)."""
    return {"format": FORMAT, "schema_version": SCHEMA_VERSION,
            "avsc_version": __version__, "created": created or now(), **fields}


def write_manifest(root: Path, manifest: Mapping[str, Any]) -> None:
    """Write ``manifest`` into bundle folder ``root``, atomically: a reader sees the old
    manifest or the new one, never part of one."""
    write_json(Path(root) / MANIFEST, dict(manifest))


def _require(data: dict, key: str, kind: type, where: Path) -> Any:
    if key not in data:
        raise BundleError(where, f"manifest has no '{key}'")
    if not isinstance(data[key], kind):
        raise BundleError(where, f"manifest '{key}' should be a {kind.__name__}")
    return data[key]


def read_manifest(root: str | Path) -> dict[str, Any]:
    """Read and validate ``root/manifest.json`` (structure only, not the files)."""
    root = Path(root)
    if not root.exists():
        raise BundleError(root, "model not found")
    if not root.is_dir():
        raise BundleError(root, "a model is a folder with a manifest.json, not a file")
    path = root / MANIFEST
    if not path.exists():
        partial = (root / "training" / "state.json").exists()
        reason = (
            "training did not finish (resume it with 'avsc train ... --resume')"
            if partial
            else "not a model bundle (no manifest.json)"
        )
        raise BundleError(root, reason)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(path, f"unreadable manifest ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BundleError(path, "not an avsc model manifest")
    version = data.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION or version < 1:
        raise BundleError(
            path,
            f"model format version {version} is not supported by this avsc "
            f"(supports up to {SCHEMA_VERSION}); update avsc",
        )
    strategy = _require(data, "strategy", str, path)
    if strategy not in STRATEGIES:
        raise BundleError(path, f"unknown training strategy {strategy!r}")
    classes = _require(data, "classes", list, path)
    if not classes or not all(isinstance(c, str) and c for c in classes):
        raise BundleError(path, "manifest 'classes' must be a non-empty list of names")
    if len(set(classes)) != len(classes):
        raise BundleError(path, "manifest 'classes' has duplicates")
    for key, settings in (("media", MediaConfig), ("features", FeatureConfig)):
        try:
            settings.from_dict(_require(data, key, dict, path))
        except (TypeError, ValueError) as exc:
            raise BundleError(path, f"manifest '{key}' settings are invalid: {exc}") from None
    backbones = _require(data, "backbones", list, path)
    heads = _require(data, "heads", dict, path)
    for entry in [*backbones, *heads.values(), *statistics_entries(data)]:
        _check_file_entry(root, path, entry)
    exports = data.get("exports", {})
    if not isinstance(exports, dict):
        raise BundleError(path, "manifest 'exports' should be a dict")
    for key, export in exports.items():
        _check_export(root, path, key, export)
    return data


def statistics_entries(data: dict[str, Any]) -> list[Any]:
    """The file entries of the unfamiliarity score's statistics (none in older bundles)."""
    unfamiliar = data.get("unfamiliar") or {}
    backbones = unfamiliar.get("backbones") if isinstance(unfamiliar, dict) else None
    return list(backbones.values()) if isinstance(backbones, dict) else []


def _check_file_entry(root: Path, path: Path, entry: Any) -> None:
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        raise BundleError(path, "every model entry needs a 'file'")
    if not isinstance(entry.get("sha256"), str):
        raise BundleError(path, f"{entry.get('file')}: no checksum in the manifest")
    target = (root / entry["file"]).resolve()
    if root.resolve() not in target.parents:
        raise BundleError(path, f"{entry['file']}: points outside the bundle")


def _check_export(root: Path, path: Path, key: str, export: Any) -> None:
    """An ``exports`` entry: its format, precision and one file per backbone and head."""
    if not isinstance(export, dict):
        raise BundleError(path, f"export {key!r} should be a dict")
    for field in ("format", "precision"):
        if not isinstance(export.get(field), str):
            raise BundleError(path, f"export {key!r} has no '{field}'")
    if key != export_key(export["format"], export["precision"]):
        raise BundleError(path, f"export {key!r} does not match its format and precision")
    networks = [
        *export.get("backbones", {}).values(),
        *export.get("heads", {}).values(),
    ]
    if not networks:
        raise BundleError(path, f"export {key!r} lists no files")
    for entry in networks:
        _check_file_entry(root, path, entry)
        if not isinstance(entry.get("inputs"), dict) or not isinstance(entry.get("batch"), int):
            raise BundleError(path, f"{entry['file']}: export entry needs 'inputs' and 'batch'")


def export_key(format: str, precision: str) -> str:
    """The ``manifest["exports"]`` key of an export, e.g. ``"tflite-int8"``."""
    return f"{format}-{precision}"


def record_export(root: str | Path, key: str, entry: dict[str, Any] | None) -> dict[str, Any]:
    """Add (or with ``entry=None`` remove) ``manifest["exports"][key]``, atomically.

    Returns
    -------
    dict
        The manifest as written.
    """
    from avsc_core.atomic import write_json

    root = Path(root)
    data = read_manifest(root)
    exports = dict(data.get("exports", {}))
    if entry is None:
        exports.pop(key, None)
    else:
        exports[key] = entry
    data["exports"] = exports
    write_json(root / MANIFEST, data)
    return read_manifest(root)


def verify_file(root: Path, entry: dict[str, str]) -> Path:
    """The path of a listed file, after checking it exists and matches its checksum."""
    path = root / entry["file"]
    if not os.path.isfile(path):  # False, not OSError, for a name too long to exist
        raise BundleError(root, f"{entry['file']} is missing")
    if sha256(path) != entry["sha256"]:
        raise BundleError(root, f"{entry['file']} is corrupt or was changed (checksum mismatch)")
    return path
