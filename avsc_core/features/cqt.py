"""A constant-Q transform that builds its filters once.

This is librosa's recursive-downsampling CQT (``librosa.cqt``: one FFT filter basis per
octave, the signal halved between octaves with soxr), computing the same numbers. librosa
rebuilds every octave's basis on every call, which is more than half of its cost for a
10-s clip; here the bases are made in the constructor and reused for every segment, and
all channels go through each octave together.
"""

from __future__ import annotations

import numpy as np
import scipy.fft


def _count_two_factors(x: int) -> int:
    count = 0
    while x > 0 and x % 2 == 0:
        x //= 2
        count += 1
    return count


class ConstantQ:
    """Magnitude CQT with librosa's defaults (Hann filters, L1 norm, sparsity 0.01).

    Parameters
    ----------
    sample_rate : int
        Rate of the input audio (Hz).
    hop_length : int
        Hop between frames (samples); frames are centred on multiples of it.
    fmin : float
        Frequency of the lowest bin (Hz).
    n_bins : int
        Number of bins.
    bins_per_octave : int
        Bins per octave.
    """

    def __init__(
        self,
        sample_rate: int,
        hop_length: int,
        fmin: float,
        n_bins: int,
        bins_per_octave: int,
        sparsity: float = 0.01,
    ):
        import librosa

        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.n_bins = n_bins
        self.frequencies = fmin * 2.0 ** (np.arange(n_bins) / bins_per_octave)
        ratio = 2.0 ** (1.0 / bins_per_octave)
        alpha = np.full(n_bins, (ratio**2 - 1) / (ratio**2 + 1))
        lengths, cutoff = librosa.filters.wavelet_lengths(
            freqs=self.frequencies,
            sr=sample_rate,
            window="hann",
            filter_scale=1,
            gamma=0,
            alpha=alpha,
        )
        nyquist = sample_rate / 2.0
        if cutoff > nyquist:
            raise ValueError(
                f"CQT bins up to {self.frequencies[-1]:.0f} Hz exceed the Nyquist frequency "
                f"{nyquist:.0f} Hz: lower cqt_fmin or the number of bins"
            )
        self._scale = (1.0 / np.sqrt(lengths)).astype(np.float32)[:, None]
        n_octaves = int(np.ceil(n_bins / bins_per_octave))
        n_filters = min(bins_per_octave, n_bins)
        self._early = min(
            max(0, int(np.ceil(np.log2(nyquist / cutoff)) - 1) - 1),
            max(0, _count_two_factors(hop_length) - n_octaves + 1),
        )
        rate, hop = sample_rate / 2**self._early, hop_length // 2**self._early
        # Per octave, from the top: (first bin, sparse basis, n_fft, hop, halve after).
        self._octaves = []
        for i in range(n_octaves):
            top = n_bins - n_filters * i
            bottom = max(0, top - n_filters)
            basis, lengths_oct = librosa.filters.wavelet(
                freqs=self.frequencies[bottom:top],
                sr=rate,
                filter_scale=1,
                norm=1,
                pad_fft=True,
                window="hann",
                gamma=0,
                alpha=alpha[bottom:top],
            )
            n_fft = basis.shape[1]
            basis *= lengths_oct[:, None] / float(n_fft)
            fft_basis = np.fft.fft(basis, n=n_fft, axis=1)[:, : n_fft // 2 + 1]
            fft_basis = librosa.util.sparsify_rows(fft_basis, quantile=sparsity, dtype=np.complex64)
            fft_basis = (fft_basis * np.sqrt(sample_rate / rate)).tocsr()
            halve = hop % 2 == 0
            self._octaves.append((bottom, fft_basis, n_fft, hop, halve))
            if halve:
                hop //= 2
                rate /= 2.0

    def n_frames(self, n_samples: int) -> int:
        return 1 + n_samples // self.hop_length

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """``|CQT|`` of ``audio`` ``(channels, samples)``: float32 ``(channels, bins, frames)``."""
        import librosa

        y = np.asarray(audio, np.float32)
        if self._early:
            y = librosa.resample(
                y, orig_sr=2**self._early, target_sr=1, res_type="soxr_hq", scale=True
            )
        channels = y.shape[0]
        frames = self.n_frames(audio.shape[-1])
        out = np.empty((channels, self.n_bins, frames), np.float32)
        for bottom, fft_basis, n_fft, hop, halve in self._octaves:
            spectrum = _centred_stft(y, n_fft, hop)  # (channels, bins, frames)
            top = bottom + fft_basis.shape[0]
            for c in range(channels):
                response = fft_basis @ spectrum[c][:, :frames]
                out[c, bottom:top, : response.shape[1]] = np.abs(response)
            if halve:
                y = librosa.resample(y, orig_sr=2, target_sr=1, res_type="soxr_hq", scale=True)
        out *= self._scale
        return out


def _centred_stft(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Rectangular-window STFT with frames centred on multiples of ``hop`` (zero padded)."""
    padded = np.pad(y, ((0, 0), (n_fft // 2, n_fft // 2)))
    n_frames = 1 + (padded.shape[-1] - n_fft) // hop
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[
        :, : n_frames * hop : hop
    ]
    return scipy.fft.rfft(frames, axis=-1).astype(np.complex64).swapaxes(1, 2)
