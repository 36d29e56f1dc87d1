"""Filter-bank matrices mapping STFT bins to MEL and gammatone bands, built once and cached."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.sparse


@lru_cache(maxsize=8)
def mel_filters(
    sample_rate: int, n_fft: int, n_bins: int, fmin: float, fmax: float | None
) -> scipy.sparse.csr_matrix:
    """librosa's Slaney-normalised mel filter bank, float32 ``(n_bins, 1 + n_fft // 2)``.

    Sparse: each triangle covers a few STFT bins, so 98% of the dense matrix is zeros.
    """
    import librosa

    weights = librosa.filters.mel(
        sr=sample_rate, n_fft=n_fft, n_mels=n_bins, fmin=fmin, fmax=fmax, dtype=np.float32
    )
    return scipy.sparse.csr_matrix(weights)


@lru_cache(maxsize=8)
def gammatone_filters(sample_rate: int, n_fft: int, n_bins: int, fmin: float) -> np.ndarray:
    """Gammatone weights of the ``gammatone`` package, float32 ``(n_bins, 1 + n_fft // 2)``.

    These are the ERB-spaced, fourth-order gammatone magnitude responses that
    ``gammatone.fftweight.fft_gtgram`` applies to an FFT (Ellis' approximation of the
    gammatone filter bank), with centre frequencies from ``fmin`` to Nyquist, ordered
    from low to high. The ``1 / n_fft`` scaling of ``fft_gtgram`` is folded in.
    """
    from gammatone.fftweight import fft_weights

    weights, _ = fft_weights(n_fft, sample_rate, n_bins, 1, fmin, sample_rate / 2, n_fft // 2 + 1)
    weights = (weights / n_fft).astype(np.float32)
    weights.flags.writeable = False
    return weights


def gammatone_centre_frequencies(sample_rate: int, n_bins: int, fmin: float) -> np.ndarray:
    """Centre frequencies (Hz, ascending) of :func:`gammatone_filters`' bands."""
    from gammatone.filters import erb_space

    return erb_space(fmin, sample_rate / 2, n_bins)[::-1]
