"""Synthetic scene sounds: a coloured noise bed plus recurring sound events, in stereo.

A :class:`SoundSpec` describes the *distribution* of one kind of sound; every call to
:func:`synthesize` draws a new clip from it. Per clip, the bed's centre frequency, the event
pitches, rates, timing, loudness and stereo positions all vary, so two clips of one class
are never alike sample by sample, but the spectral shape and the event pattern that tell
one kind of sound from another stay put.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

EventKind = Literal["tone", "chirp", "knock", "chime", "notes"]


@dataclass(frozen=True)
class NoiseBed:
    """Stationary background noise with a band-shaped spectrum.

    Parameters
    ----------
    centre_hz : float
        Centre of the band: the spectrum is a Gaussian in log-frequency around it.
    width_oct : float
        Standard deviation of that Gaussian, in octaves.
    floor : float
        Relative level of a pink (1/f) floor under the band, so no frequency is silent.
    coherence : float
        Correlation between left and right (1: mono bed, 0: independent channels).
    am_hz : float
        Rate of a slow amplitude modulation (swells of passing cars, syllables of a crowd);
        0 for none.
    am_depth : float
        Depth of that modulation, 0..1.
    """

    centre_hz: float
    width_oct: float
    floor: float = 0.03
    coherence: float = 0.5
    am_hz: float = 0.0
    am_depth: float = 0.0


@dataclass(frozen=True)
class EventTrack:
    """Sound events of one kind recurring through a clip.

    Parameters
    ----------
    kind : {"tone", "chirp", "knock", "chime", "notes"}
        ``tone``: a harmonic tone at ``freqs_hz[0]``; ``chirp``: a log sweep from
        ``freqs_hz[0]`` to ``freqs_hz[1]``; ``knock``: a fast-decaying resonance near
        ``freqs_hz[0]`` (steps, rattles, rail joints); ``chime``: the tones of ``freqs_hz``
        one after the other; ``notes``: one tone per event picked from ``freqs_hz`` (music).
    rate_hz : float
        Mean events per second.
    duration_s : float
        Length of one event (of one tone of a chime).
    level_db : float
        Peak level relative to the RMS of the noise bed.
    pan : tuple of float
        Range of stereo positions, -1 (left) .. 1 (right), drawn per event.
    regular : bool
        Events on a jittered beat instead of at random (Poisson) times.
    harmonics : int
        Number of harmonics of tonal events (amplitudes fall as 1/k).
    """

    kind: EventKind
    rate_hz: float
    freqs_hz: tuple[float, ...]
    duration_s: float
    level_db: float
    pan: tuple[float, float] = (-0.5, 0.5)
    regular: bool = False
    harmonics: int = 1


@dataclass(frozen=True)
class SoundSpec:
    """One kind of scene sound: a noise bed, an optional steady hum, and event tracks.

    ``hum`` is ``(frequency Hz, level dB re bed RMS)`` of a continuous harmonic drone
    (an engine, a ventilation fan), or ``None``.
    """

    bed: NoiseBed
    events: tuple[EventTrack, ...] = ()
    hum: tuple[float, float] | None = None


# Per-clip jitter: large enough that a clip is not a copy of its class mean, small enough
# that neighbouring kinds of sound (bed centres about an octave or more apart) stay apart.
_BED_CENTRE_JITTER_OCT = 0.12
_PITCH_JITTER_OCT = 0.04
_RATE_JITTER = 0.25
_EVENT_LEVEL_JITTER_DB = 3.0
_CLIP_LEVEL_RANGE_DB = (-27.0, -21.0)
_PEAK_LIMIT = 0.8  # AAC can overshoot the input peak slightly; this leaves room below 0.9


def synthesize(
    spec: SoundSpec, seconds: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """Draw one stereo clip from ``spec``.

    Parameters
    ----------
    spec : SoundSpec
        The kind of sound.
    seconds : float
        Clip length.
    sample_rate : int
        Output rate in Hz.
    rng : numpy.random.Generator
        Source of every random choice, so a seeded generator gives the same clip.

    Returns
    -------
    numpy.ndarray
        float32 ``(2, round(seconds * sample_rate))``, left then right, with an RMS level
        between -27 and -21 dBFS and a peak of at most 0.8.
    """
    n = round(seconds * sample_rate)
    bed = _noise_bed(spec.bed, n, sample_rate, rng)
    mix = bed
    bed_rms = float(np.sqrt(np.mean(bed**2))) or 1.0
    if spec.hum is not None:
        freq, level_db = spec.hum
        freq *= 2.0 ** rng.normal(0.0, _PITCH_JITTER_OCT)
        t = np.arange(n) / sample_rate
        # A slow random vibrato keeps the drone from being a perfectly flat line.
        vibrato = 0.01 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 2 * np.pi))
        phase = 2 * np.pi * freq * np.cumsum(1.0 + vibrato) / sample_rate
        hum = sum(np.sin(k * phase) / k for k in range(1, 4))
        amp = bed_rms * 10 ** ((level_db + rng.uniform(-2, 2)) / 20)
        pan = rng.uniform(-0.2, 0.2)
        mix = mix + amp * _pan_gains(pan)[:, None] * hum[None, :]
    for track in spec.events:
        mix = mix + _event_track(track, n, sample_rate, bed_rms, rng)
    level = 10 ** (rng.uniform(*_CLIP_LEVEL_RANGE_DB) / 20)
    mix *= level / float(np.sqrt(np.mean(mix**2)))
    peak = float(np.max(np.abs(mix)))
    if peak > _PEAK_LIMIT:
        mix *= _PEAK_LIMIT / peak
    return mix.astype(np.float32)


def _noise_bed(bed: NoiseBed, n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Stereo noise shaped in the frequency domain, partly correlated between channels."""
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    centre = bed.centre_hz * 2.0 ** rng.normal(0.0, _BED_CENTRE_JITTER_OCT)
    safe = np.maximum(freqs, 20.0)
    octaves = np.log2(safe / centre)
    shape = np.exp(-0.5 * (octaves / bed.width_oct) ** 2) + bed.floor * np.sqrt(1000.0 / safe)
    shape[0] = 0.0  # no DC offset

    def shaped() -> np.ndarray:
        spectrum = rng.standard_normal(len(freqs)) + 1j * rng.standard_normal(len(freqs))
        return np.fft.irfft(spectrum * shape, n)

    common = shaped()
    mix_c, mix_i = np.sqrt(bed.coherence), np.sqrt(1.0 - bed.coherence)
    out = np.stack([mix_c * common + mix_i * shaped(), mix_c * common + mix_i * shaped()])
    if bed.am_hz > 0 and bed.am_depth > 0:
        t = np.arange(n) / sample_rate
        # Two incommensurate rates make the swells irregular, as real ones are.
        rate = bed.am_hz * rng.uniform(0.8, 1.25)
        wobble = 0.6 * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)) + 0.4 * np.sin(
            2 * np.pi * rate * 1.618 * t + rng.uniform(0, 2 * np.pi)
        )
        out *= 1.0 + bed.am_depth * wobble
    return out / np.sqrt(np.mean(out**2))


