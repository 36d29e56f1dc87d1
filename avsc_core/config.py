"""Settings shared by decoding, features and models.

Both dataclasses are frozen and are saved in every model bundle, so a model always sees its
inputs computed exactly as during training. Defaults follow Pham et al. (2023), see
``PAPERS.md``: 32 kHz stereo audio, 10-s segments, 128-bin spectrograms with an 80 ms
window and a 1024-sample (32 ms) hop, giving 309 frames per segment (305 after deltas),
and 2 video frames per second at 224x224.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

FEATURE_KINDS = ("mel", "gam", "cqt")


class _Settings:
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from a dict, ignoring unknown keys (written by a newer version).

        Raises
        ------
        ValueError
            ``data`` is not a dict, or a setting has the wrong type (the dict comes from a
            file: a manifest or a journal, which may be damaged).
        """
        if not isinstance(data, dict):
            raise ValueError(f"settings must be a mapping, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        values = {k: v for k, v in data.items() if k in names}
        for name, value in values.items():
            if not _fits(value, hints[name]):
                raise ValueError(f"setting {name!r} should be {_describe(hints[name])}, "
                                 f"got {value!r:.40}")
        return cls(**values)

    def fingerprint(self) -> str:
        """A short stable hash of every setting, used in cache keys."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON ``value`` is valid for a setting annotated ``hint``."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_fits(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return (isinstance(value, int | float) and not isinstance(value, bool)
                and math.isfinite(value))
    if hint is str:
        return isinstance(value, str)
    return True  # containers are checked by the dataclass itself


def _describe(hint: Any) -> str:
    if isinstance(hint, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "text",
             type(None): "null"}
    return names.get(hint, str(hint))


@dataclass(frozen=True)
class MediaConfig(_Settings):
    """How media files are decoded and cut into segments.

    Parameters
    ----------
    sample_rate : int
        Audio is resampled to this rate (Hz).
    channels : int
        Output channels. Mono input is duplicated, more than two channels are down-mixed.
    frames_per_second : float
        Video frames sampled per second of media, by presentation timestamp.
    frame_size : int
        Sampled frames are resized to ``frame_size x frame_size`` RGB.
    segment_seconds : float
        Length of one analysis segment; 10 s as in TAU 2021.
    hop_seconds : float
        Distance between segment starts. Equal to ``segment_seconds`` for no overlap.
    min_segment_seconds : float
        A trailing part shorter than this is dropped when the media has at least one full
        segment; media shorter than one segment always gives one (padded) segment.
    """

    sample_rate: int = 32000
    channels: int = 2
    frames_per_second: float = 2.0
    frame_size: int = 224
    segment_seconds: float = 10.0
    hop_seconds: float = 10.0
    min_segment_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.sample_rate < 8000:
            raise ValueError(f"sample_rate must be at least 8000 Hz, got {self.sample_rate}")
        if self.channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {self.channels}")
        if self.segment_seconds <= 0 or self.hop_seconds <= 0:
            raise ValueError("segment_seconds and hop_seconds must be positive")
        if self.frames_per_second <= 0:
            raise ValueError("frames_per_second must be positive")

    @property
    def segment_samples(self) -> int:
        return int(round(self.segment_seconds * self.sample_rate))

    @property
    def frames_per_segment(self) -> int:
        return max(1, int(round(self.segment_seconds * self.frames_per_second)))


@dataclass(frozen=True)
class FeatureConfig(_Settings):
    """How the three spectrograms are computed.

    The paper states an 80 ms window, a 14 ms hop and a 128x309 spectrogram per 10 s; only
    ``n_fft=4096, win_length=2560, hop_length=1024, center=False`` at 32 kHz gives 309
    frames, so that is the default (set ``hop_length=448`` for the 14 ms hop).

    Parameters
    ----------
    n_fft, win_length, hop_length : int
        STFT framing shared by MEL and GAM (Hann window of ``win_length`` centred in
        ``n_fft``).
    center : bool
        Pad the signal so frames are centred on multiples of the hop (librosa's default).
    n_bins : int
        Bins of each spectrogram, ordered from low to high frequency.
    mel_fmin, mel_fmax : float
        Mel filter bank range; ``mel_fmax=None`` means Nyquist.
    gam_fmin : float
        Lowest centre frequency of the gammatone filter bank (its top is Nyquist).
    cqt_fmin : float
        Lowest CQT bin (Hz); default C1.
    cqt_bins_per_octave : int
        16 bins per octave puts 128 bins (8 octaves) between C1 and 8 kHz.
    log_offset : float
        Spectrograms are ``log(S + log_offset)``.
    deltas : bool
        Append delta and delta-delta channels (6 channels from stereo).
    """

    n_fft: int = 4096
    win_length: int = 2560
    hop_length: int = 1024
    center: bool = False
    n_bins: int = 128
    mel_fmin: float = 0.0
    mel_fmax: float | None = None
    gam_fmin: float = 50.0
    cqt_fmin: float = 32.703195662574764
    cqt_bins_per_octave: int = 16
    log_offset: float = 1e-8
    deltas: bool = True

    def __post_init__(self) -> None:
        if self.win_length > self.n_fft:
            raise ValueError("win_length must not exceed n_fft")
        if self.hop_length <= 0 or self.n_bins <= 0:
            raise ValueError("hop_length and n_bins must be positive")

    def n_frames(self, n_samples: int) -> int:
        """Spectrogram frames for ``n_samples`` of audio, before deltas."""
        if self.center:
            return 1 + n_samples // self.hop_length
        return max(0, 1 + (n_samples - self.n_fft) // self.hop_length)

    def n_output_frames(self, n_samples: int) -> int:
        """Frames after deltas, which drop two frames at each end."""
        return self.n_frames(n_samples) - (4 if self.deltas else 0)

    @property
    def n_channels_out(self) -> int:
        return 6 if self.deltas else 2

    def frame_seconds(self, sample_rate: int) -> float:
        return self.hop_length / sample_rate


def feature_shape(media: MediaConfig, features: FeatureConfig) -> tuple[int, int, int]:
    """Shape ``(bins, frames, channels)`` of one segment's features."""
    return (
        features.n_bins,
        features.n_output_frames(media.segment_samples),
        features.n_channels_out if media.channels == 2 else (3 if features.deltas else 1),
    )


CACHE_DIR_ENV = "AVSC_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$AVSC_CACHE_DIR`` or the user cache dir (platformdirs) + ``/features``.

    Here rather than in :mod:`avsc_core.features` so that the command line can name it in
    its help without loading the feature extractors.
    """
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("avsc")) / "features"
