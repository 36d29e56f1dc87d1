"""Labelled datasets in the supported layouts, their splits and a pre-training check.

>>> dataset = load_dataset("data/", layout="auto", seed=0)   # doctest: +SKIP
>>> dataset.class_counts("train")                             # doctest: +SKIP
>>> print(check_dataset(dataset).format())                    # doctest: +SKIP
"""

from avsc_core.datasets.check import DatasetReport, check_dataset
from avsc_core.datasets.csv_layout import load_csv
from avsc_core.datasets.folders import load_folders
from avsc_core.datasets.load import LAYOUTS, detect_layout, load_dataset
from avsc_core.datasets.splits import assign_splits, carve_split, check_fractions
from avsc_core.datasets.tau2021 import load_tau2021
from avsc_core.datasets.types import (
    AUDIO_EXTENSIONS,
    MEDIA_EXTENSIONS,
    SPLITS,
    TAU_CLASSES,
    VIDEO_EXTENSIONS,
    Clip,
    Dataset,
    is_media_file,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "LAYOUTS",
    "MEDIA_EXTENSIONS",
    "SPLITS",
    "TAU_CLASSES",
    "VIDEO_EXTENSIONS",
    "Clip",
    "Dataset",
    "DatasetReport",
    "assign_splits",
    "carve_split",
    "check_dataset",
    "check_fractions",
    "detect_layout",
    "is_media_file",
    "load_csv",
    "load_dataset",
    "load_folders",
    "load_tau2021",
]
