"""The Qt widgets of the app. Everything here presents; :mod:`avsc_core` computes."""
