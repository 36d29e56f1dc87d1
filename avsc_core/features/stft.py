"""The short-time Fourier transform shared by the MEL and gammatone spectrograms."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft

from avsc_core.config import FeatureConfig


@lru_cache(maxsize=8)
def analysis_window(n_fft: int, win_length: int) -> np.ndarray:
    """Periodic Hann window of ``win_length`` centred in ``n_fft`` samples (as librosa)."""
    n = np.arange(win_length)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_length)
    padded = np.zeros(n_fft, np.float32)
    left = (n_fft - win_length) // 2
    padded[left : left + win_length] = window
    padded.flags.writeable = False
    return padded


def frame_signal(
    audio: np.ndarray, frame_length: int, hop_length: int, n_frames: int
) -> np.ndarray:
    """``n_frames`` overlapping frames as a strided view: ``(..., n_frames, frame_length)``."""
    return np.lib.stride_tricks.sliding_window_view(audio, frame_length, axis=-1)[
        ..., : n_frames * hop_length : hop_length, :
    ]


def magnitude_spectrogram(audio: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """``|STFT|`` of ``audio`` (``(..., samples)``) as float32 ``(..., frames, 1 + n_fft // 2)``.

    Frames come first (the transpose of librosa's layout) so that applying a filter bank
    is one contiguous matrix product. Only the window's non-zero span is transformed
    (zero padded to ``n_fft``): a circular shift changes the phase, not the magnitude.
    """
    audio = np.asarray(audio, np.float32)
    if config.center:
        pad = [(0, 0)] * (audio.ndim - 1) + [(config.n_fft // 2, config.n_fft // 2)]
        audio = np.pad(audio, pad, mode="constant")
    n_frames = config.n_frames(audio.shape[-1] - (config.n_fft if config.center else 0))
    if n_frames < 1:
        raise ValueError(f"{audio.shape[-1]} samples are fewer than n_fft={config.n_fft}")
    left = (config.n_fft - config.win_length) // 2
    window = analysis_window(config.n_fft, config.win_length)[left : left + config.win_length]
    frames = frame_signal(audio[..., left:], config.win_length, config.hop_length, n_frames)
    spectrum = scipy.fft.rfft(frames * window, n=config.n_fft, axis=-1)
    return np.abs(spectrum).astype(np.float32, copy=False)
