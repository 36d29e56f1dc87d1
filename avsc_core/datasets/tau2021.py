"""The TAU Urban Audio-Visual Scenes 2021 development layout (DCASE 2021 Task 1B).

::

    ROOT/meta.csv                          filename_audio  filename_video  scene_label  identifier
    ROOT/audio/<scene>-<city>-<location>-<segment>.wav
    ROOT/video/<scene>-<city>-<location>-<segment>.mp4
    ROOT/evaluation_setup/fold1_train.csv      filename_audio  filename_video  scene_label
    ROOT/evaluation_setup/fold1_evaluate.csv   (same columns)
    ROOT/evaluation_setup/fold1_test.csv       (no labels; not used)

All tab-separated with a header. Some distributions put ``meta.csv`` and
``evaluation_setup/`` in ``ROOT/TAU-urban-audio-visual-scenes-2021-development.meta/``.

``fold1_train`` becomes ``train`` (with ``val`` carved out of it by recording location),
``fold1_evaluate`` becomes ``test``. Without fold files the clips are split by location
with the seeded stratified rule of :mod:`avsc_core.datasets.splits`. The recording
location (``identifier``) is each clip's group, so no location spans two splits.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

from avsc_core.datasets.splits import resolve_splits
from avsc_core.datasets.types import TAU_CLASSES, Clip, Dataset
from avsc_core.errors import AvscError

NESTED_META = "TAU-urban-audio-visual-scenes-2021-development.meta"
TRAIN_FOLD = "fold1_train.csv"
EVALUATE_FOLD = "fold1_evaluate.csv"

# How many file names a warning quotes before it only counts.
_EXAMPLES = 3


def find_meta_dir(root: Path) -> Path | None:
    """The folder holding ``meta.csv``: ``root`` itself or a ``*.meta`` sub-folder."""
    if (root / "meta.csv").is_file():
        return root
    if not root.is_dir():
        return None
    nested = [root / NESTED_META]
    nested += sorted(p for p in root.iterdir() if p.is_dir() and p.name.endswith(".meta"))
    return next((p for p in nested if (p / "meta.csv").is_file()), None)


def _read_tsv(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """Rows of a tab-separated file with a header, as dicts with their line number."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise AvscError(f"{path}: cannot read ({exc})") from exc
    reader = csv.reader(io.StringIO(text), delimiter="\t")
    header = [name.strip() for name in next(reader, [])]
    for column in required:
        if column not in header:
            raise AvscError(
                f"{path}:1: missing column '{column}' (expected tab-separated "
                f"{', '.join(required)}; found {', '.join(header) or 'nothing'})"
            )
    rows = []
    for row in reader:
        if any(cell.strip() for cell in row):
            cells = [cell.strip() for cell in row] + [""] * (len(header) - len(row))
            rows.append((reader.line_num, dict(zip(header, cells))))
    return rows


def location_of(filename: str, label: str) -> str:
    """The recording location in a TAU file name: ``airport-lisbon-1000-40000.wav``
    gives ``lisbon-1000``; an unexpected name is its own location."""
    stem = Path(filename).stem
    rest = stem[len(label) + 1 :] if stem.startswith(label + "-") else ""
    return rest.rsplit("-", 1)[0] if rest.count("-") >= 2 else stem


def _examples(names: list[str]) -> str:
    shown = ", ".join(names[:_EXAMPLES])
    return shown + (", ..." if len(names) > _EXAMPLES else "")


