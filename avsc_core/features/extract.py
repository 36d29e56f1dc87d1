"""From a segment's audio to the three networks' inputs.

One STFT serves MEL and GAM; the CQT keeps its own per-octave filters (see
:mod:`avsc_core.features.cqt`). All frames are aligned: frame ``t`` of every kind is
centred on the same instant, so the three spectrograms of a segment line up.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from avsc_core.blas import one_blas_thread
from avsc_core.config import FEATURE_KINDS, FeatureConfig
from avsc_core.features.cqt import ConstantQ
from avsc_core.features.deltas import network_input
from avsc_core.features.filterbanks import gammatone_filters, mel_filters
from avsc_core.features.stft import magnitude_spectrogram


class FeatureExtractor:
    """Computes MEL, GAM and CQT spectrograms (with deltas) for audio at one rate.

    Parameters
    ----------
    config : FeatureConfig
        Framing, bins and scaling.
    sample_rate : int
        Rate of the audio that will be passed in (Hz).
    """

    def __init__(self, config: FeatureConfig | None = None, sample_rate: int = 32000):
        self.config = config or FeatureConfig()
        self.sample_rate = sample_rate

    @cached_property
    def _cqt(self) -> ConstantQ:
        c = self.config
        return ConstantQ(
            self.sample_rate, c.hop_length, c.cqt_fmin, c.n_bins, c.cqt_bins_per_octave
        )

    def _cqt_offset(self) -> int:
        # A non-centred STFT frame t is centred on t * hop + n_fft / 2; the CQT frame k on
        # k * hop. Shift the CQT so both describe the same instants.
        if self.config.center:
            return 0
        return int(round(self.config.n_fft / 2 / self.config.hop_length))

    def spectrograms(
        self, audio: np.ndarray, kinds: tuple[str, ...] = FEATURE_KINDS
    ) -> dict[str, np.ndarray]:
        """Linear-magnitude spectrograms of ``audio`` ``(channels, samples)``.

        Returns
        -------
        dict
            kind -> float32 ``(channels, bins, frames)``, bins from low to high frequency.
            MEL is a power spectrogram (as ``librosa.feature.melspectrogram``), GAM and
            CQT are magnitudes (as ``fft_gtgram`` and ``librosa.cqt``).
        """
        unknown = set(kinds) - set(FEATURE_KINDS)
        if unknown:
            raise ValueError(f"unknown feature kind(s) {sorted(unknown)}; use {FEATURE_KINDS}")
        c = self.config
        audio = np.asarray(audio, np.float32)
        n_frames = c.n_frames(audio.shape[-1])
        out: dict[str, np.ndarray] = {}
        if "mel" in kinds or "gam" in kinds:
            magnitude = magnitude_spectrogram(audio, c)
            with one_blas_thread():  # see avsc_core.blas: less CPU, the same on any machine
                if "mel" in kinds:
                    weights = mel_filters(self.sample_rate, c.n_fft, c.n_bins, c.mel_fmin,
                                          c.mel_fmax)
                    power = magnitude * magnitude
                    out["mel"] = np.stack([weights @ channel.T for channel in power])
                if "gam" in kinds:
                    weights = gammatone_filters(self.sample_rate, c.n_fft, c.n_bins, c.gam_fmin)
                    out["gam"] = np.matmul(magnitude, weights.T).swapaxes(-1, -2)
        if "cqt" in kinds:
            offset = self._cqt_offset()
            out["cqt"] = self._cqt(audio)[..., offset : offset + n_frames]
        return {k: out[k] for k in kinds}

    def log_compress(self, spectrogram: np.ndarray) -> np.ndarray:
        return np.log(spectrogram + self.config.log_offset, dtype=np.float32)

    def log_spectrograms(
        self, audio: np.ndarray, kinds: tuple[str, ...] = FEATURE_KINDS
    ) -> dict[str, np.ndarray]:
        """Log spectrograms of one segment, before deltas: kind -> float32
        ``(channels, bins, frames)`` (``(2, 128, 309)`` for 10 s of stereo at 32 kHz)."""
        return {k: self.log_compress(s) for k, s in self.spectrograms(audio, kinds).items()}

    def features(
        self, audio: np.ndarray, kinds: tuple[str, ...] = FEATURE_KINDS
    ) -> dict[str, np.ndarray]:
        """Network inputs for one segment: kind -> float32 ``(bins, frames, channels)``.

        With the default settings and 10 s of stereo audio at 32 kHz each is
        ``(128, 305, 6)``: log spectrograms of the left and right channels, their deltas,
        then their delta-deltas.
        """
        return {
            kind: network_input(log_spec, self.config.deltas)
            for kind, log_spec in self.log_spectrograms(audio, kinds).items()
        }

    def frequencies(self, kind: str) -> np.ndarray:
        """Centre frequency (Hz) of each bin of ``kind``, ascending."""
        c = self.config
        if kind == "mel":
            import librosa

            return librosa.mel_frequencies(
                c.n_bins + 2, fmin=c.mel_fmin, fmax=c.mel_fmax or self.sample_rate / 2
            )[1:-1]
        if kind == "gam":
            from avsc_core.features.filterbanks import gammatone_centre_frequencies

            return gammatone_centre_frequencies(self.sample_rate, c.n_bins, c.gam_fmin)
        if kind == "cqt":
            return c.cqt_fmin * 2.0 ** (np.arange(c.n_bins) / c.cqt_bins_per_octave)
        raise ValueError(f"unknown feature kind {kind!r}")

    def frame_times(self, n_frames: int, with_deltas: bool | None = None) -> np.ndarray:
        """Centre time (s) of each output frame, relative to the segment start."""
        c = self.config
        first = 0.0 if c.center else c.n_fft / 2
        skip = 2 if (c.deltas if with_deltas is None else with_deltas) else 0
        return (first + (np.arange(n_frames) + skip) * c.hop_length) / self.sample_rate
