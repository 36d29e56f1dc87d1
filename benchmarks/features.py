"""Per-clip cost of decoding, the three spectrograms and frame sampling.

Prints one table: each stage of avsc's feature pipeline for one 10-s stereo clip, and the
straightforward reference implementations measured in the same run (direct librosa
calls, ``gammatone.fftweight.fft_gtgram`` and the filter-bank ``gtgram``). Then sampling 20
frames from a 10-s 1280x720 H.264 clip, against decoding every frame to RGB and picking 20,
and the CPU time of sampling with one decoder thread (as ``avsc label`` does) when the
frames nothing shows are left undecoded, against decoding them all.

    python benchmarks/features.py [--repeat N] [--skip-gtgram]

Targets (issue "Core foundation"): all three spectrograms with deltas in at most 0.1 s
per clip; frame sampling at least 2x faster than decoding every frame.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "tau2021-audio"
STREET = REPO.parent / "shared" / "data" / "tau2021-av-street-traffic"
SR = 32000


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median seconds of ``repeat`` calls after one warm-up call."""
    fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def make_hd_clip(path: Path, seconds: float = 10.0, fps: int = 30) -> Path:
    """A 1280x720 H.264 clip with moving texture, as a phone or TAU camera would give."""
    import av

    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (720 // 8, 1280 // 8 + 64, 3), dtype=np.uint8)
    texture = np.kron(texture, np.ones((8, 8, 1), np.uint8))
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
    stream.options = {"preset": "veryfast", "crf": "23"}
    for i in range(int(seconds * fps)):
        shift = (i * 2) % 512
        image = np.ascontiguousarray(texture[:, shift // 8 : shift // 8 + 1280])
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def decode_every_frame(path: Path, n: int = 20, size: int = 224) -> np.ndarray:
    """The naive way: decode and convert every frame, then pick ``n`` evenly."""
    import av
    import cv2

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    picks = np.linspace(0, len(frames) - 1, n).round().astype(int)
    return np.stack(
        [cv2.resize(frames[i], (size, size), interpolation=cv2.INTER_AREA) for i in picks]
    )


def cpu_timed_pair(first: Callable[[], object], second: Callable[[], object],
                   repeat: int) -> tuple[float, float]:
    """Median CPU seconds of ``first`` and of ``second``, called in turn ``repeat`` times."""
    first(), second()
    a, b = [], []
    for _ in range(repeat):
        for fn, samples in ((first, a), (second, b)):
            start = time.process_time()
            fn()
            samples.append(time.process_time() - start)
    return statistics.median(a), statistics.median(b)


def undecoded_frames_cost(clips: list[Path], repeat: int) -> tuple[float, float]:
    """CPU s a clip to sample 20 frames on one decoder thread, leaving the frames nothing
    shows undecoded and decoding them all."""
    from avsc_core.media import video

    times = np.arange(20) / 2.0
    skips = video.SKIPS_UNCHOSEN

    def sample(skipping: bool) -> None:
        video.SKIPS_UNCHOSEN = skips if skipping else frozenset()
        try:
            for clip in clips:
                for _ in video.iter_frames_at(clip, times, threads=1):
                    pass
        finally:
            video.SKIPS_UNCHOSEN = skips

    skipping, every = cpu_timed_pair(lambda: sample(True), lambda: sample(False), repeat)
    return skipping / len(clips), every / len(clips)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--skip-gtgram",
        action="store_true",
        help="skip the slow filter-bank gammatone reference (~5 s a call)",
    )
    args = parser.parse_args()

    import librosa
    from gammatone.fftweight import fft_gtgram
    from gammatone.gtgram import gtgram

    from avsc_core.config import FeatureConfig
    from avsc_core.features import FeatureExtractor
    from avsc_core.features.deltas import stack_with_deltas
    from avsc_core.features.filterbanks import gammatone_filters, mel_filters
    from avsc_core.features.stft import magnitude_spectrogram
    from avsc_core.inference.device import cpu_info
    from avsc_core.media import read_audio, sample_frames

    print(cpu_info().line())
    wavs = sorted(SHARED.glob("*.wav"))
    if not wavs:
        print(f"no TAU clips in {SHARED}", file=sys.stderr)
        return 1
    wav = wavs[0]
    config = FeatureConfig()
    extractor = FeatureExtractor(config, SR)
    audio = read_audio(wav)
    extractor.features(audio)  # builds the filter banks and CQT kernels once
    magnitude = magnitude_spectrogram(audio, config)
    mel_w = mel_filters(SR, config.n_fft, config.n_bins, config.mel_fmin, config.mel_fmax)
    gam_w = gammatone_filters(SR, config.n_fft, config.n_bins, config.gam_fmin)
    spectrograms = extractor.spectrograms(audio)
    r = args.repeat
    mono = audio[0].astype(np.float64)

    rows = [
        ("avsc", "decode + resample 48k->32k (24-bit wav)", timed(lambda: read_audio(wav), r)),
        (
            "avsc",
            "shared STFT (both channels)",
            timed(lambda: magnitude_spectrogram(audio, config), r),
        ),
        ("avsc", "MEL from the STFT", timed(lambda: [mel_w @ (m * m).T for m in magnitude], r)),
        ("avsc", "GAM from the STFT", timed(lambda: np.matmul(magnitude, gam_w.T), r)),
        ("avsc", "CQT (cached kernels)", timed(lambda: extractor._cqt(audio), r)),
        (
            "avsc",
            "log + deltas, three kinds",
            timed(
                lambda: [
                    stack_with_deltas(extractor.log_compress(s)) for s in spectrograms.values()
                ],
                r,
            ),
        ),
        (
            "avsc",
            "ALL: MEL+GAM+CQT with deltas (target <= 0.1 s)",
            timed(lambda: extractor.features(audio), r),
        ),
    ]
    for hop, label in ((1024, "32 ms hop"), (448, "14 ms hop")):
        rows += [
            (
                "reference",
                f"librosa melspectrogram, stereo, {label}",
                timed(
                    lambda hop=hop: librosa.feature.melspectrogram(
                        y=audio,
                        sr=SR,
                        n_fft=4096,
                        hop_length=hop,
                        win_length=2560,
                        center=False,
                        n_mels=128,
                    ),
                    r,
                ),
            ),
            (
                "reference",
                f"librosa cqt, stereo, {label}",
                timed(
                    lambda hop=hop: librosa.cqt(
                        audio,
                        sr=SR,
                        hop_length=hop,
                        n_bins=128,
                        bins_per_octave=16,
                        fmin=config.cqt_fmin,
                    ),
                    r,
                ),
            ),
            (
                "reference",
                f"fft_gtgram, one channel, {label}",
                timed(lambda hop=hop: fft_gtgram(mono, SR, 0.08, hop / SR, 128, 50.0), r),
            ),
        ]
    if not args.skip_gtgram:
        rows.append(
            (
                "reference",
                "gtgram (filter bank), one channel, 14 ms hop",
                timed(lambda: gtgram(mono, SR, 0.08, 448 / SR, 128, 50.0), 1),
            )
        )

    with tempfile.TemporaryDirectory() as tmp:
        clip = make_hd_clip(Path(tmp) / "hd.mp4")
        ours = timed(lambda: sample_frames(clip, fps=2.0, end=10.0), r)
        naive = timed(lambda: decode_every_frame(clip), r)
        rows += [
            ("avsc", "sample 20 frames from 10-s 1280x720 H.264", ours),
            ("reference", "decode every frame to RGB, pick 20", naive),
        ]
        undecoded = {"the 1280x720 clip": undecoded_frames_cost([clip], r)}
    street = sorted(STREET.glob("*.mp4"))
    if street:
        undecoded[f"{len(street)} TAU street videos"] = undecoded_frames_cost(street, r)
    for label, (skipping, every) in undecoded.items():
        rows += [("avsc", f"CPU s, 20 frames, 1 thread, {label}", skipping),
                 ("baseline", "  the same decoding every frame", every)]

    width = max(len(name) for _, name, _ in rows)
    print(f"{'':10} {'stage':<{width}}  seconds per 10-s clip")
    print("-" * (width + 34))
    for who, name, seconds in rows:
        print(f"{who:10} {name:<{width}}  {seconds:8.4f}")
    print("-" * (width + 34))
    all_features = rows[6][2]
    print(
        f"all three spectrograms with deltas: {all_features:.3f} s "
        f"({'meets' if all_features <= 0.1 else 'MISSES'} the 0.1 s target)"
    )
    print(
        f"frame sampling speed-up over decoding every frame: {naive / ours:.1f}x "
        f"({'meets' if naive / ours >= 2 else 'MISSES'} the 2x target)"
    )
    for label, (skipping, every) in undecoded.items():
        print(f"frames nothing shows left undecoded: {every / skipping:.2f}x less CPU time "
              f"({label})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
