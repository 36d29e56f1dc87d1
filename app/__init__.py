"""The avsc desktop application (PySide6 + pyqtgraph).

Qt-free modules here hold what the views need to decide (:mod:`app.results`,
:mod:`app.training`, :mod:`app.preview`, :mod:`app.settings`...) and the worker processes
(:mod:`app.jobs`, :mod:`app.child`); the widgets live in :mod:`app._qt`. All model and
media logic is :mod:`avsc_core`'s: this package only presents it.
"""
