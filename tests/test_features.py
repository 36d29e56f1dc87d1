"""The three spectrograms: shapes, tone peaks, parity with the reference implementations."""

from __future__ import annotations

import numpy as np
import pytest

from avsc_core.config import FeatureConfig
from avsc_core.features import FeatureExtractor
from avsc_core.features.deltas import central_difference
from avsc_core.media import read_audio

SR = 32000


def tone(hz: float, seconds: float = 10.0, right_gain: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    left = 0.5 * np.sin(2 * np.pi * hz * t)
    return np.stack([left, right_gain * left]).astype(np.float32)


@pytest.fixture(scope="module")
def extractor() -> FeatureExtractor:
    return FeatureExtractor(FeatureConfig(), SR)


@pytest.fixture(scope="module")
def real_audio(tau_audio_files) -> np.ndarray:
    return read_audio(tau_audio_files[0])


def test_default_shape_is_128_by_305_by_6(extractor):
    features = extractor.features(tone(1000.0))
    for kind in ("mel", "gam", "cqt"):
        assert features[kind].shape == (128, 305, 6)
        assert features[kind].dtype == np.float32
        assert np.isfinite(features[kind]).all()


@pytest.mark.parametrize("kind", ["mel", "gam", "cqt"])
@pytest.mark.parametrize("hz", [220.0, 1000.0, 4000.0])
def test_pure_tone_peaks_at_its_bin(extractor, kind, hz):
    spec = extractor.spectrograms(tone(hz), (kind,))[kind]
    peak_bin = int(np.argmax(spec[0].mean(axis=1)))
    centres = extractor.frequencies(kind)
    expected_bin = int(np.argmin(np.abs(np.log(centres / hz))))
    # Band edges may put the maximum in a neighbour of the nearest centre.
    assert abs(peak_bin - expected_bin) <= 1, (kind, hz, centres[peak_bin])


def test_channels_are_left_right_then_deltas(extractor):
    features = extractor.features(tone(1000.0, right_gain=0.25))["mel"]
    static = extractor.log_compress(extractor.spectrograms(tone(1000.0, right_gain=0.25))["mel"])
    np.testing.assert_allclose(features[..., 0], static[0][:, 2:-2], rtol=1e-5)
    np.testing.assert_allclose(features[..., 1], static[1][:, 2:-2], rtol=1e-5)
    # The right channel was 12 dB quieter: log power lower by log(16).
    peak = int(np.argmax(features[:, 100, 0]))
    assert features[peak, 100, 0] - features[peak, 100, 1] == pytest.approx(np.log(16), abs=0.01)
    delta = central_difference(static)
    np.testing.assert_allclose(features[..., 2], delta[0][:, 1:-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(features[..., 5], central_difference(delta)[1], rtol=1e-5, atol=1e-6)


def test_mel_matches_librosa_on_real_audio(extractor, real_audio):
    import librosa

    ours = extractor.spectrograms(real_audio, ("mel",))["mel"]
    reference = librosa.feature.melspectrogram(
        y=real_audio,
        sr=SR,
        n_fft=4096,
        hop_length=1024,
        win_length=2560,
        center=False,
        n_mels=128,
    )
    assert ours.shape == reference.shape == (2, 128, 309)
    np.testing.assert_allclose(ours, reference, rtol=1e-3, atol=1e-6 * reference.max())


def test_cqt_matches_librosa_on_real_audio(extractor, real_audio):
    import librosa

    ours = extractor.spectrograms(real_audio, ("cqt",))["cqt"]
    reference = np.abs(
        librosa.cqt(
            real_audio,
            sr=SR,
            hop_length=1024,
            fmin=librosa.note_to_hz("C1"),
            n_bins=128,
            bins_per_octave=16,
        )
    )
    # librosa centres frames on multiples of the hop; ours start n_fft / 2 later.
    reference = reference[..., 2 : 2 + 309]
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, rtol=1e-3, atol=1e-5 * reference.max())


def test_gammatone_matches_fft_gtgram_on_real_audio(real_audio):
    from gammatone.fftweight import fft_gtgram

    # fft_gtgram picks n_fft = 2 ** ceil(log2(2 * window)) = 8192 for an 80-ms window.
    extractor = FeatureExtractor(FeatureConfig(n_fft=8192, win_length=2560, hop_length=1024), SR)
    ours = extractor.spectrograms(real_audio, ("gam",))["gam"]
    for channel in range(2):
        reference = fft_gtgram(real_audio[channel].astype(np.float64), SR, 0.08, 0.032, 128, 50.0)
        # fft_gtgram leaves out the last full frame when it ends exactly on the signal end.
        n = reference.shape[1]
        assert ours.shape[-1] - n in (0, 1)
        np.testing.assert_allclose(
            ours[channel, :, :n], reference, rtol=1e-3, atol=1e-5 * reference.max()
        )


def test_frame_count_follows_the_hop(real_audio):
    extractor = FeatureExtractor(FeatureConfig(hop_length=448), SR)  # the paper's 14 ms
    features = extractor.features(real_audio)
    assert (
        features["mel"].shape == features["cqt"].shape == (128, 1 + (320000 - 4096) // 448 - 4, 6)
    )


def test_spectrograms_are_the_same_whatever_numpy_blas_threads(real_audio):
    # OpenBLAS rounds a matrix product split over threads differently: the features (and
    # so the labels) must not depend on the machine's core count or the caller's setting.
    from threadpoolctl import threadpool_info, threadpool_limits

    if not any(lib["user_api"] == "blas" for lib in threadpool_info()):
        pytest.skip("numpy has no BLAS that threadpoolctl can set")
    extractor = FeatureExtractor(FeatureConfig(), SR)
    with threadpool_limits(1, "blas"):
        one = extractor.features(real_audio)
    with threadpool_limits(4, "blas"):
        four = extractor.features(real_audio)
        # Given back after the features.
        assert {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"
                } == {4}
    for kind in one:
        np.testing.assert_array_equal(one[kind], four[kind])


def test_blas_limit_holds_until_the_last_of_overlapping_blocks_in_two_threads():
    # Features are computed in the labelling thread and in decoding threads at once: the
    # first block to end must not give the other its threads back.
    import threading

    from threadpoolctl import threadpool_info, threadpool_limits

    from avsc_core.blas import one_blas_thread

    def blas_threads() -> set[int]:
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    if not blas_threads():
        pytest.skip("numpy has no BLAS that threadpoolctl can set")
    entered, first_left, seen = threading.Event(), threading.Event(), {}

    def second() -> None:
        with one_blas_thread():
            entered.set()
            first_left.wait(10)
            seen["after the first left"] = blas_threads()

    with threadpool_limits(3, "blas"):
        worker = threading.Thread(target=second)
        with one_blas_thread():
            worker.start()
            entered.wait(10)
            seen["both inside"] = blas_threads()
        first_left.set()
        worker.join(10)
        seen["after both"] = blas_threads()
    assert seen == {"both inside": {1}, "after the first left": {1}, "after both": {3}}