def load_tau2021(
    root: Path, val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0
) -> Dataset:
    """Read a TAU Urban Audio-Visual Scenes 2021 development set.

    Clips whose video (or audio) is not on disk keep the part that is, with a warning in
    :attr:`Dataset.warnings`; clips with neither are skipped.

    Raises
    ------
    AvscError
        No ``meta.csv``, a missing column, an unknown scene label (naming file and line),
        only one of the two fold files, or no listed file on disk at all.
    """
    meta_dir = find_meta_dir(root)
    if meta_dir is None:
        raise AvscError(f"{root}: no meta.csv (nor {NESTED_META}/meta.csv)")
    meta_path = meta_dir / "meta.csv"
    meta: dict[str, dict[str, str]] = {}
    for line, row in _read_tsv(meta_path, ("filename_audio", "scene_label")):
        _check_label(row["scene_label"], meta_path, line)
        meta[row["filename_audio"]] = row

    setup = next(
        (d for d in (meta_dir / "evaluation_setup", root / "evaluation_setup") if d.is_dir()),
        meta_dir / "evaluation_setup",
    )
    folds = [(setup / TRAIN_FOLD, "train"), (setup / EVALUATE_FOLD, "test")]
    present = [path.is_file() for path, _ in folds]
    warnings: list[str] = []
    if all(present):
        entries: list[tuple[dict[str, str], str]] = []
        listed: dict[str, Path] = {}
        for path, split in folds:
            for line, row in _read_tsv(path, ("filename_audio", "scene_label")):
                name = row["filename_audio"]
                if name in listed:
                    raise AvscError(f"{path}:{line}: {name} is also listed in {listed[name].name}")
                listed[name] = path
                _check_label(row["scene_label"], path, line)
                entries.append(({**meta.get(name, {}), **_nonempty(row)}, split))
        unused = len(set(meta) - set(listed))
        if unused:
            warnings.append(f"{unused} clip(s) of meta.csv are in no fold file and are not used")
    elif any(present):
        have, lack = (folds[0][0], folds[1][0]) if present[0] else (folds[1][0], folds[0][0])
        raise AvscError(f"{setup}: found {have.name} but not {lack.name}; both are needed")
    else:
        entries = [(row, "train") for row in meta.values()]

    clips, file_warnings = _pair_files(root, meta_dir, entries)
    warnings = file_warnings + warnings
    decided = all(present)
    if decided:
        warnings += _leak_warnings(clips)
    clips, notes = resolve_splits(clips, TAU_CLASSES, decided, val_fraction, test_fraction, seed)
    warnings += notes
    return Dataset(root, "tau2021", list(TAU_CLASSES), clips, warnings)


def _nonempty(row: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in row.items() if value}


def _check_label(label: str, path: Path, line: int) -> None:
    if label not in TAU_CLASSES:
        raise AvscError(
            f"{path}:{line}: unknown scene label {label!r}; TAU 2021 has {', '.join(TAU_CLASSES)}"
        )


def _pair_files(
    root: Path, meta_dir: Path, entries: list[tuple[dict[str, str], str]]
) -> tuple[list[Clip], list[str]]:
    """Clips for the listed rows, with the audio and the video found on disk."""

    def on_disk(name: str) -> Path | None:
        if not name:
            return None
        return next((p for p in (root / name, meta_dir / name) if p.is_file()), None)

    clips: list[Clip] = []
    no_audio: list[str] = []
    no_video: list[str] = []
    neither: list[str] = []
    for row, split in entries:
        audio_name, video_name = row["filename_audio"], row.get("filename_video", "")
        audio, video = on_disk(audio_name), on_disk(video_name)
        if audio is None and video is None:
            neither.append(audio_name)
            continue
        if audio is None:
            no_audio.append(audio_name)
        if video is None:
            no_video.append(video_name or f"(no video listed for {audio_name})")
        label = row["scene_label"]
        group = row.get("identifier") or location_of(audio_name, label)
        clips.append(Clip(audio, video, label, split, group))
    if not clips:
        raise AvscError(
            f"{root}: none of the {len(entries)} listed clips is on disk "
            "(expected audio/*.wav and/or video/*.mp4 next to meta.csv)"
        )
    n = len(entries)
    warnings = []
    if no_video:
        warnings.append(
            f"{len(no_video)} of {n} videos are not on disk ({_examples(no_video)}): "
            "those clips have audio only"
        )
    if no_audio:
        warnings.append(
            f"{len(no_audio)} of {n} audio files are not on disk ({_examples(no_audio)}): "
            "those clips have video only"
        )
    if neither:
        warnings.append(
            f"{len(neither)} of {n} clips have neither audio nor video on disk and are "
            f"skipped ({_examples(neither)})"
        )
    return clips, warnings


def _leak_warnings(clips: list[Clip]) -> list[str]:
    splits_of: dict[str, set[str]] = defaultdict(set)
    for clip in clips:
        splits_of[clip.group].add(clip.split)
    shared = sorted(group for group, splits in splits_of.items() if len(splits) > 1)
    if not shared:
        return []
    message = (
        f"{len(shared)} recording location(s) appear in both {TRAIN_FOLD} and "
        f"{EVALUATE_FOLD} ({_examples(shared)}): test results may be optimistic"
    )
    return [message]
