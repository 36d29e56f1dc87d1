"""avsc core: audio-visual scene classification without any GUI dependency.

Subpackages, one per feature:

- :mod:`avsc_core.media`: decoding audio tracks and sampling video frames (PyAV).
- :mod:`avsc_core.features`: MEL, gammatone and CQT spectrograms with deltas, and their cache.
- :mod:`avsc_core.sampledata`: a synthetic audio-visual dataset for demos and tests.
- :mod:`avsc_core.cli`: the ``avsc`` command line.
"""

__version__ = "0.1.0"
