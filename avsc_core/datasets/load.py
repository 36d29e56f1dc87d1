"""Choosing a layout (``--layout auto``) and loading a dataset with it."""

from __future__ import annotations

from pathlib import Path

from avsc_core.datasets.csv_layout import load_csv
from avsc_core.datasets.folders import (
    class_folders,
    describe_contents,
    folders_expected,
    load_folders,
    loose_media,
    media_files,
)
from avsc_core.datasets.tau2021 import find_meta_dir, load_tau2021
from avsc_core.datasets.types import Dataset
from avsc_core.errors import AvscError

LAYOUTS = ("folders", "csv", "tau2021")

_LAYOUT_HELP = (
    "expected one of: a folder per class (ROOT/<class name>/<video or audio files>); "
    "a CSV file with header path,label[,split]; "
    "or the TAU Urban Audio-Visual Scenes 2021 layout (meta.csv, audio/, video/, "
    "evaluation_setup/)"
)


def detect_layout(root: str | Path) -> str:
    """Tell which layout ``root`` uses.

    A ``.csv`` file is ``csv``; a folder with ``meta.csv`` (directly or in a ``*.meta``
    sub-folder) is ``tau2021``; a folder whose sub-folders hold media is ``folders``.

    Raises
    ------
    AvscError
        When ``root`` does not exist or matches none of the layouts.
    """
    root = Path(root)
    if not root.exists():
        raise AvscError(f"{root}: no such file or folder")
    if root.is_file():
        if root.suffix.lower() == ".csv":
            return "csv"
        raise AvscError(f"{root}: not a dataset; {_LAYOUT_HELP}")
    if find_meta_dir(root) is not None:
        return "tau2021"
    if any(next(media_files(folder), None) for folder in class_folders(root)):
        return "folders"
    found = describe_contents(root)
    tables = sorted(p.name for p in root.glob("*.csv"))
    if tables:
        found += f" (to use {tables[0]}, pass the CSV file itself)"
    if loose_media(root):
        # Media without class folders: the folders layout is what the user is after.
        raise AvscError(f"{root}: {found}; {folders_expected(root)}")
    raise AvscError(f"{root}: cannot tell the data layout: {found}; {_LAYOUT_HELP}")


def load_dataset(
    root: str | Path,
    layout: str = "auto",
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> Dataset:
    """Load labelled clips and their train/val/test split.

    Parameters
    ----------
    root : str or Path
        A folder (``folders``, ``tau2021``) or a CSV file (``csv``).
    layout : str
        ``"auto"``, ``"folders"``, ``"csv"`` or ``"tau2021"``.
    val_fraction, test_fraction : float
        Shares used when the data does not decide the split itself (see
        :mod:`avsc_core.datasets.splits`); ``val_fraction`` also sizes a ``val`` part
        carved from ``train``.
    seed : int
        The same seed and data always give the same split.

    Raises
    ------
    AvscError
        For any problem with the data, naming the file (and line) at fault.
    """
    root = Path(root).expanduser().absolute()
    if layout == "auto":
        layout = detect_layout(root)
    if layout not in LAYOUTS:
        raise AvscError(f"unknown layout {layout!r}; expected auto, {', '.join(LAYOUTS)}")
    if not root.exists():
        raise AvscError(f"{root}: no such file or folder")
    if layout == "csv" and not root.is_file():
        raise AvscError(f"{root}: the csv layout needs the CSV file itself, not a folder")
    loader = {"folders": load_folders, "csv": load_csv, "tau2021": load_tau2021}[layout]
    return loader(root, val_fraction, test_fraction, seed)
