"""Labelling a folder of media files into a CSV (``avsc label``).

No TensorFlow is imported by this package itself, so its decoder processes start light;
the model is loaded when :func:`label_folder` runs.
"""

from avsc_core.label.csv_out import HEADER, LabelRow, read_rows
from avsc_core.label.discover import find_media_files
from avsc_core.label.params import PARAMS_FILE, params_path
from avsc_core.label.run import LabelSummary, label_folder

__all__ = [
    "HEADER",
    "PARAMS_FILE",
    "LabelRow",
    "LabelSummary",
    "find_media_files",
    "label_folder",
    "params_path",
    "read_rows",
]
