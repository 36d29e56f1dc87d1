"""Labelling a folder of media files into a CSV (``avsc label``).

No TensorFlow is imported by this package itself, so its decoder processes start light
and a bad output is refused at once; the model is loaded when :func:`label_folder` runs.
Nor is Ray: :mod:`avsc_core.label.ray_engine` is imported only by ``engine="ray"``.
"""

from avsc_core.label.csv_out import HEADER, LabelRow, read_rows
from avsc_core.label.discover import find_media_files
from avsc_core.label.journal import DIED_REASON, journal_path
from avsc_core.label.merge import MergeSummary, merge_shards
from avsc_core.label.params import LEGACY_PARAMS_FILE, PARAMS_SUFFIX, params_path
from avsc_core.label.run import ENGINES, LabelSummary, label_folder
from avsc_core.label.shards import Shard, shard_number
from avsc_core.label.store import FORMATS, read_labels

__all__ = [
    "DIED_REASON",
    "ENGINES",
    "FORMATS",
    "HEADER",
    "LEGACY_PARAMS_FILE",
    "PARAMS_SUFFIX",
    "LabelRow",
    "LabelSummary",
    "MergeSummary",
    "Shard",
    "find_media_files",
    "journal_path",
    "label_folder",
    "merge_shards",
    "params_path",
    "read_labels",
    "read_rows",
    "shard_number",
]
