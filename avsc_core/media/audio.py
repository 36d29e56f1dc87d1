"""Decoding audio tracks to float32 ``(channels, samples)`` at the analysis rate.

FFmpeg (through PyAV) decodes every container and codec; its resampler only converts the
sample format and down-mixes more than two channels, with the proper channel matrix. The
rate conversion uses soxr's high-quality filter, the same one ``librosa.resample`` uses by
default, streamed block by block so long files never sit decoded in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import soxr

from avsc_core.errors import MediaError, NoAudioError
from avsc_core.media.container import decodable_stream, decoding_stopped, open_media

log = logging.getLogger(__name__)

BLOCK_SECONDS = 0.5

# Float audio files can hold NaN, infinities or absurd values (a broken encoder, a bad
# edit); they would turn every spectrogram frame they touch into NaN. Real audio stays
# within a few times full scale (1.0), so anything beyond this is damage, not signal.
MAX_SAMPLE = 1000.0


def _sanitise(block: np.ndarray) -> int | None:
    """Set non-finite or absurdly large samples of ``(channels, n)`` ``block`` to 0 in place.

    Returns the column of the first damaged sample, or ``None`` when there is none.
    """
    peak = float(np.max(np.abs(block))) if block.size else 0.0
    if peak <= MAX_SAMPLE:  # False for NaN as well
        return None
    bad = ~(np.abs(block) <= MAX_SAMPLE)
    block[bad] = 0.0
    return int(np.argmax(bad.any(axis=0)))


def _match_channels(block: np.ndarray, channels: int) -> np.ndarray:
    if block.shape[0] == channels:
        return block
    if block.shape[0] == 1:
        return np.repeat(block, channels, axis=0)
    return block.mean(axis=0, keepdims=True)


def iter_audio_blocks(
    path: str | Path,
    sample_rate: int = 32000,
    channels: int = 2,
    warnings: list[str] | None = None,
) -> Iterator[np.ndarray]:
    """Yield the audio track of ``path`` as float32 ``(channels, n)`` blocks.

    Mono is duplicated to stereo; more than two channels are down-mixed to stereo by
    FFmpeg. Decoding stops at the first corrupt packet after some audio was decoded, with
    a message appended to ``warnings``; a track that yields no audio at all raises.

    Raises
    ------
    NoAudioError
        The file has no audio stream.
    MediaError
        The file cannot be read or its audio cannot be decoded.
    """
    path = Path(path)
    with open_media(path) as container:
        stream = decodable_stream(container, "audio")
        if stream is None:
            raise NoAudioError(path)
        layout = "mono" if stream.channels == 1 else "stereo"
        n_in = 1 if layout == "mono" else 2
        converter = av.AudioResampler(format="fltp", layout=layout, rate=stream.rate)
        resampler = None
        if stream.rate != sample_rate:
            resampler = soxr.ResampleStream(
                stream.rate, sample_rate, n_in, dtype="float32", quality="HQ"
            )
        # Codec frames are small (1152 samples for MP3); resampling and yielding them one
        # by one costs more than decoding, so they are gathered into blocks of about this
        # many input samples first.
        block_samples = max(1, int(stream.rate * BLOCK_SECONDS))
        pending: list[np.ndarray] = []
        pending_samples = 0
        produced = 0
        damaged = False
        consumed = 0  # input samples before the current block

        def emit(last: bool = False) -> Iterator[np.ndarray]:
            nonlocal produced, pending, pending_samples, damaged, consumed
            block = (
                np.concatenate(pending, axis=1) if pending else np.zeros((n_in, 0), np.float32)
            ).astype(np.float32, copy=False)
            pending, pending_samples = [], 0
            if not block.flags.writeable:
                block = block.copy()
            first_bad = _sanitise(block)
            if first_bad is not None and not damaged:
                # Said once, at the first damaged block, so the warning travels with the
                # segment it affects.
                damaged = True
                at = (consumed + first_bad) / stream.rate
                message = (f"{path.name}: some audio samples (the first at {at:.2f} s) are NaN, "
                           "infinite or far beyond full scale; they were set to 0")
                log.warning(message)
                if warnings is not None:
                    warnings.append(message)
            consumed += block.shape[1]
            if resampler is not None:
                block = resampler.resample_chunk(np.ascontiguousarray(block.T), last=last).T
            if block.shape[1]:
                produced += block.shape[1]
                yield _match_channels(np.ascontiguousarray(block), channels)

        def gather(frames: list[av.AudioFrame]) -> Iterator[np.ndarray]:
            nonlocal pending_samples
            for frame in frames:
                pending.append(frame.to_ndarray())
                pending_samples += frame.samples
            if pending_samples >= block_samples:
                yield from emit()

        try:
            for frame in container.decode(stream):
                yield from gather(converter.resample(frame))
        except av.FFmpegError as exc:
            decoded = produced > 0 or bool(pending)
            decoding_stopped(path, "audio", exc, decoded, warnings, log)
        yield from gather(converter.resample(None))
        yield from emit(last=True)
        if produced == 0:
            raise MediaError(path, "the audio track is empty")



def read_audio(
    path: str | Path,
    sample_rate: int = 32000,
    channels: int = 2,
    warnings: list[str] | None = None,
) -> np.ndarray:
    """Decode the whole audio track of ``path``.

    Returns
    -------
    numpy.ndarray
        float32 ``(channels, samples)`` at ``sample_rate``.
    """
    blocks = list(iter_audio_blocks(path, sample_rate, channels, warnings))
    return np.concatenate(blocks, axis=1)
