"""Faster inference copies of a bundle's networks: ``avsc export``.

:func:`export_model` converts every backbone and fusion head of a two-phase bundle to
TFLite or ONNX and records the files, with their checksums, under ``manifest["exports"]``;
:class:`avsc_core.inference.predictor.Predictor` then runs them instead of Keras
(``runtime="auto"`` takes the fastest export the bundle has). :mod:`.formats` says which
formats and precisions exist and why, :mod:`.graph` prepares the Keras networks,
:mod:`.convert` calls the converters, :mod:`.quantize` calibrates the ONNX int8 graphs
on media files and :mod:`.write` writes and checks the files;
:mod:`avsc_core.inference.runtime` runs them (export writes, inference runs).
"""

from avsc_core.export.formats import AUTO_ORDER, FORMATS, PRECISIONS, check_supported
from avsc_core.export.write import FP32_TOLERANCE, ExportResult, export_model

__all__ = [
    "AUTO_ORDER",
    "FORMATS",
    "FP32_TOLERANCE",
    "PRECISIONS",
    "ExportResult",
    "check_supported",
    "export_model",
]
