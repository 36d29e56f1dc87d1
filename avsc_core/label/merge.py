"""Joining the shards of one labelling run (``avsc label merge OUT.csv SHARD.csv...``).

Each shard's parameters file (:mod:`avsc_core.label.params`) says which model and
settings made it and which shard it is. The merge refuses, with one line naming the file
and the reason:

- a shard without a parameters file, one labelled without ``--shard``, or one that has
  not finished (resume it first);
- shards made with another model or other settings (folder, subfolders, segments, frame
  rate), or split into another number of shards;
- a shard index given twice, or missing;
- a file labelled in two shards, or a file of the folder in none: when the folder is
  still there it is listed again (a file added since the shards ran is named, with its
  shard), otherwise the shards' recorded counts must add up to the files they saw.

``OUT`` (rows in file order) and its own parameters file are written atomically. An
existing ``OUT`` is replaced only when it was itself written by a merge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avsc_core import __version__
from avsc_core.errors import AvscError
from avsc_core.label.csv_out import LabelRow
from avsc_core.label.discover import find_media_files
from avsc_core.label.params import (
    check_params_owner,
    now,
    params_path,
    previous_params,
    write_params,
)
from avsc_core.label.shards import Shard, shard_number
from avsc_core.label.store import LabelStore, read_labels, resolve_format
from avsc_core.locks import OutputLock
from avsc_core.outputs import check_output_file

# Settings every shard of one run shares (the rest, such as the engine, may differ).
SHARED = ("model_sha256", "folder", "recursive", "segment_seconds", "hop_seconds",
          "frames_per_second")
# Copied from the shards into the merged parameters file.
_KEPT = ("model", "model_sha256", "classes", "folder", "recursive", "segment_seconds",
         "hop_seconds", "frames_per_second")


@dataclass(frozen=True)
class MergeSummary:
    """What :func:`merge_shards` wrote."""

    out: Path
    params: Path
    shards: int
    rows: int
    labelled: int
    failed: int


@dataclass(frozen=True)
class _Part:
    path: Path
    params: dict[str, Any]
    shard: Shard
    rows: list[LabelRow]


def _read_part(path: Path) -> _Part:
    if not path.is_file():
        raise AvscError(f"{path}: file not found")
    params = previous_params(path)
    if params is None:
        raise AvscError(f"{path}: no {params_path(path).name} beside it, so which model and "
                        "settings made it is unknown")
    if not params.get("shard"):
        raise AvscError(f"{path}: not a shard (labelled without --shard)")
    shard = Shard.parse(str(params["shard"]))
    if not params.get("finished"):
        left = (params.get("counts") or {}).get("remaining", "some")
        raise AvscError(f"{path}: shard {shard} has not finished ({left} files left); "
                        "finish it with --resume first")
    return _Part(path, params, shard, read_labels(path))


def _check_same_run(parts: list[_Part]) -> None:
    first = parts[0]
    for part in parts[1:]:
        differ = [k for k in SHARED if part.params.get(k) != first.params.get(k)]
        if differ:
            what = ", ".join("the model" if k == "model_sha256" else
                             f"{k} ({_recorded(part.params, k)} here, "
                             f"{_recorded(first.params, k)} there)"
                             for k in differ)
            raise AvscError(f"{part.path}: not labelled like {first.path}: {what}")
        if part.shard.count != first.shard.count:
            raise AvscError(f"{part.path}: is shard {part.shard}, but {first.path} is shard "
                            f"{first.shard}: the folder was split in two ways")


def _recorded(params: dict[str, Any], key: str) -> object:
    # Shards of an older avsc do not record the frame rate.
    return params.get(key, "not recorded")


def _check_coverage(out: Path, parts: list[_Part]) -> None:
    by_index: dict[int, _Part] = {}
    for part in parts:
        if part.shard.index in by_index:
            raise AvscError(f"{part.path}: shard {part.shard} is also "
                            f"{by_index[part.shard.index].path}; give each shard once")
        by_index[part.shard.index] = part
    count = parts[0].shard.count
    missing = [f"{i}/{count}" for i in range(1, count + 1) if i not in by_index]
    if missing:
        raise AvscError(f"{out}: shard{'s' if len(missing) > 1 else ''} "
                        f"{', '.join(missing)} missing; give every shard's labels file")


def _check_files(parts: list[_Part]) -> tuple[dict[str, LabelRow], int]:
    """Every row by file, and the number of files of the folder; refuses doubled or
    missing files."""
    rows: dict[str, LabelRow] = {}
    where: dict[str, Path] = {}
    for part in parts:
        for row in part.rows:
            if row.file in where:
                raise AvscError(f"{part.path}: {row.file} is also labelled in "
                                f"{where[row.file]}; each file belongs to one shard")
            rows[row.file] = row
            where[row.file] = part.path
    params = parts[0].params
    folder = Path(params["folder"])
    if folder.is_dir():
        listed = [p.relative_to(folder).as_posix()
                  for p in find_media_files(folder, bool(params.get("recursive")))]
        unlabelled = [f for f in listed if f not in rows]
        if unlabelled:
            count = parts[0].shard.count
            first, more = unlabelled[0], len(unlabelled) > 1
            raise AvscError(
                f"{folder}: {len(unlabelled)} file{'s' * more} in no shard ({first}, of "
                f"shard {shard_number(first, count)}/{count}{', ...' * more}), added since "
                "the shards ran; label them with --resume on their shards"
            )
        return rows, len(listed)
    seen = {(p.params.get("counts") or {}).get("folder_files") for p in parts}
    found = sum((p.params.get("counts") or {}).get("found", 0) for p in parts)
    if len(seen) != 1 or found not in seen:
        raise AvscError(
            f"{folder}: is gone, and the shards' counts do not add up (files they saw in the "
            f"folder: {', '.join(sorted(str(s) for s in seen))}; in the shards: {found}): "
            "the folder changed between their runs"
        )
    return rows, found


def _check_out(out: Path, parts: list[_Part]) -> None:
    if any(out.resolve() == p.path.resolve() for p in parts):
        raise AvscError(f"{out}: is one of the shards; choose another OUT")
    check_output_file(out, "merged labels")
    check_output_file(params_path(out), "merged parameters")
    check_params_owner(out)
    if out.exists() and "merged_from" not in (previous_params(out) or {}):
        raise AvscError(f"{out}: already exists and is not the output of a merge; "
                        "choose another OUT")


def merge_shards(
    out: str | Path, shards: Sequence[str | Path], format: str | None = None
) -> MergeSummary:
    """Check the shards of one labelling run and join them into ``out``.

    Parameters
    ----------
    out : str or Path
        The merged labels CSV (or Parquet table, see ``format``).
    shards : sequence of str or Path
        The shards' labels files (CSV or Parquet, by suffix), in any order.
    format : {"csv", "parquet"}, optional
        ``out``'s format; by default from its suffix.

    Raises
    ------
    AvscError
        See the module's documentation; also an ``out`` that cannot be written.
    """
    out = Path(out)
    format = resolve_format(out, format)
    if not shards:
        raise AvscError(f"{out}: no shards to merge")
    parts = [_read_part(Path(p)) for p in shards]
    _check_out(out, parts)
    _check_same_run(parts)
    _check_coverage(out, parts)
    rows, folder_files = _check_files(parts)
    ordered = [rows[f] for f in sorted(rows)]
    labelled = sum(r.ok for r in ordered)
    shards_by_index = sorted(parts, key=lambda p: p.shard.index)
    params = {
        "labels": out.name,
        **{k: parts[0].params.get(k) for k in _KEPT},
        "shard": None,
        "format": format,
        "avsc_version": __version__,
        "merged_from": [
            {"labels": str(p.path.resolve()), "shard": str(p.shard),
             "engine": p.params.get("engine", "local"), "runtime": p.params.get("runtime"),
             "started": p.params.get("started"),
             "finished": p.params.get("finished"), "avsc_version": p.params.get("avsc_version")}
            for p in shards_by_index
        ],
        "started": min(str(p.params.get("started") or "") for p in parts) or None,
        "finished": now(),
        "counts": {"found": folder_files, "rows": len(ordered), "labelled": labelled,
                   "failed": len(ordered) - labelled, "remaining": 0},
    }
    with OutputLock(out):
        LabelStore(out, format).save(ordered)
        params_file = write_params(out, params)
    return MergeSummary(out, params_file, len(parts), len(ordered), labelled,
                        len(ordered) - labelled)
