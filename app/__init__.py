"""The avsc desktop application (PySide6 + pyqtgraph). All model and media logic lives in
:mod:`avsc_core`; this package only presents it."""
