"""A synthetic audio-visual scene dataset for demos and tests.

``generate_sample_dataset`` writes mp4 clips (H.264 + stereo AAC) in the ``folders``
layout. Classes share sounds or looks on purpose (see :mod:`avsc_core.sampledata.scenes`
for the pairing table), so that audio alone, vision alone and their fusion score
differently, as on real scenes.
"""

from avsc_core.sampledata.generate import (
    DEFAULT_CLASSES,
    DEFAULT_PER_CLASS,
    DEFAULT_SECONDS,
    ClipFormat,
    generate_sample_dataset,
    write_clip,
)
from avsc_core.sampledata.scenes import CLASS_ORDER, SCENES

__all__ = [
    "CLASS_ORDER",
    "DEFAULT_CLASSES",
    "DEFAULT_PER_CLASS",
    "DEFAULT_SECONDS",
    "SCENES",
    "ClipFormat",
    "generate_sample_dataset",
    "write_clip",
]
