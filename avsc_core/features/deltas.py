"""Delta and delta-delta channels by valid central differences."""

from __future__ import annotations

import numpy as np


def central_difference(x: np.ndarray) -> np.ndarray:
    """``(x[t + 1] - x[t - 1]) / 2`` along the last axis; one frame shorter at each end."""
    return (x[..., 2:] - x[..., :-2]) * 0.5


def stack_with_deltas(spec: np.ndarray) -> np.ndarray:
    """Append deltas and delta-deltas to a ``(..., channels, bins, frames)`` log spectrogram.

    Deltas lose one frame at each end and delta-deltas one more, so the static and delta
    parts are cropped to the delta-deltas' central ``frames - 4`` frames. Leading axes
    (segments) are kept.

    Returns
    -------
    numpy.ndarray
        float32 ``(..., bins, frames - 4, 3 * channels)``: the channels, then their deltas,
        then their delta-deltas (for stereo: L, R, dL, dR, ddL, ddR).
    """
    delta = central_difference(spec)
    delta2 = central_difference(delta)
    stacked = np.concatenate([spec[..., 2:-2], delta[..., 1:-1], delta2], axis=-3)
    return np.ascontiguousarray(np.moveaxis(stacked, -3, -1), dtype=np.float32)


def network_input(log_spec: np.ndarray, deltas: bool) -> np.ndarray:
    """The audio networks' input from ``(..., channels, bins, frames)`` log spectrograms:
    float32 ``(..., bins, frames', channels')``, with deltas when asked for.

    Extraction and the feature cache (which stores only the log spectrograms) both go
    through here, so a cached input is computed exactly as a fresh one.
    """
    if deltas:
        return stack_with_deltas(log_spec)
    return np.ascontiguousarray(np.moveaxis(log_spec, -3, -1), dtype=np.float32)
