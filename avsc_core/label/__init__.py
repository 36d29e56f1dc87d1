"""Labelling a folder of media files into a CSV (``avsc label``).

No TensorFlow is imported by this package itself, so its decoder processes start light
and a bad output is refused at once; the model is loaded when :func:`label_folder` runs.
"""

from avsc_core.label.csv_out import HEADER, LabelRow, read_rows
from avsc_core.label.discover import find_media_files
from avsc_core.label.journal import DIED_REASON, journal_path
from avsc_core.label.params import LEGACY_PARAMS_FILE, PARAMS_SUFFIX, params_path
from avsc_core.label.run import LabelSummary, label_folder

__all__ = [
    "DIED_REASON",
    "HEADER",
    "LEGACY_PARAMS_FILE",
    "PARAMS_SUFFIX",
    "LabelRow",
    "LabelSummary",
    "find_media_files",
    "journal_path",
    "label_folder",
    "params_path",
    "read_rows",
]