def _event_times(track: EventTrack, seconds: float, rng: np.random.Generator) -> np.ndarray:
    rate = track.rate_hz * rng.uniform(1 - _RATE_JITTER, 1 + _RATE_JITTER)
    if track.regular:
        period = 1.0 / rate
        beats = np.arange(rng.uniform(0, period), seconds, period)
        return beats + rng.normal(0.0, 0.05 * period, len(beats))
    count = rng.poisson(rate * seconds)
    return np.sort(rng.uniform(0.0, seconds, count))


def _event_track(
    track: EventTrack, n: int, sample_rate: int, bed_rms: float, rng: np.random.Generator
) -> np.ndarray:
    out = np.zeros((2, n))
    pitch = 2.0 ** rng.normal(0.0, _PITCH_JITTER_OCT)  # one pitch shift per clip
    for start in _event_times(track, n / sample_rate, rng):
        sound = _event_sound(track, pitch, sample_rate, rng)
        amp = bed_rms * 10 ** ((track.level_db + rng.uniform(-1, 1) * _EVENT_LEVEL_JITTER_DB) / 20)
        begin = int(start * sample_rate)
        if begin < 0 or begin >= n:
            continue
        piece = sound[: n - begin] * amp
        out[:, begin : begin + len(piece)] += _pan_gains(rng.uniform(*track.pan))[:, None] * piece
    return out


def _event_sound(
    track: EventTrack, pitch: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """One event, mono, peak about 1."""
    duration = track.duration_s * rng.uniform(0.85, 1.15)
    t = np.arange(int(duration * sample_rate)) / sample_rate
    freqs = [f * pitch for f in track.freqs_hz]
    if track.kind == "knock":
        freq = freqs[0] * 2.0 ** rng.normal(0.0, 0.15)
        return np.sin(2 * np.pi * freq * t) * np.exp(-t / (duration / 5))
    if track.kind == "chirp":
        rate = np.log(freqs[1] / freqs[0]) / duration
        phase = 2 * np.pi * freqs[0] * np.expm1(rate * t) / rate
        return np.sin(phase) * _envelope(len(t), sample_rate)
    if track.kind == "chime":
        return np.concatenate([_tone(f, t, track.harmonics, sample_rate) for f in freqs])
    if track.kind == "notes":
        return _tone(freqs[rng.integers(len(freqs))], t, track.harmonics, sample_rate)
    return _tone(freqs[0], t, track.harmonics, sample_rate)


def _tone(freq: float, t: np.ndarray, harmonics: int, sample_rate: int) -> np.ndarray:
    wave = sum(np.sin(2 * np.pi * k * freq * t) / k for k in range(1, harmonics + 1))
    wave = wave / sum(1.0 / k for k in range(1, harmonics + 1))
    return wave * _envelope(len(t), sample_rate)


def _envelope(length: int, sample_rate: int) -> np.ndarray:
    """Raised-cosine attack and release of 10 ms, so events do not click."""
    ramp = min(length // 2, int(0.01 * sample_rate))
    env = np.ones(length)
    if ramp > 0:
        rise = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        env[:ramp] = rise
        env[length - ramp :] = rise[::-1]
    return env


def _pan_gains(pan: float) -> np.ndarray:
    """Constant-power gains (left, right) for a position in -1..1."""
    angle = (np.clip(pan, -1.0, 1.0) + 1.0) * np.pi / 4
    return np.array([np.cos(angle), np.sin(angle)])
