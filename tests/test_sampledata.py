"""The synthetic dataset: valid media, deterministic, and confusing each modality on purpose."""

from __future__ import annotations

import sys
from pathlib import Path

import av
import librosa
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from avsc_core.cli.main import main
from avsc_core.errors import AvscError
from avsc_core.progress import Progress
from avsc_core.sampledata import CLASS_ORDER, generate_sample_dataset


def decode_audio(path: Path, rate: int = 32000) -> np.ndarray:
    """All audio of ``path`` as float32 (channels, samples), resampled to ``rate``."""
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
        chunks = []
        for frame in container.decode(audio=0):
            chunks.extend(f.to_ndarray() for f in resampler.resample(frame))
        chunks.extend(f.to_ndarray() for f in resampler.resample(None))
    return np.concatenate(chunks, axis=1)


def decode_frames(path: Path, fps: float = 2.0) -> np.ndarray:
    """RGB frames of ``path`` sampled every ``1 / fps`` seconds, uint8 (n, h, w, 3)."""
    frames, next_time = [], 0.0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time + 1e-6 >= next_time:
                frames.append(frame.to_ndarray(format="rgb24"))
                next_time += 1.0 / fps
    return np.stack(frames)


def audio_features(path: Path) -> np.ndarray:
    """Mean and spread of a 40-band log-mel spectrum, both channels, plus their difference."""
    audio = decode_audio(path)
    mel = librosa.feature.melspectrogram(y=audio, sr=32000, n_fft=2048, hop_length=1024, n_mels=40)
    logmel = np.log(mel + 1e-8)  # (2, 40, frames)
    return np.concatenate(
        [
            logmel.mean(axis=(0, 2)),
            logmel.std(axis=2).mean(axis=0),
            (logmel[0] - logmel[1]).mean(axis=1),
        ]
    )


def visual_features(path: Path) -> np.ndarray:
    """Colour means and spreads, horizontal/vertical texture energy and motion energy."""
    frames = decode_frames(path).astype(np.float32) / 255
    dx = np.abs(np.diff(frames, axis=2)).mean(axis=(0, 1, 2))
    dy = np.abs(np.diff(frames, axis=1)).mean(axis=(0, 1, 2))
    dt = np.abs(np.diff(frames, axis=0)).mean(axis=(0, 1, 2)) if len(frames) > 1 else np.zeros(3)
    rows = frames.mean(axis=(0, 2))  # vertical colour profile, coarsely
    profile = rows.reshape(4, -1, 3).mean(axis=1).ravel()
    return np.concatenate(
        [frames.mean(axis=(0, 1, 2)), frames.std(axis=(0, 1, 2)), dx, dy, dt, profile]
    )


def cv_accuracy(features: np.ndarray, labels: np.ndarray, folds: int) -> float:
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    return float(cross_val_score(model, features, labels, cv=folds).mean())


def structure_accuracies(
    root: Path, classes: list[str], folds: int
) -> dict[str, dict[tuple[str, ...], float]]:
    """Cross-validated accuracy of audio, visual and combined features, for every pair of
    classes and for all of them together."""
    paths = sorted(root.glob("*/*.mp4"))
    labels = np.array([p.parent.name for p in paths])
    feats = {
        "audio": np.stack([audio_features(p) for p in paths]),
        "visual": np.stack([visual_features(p) for p in paths]),
    }
    feats["both"] = np.concatenate([feats["audio"], feats["visual"]], axis=1)
    groups = [tuple(classes)] + [(a, b) for i, a in enumerate(classes) for b in classes[i + 1 :]]
    result: dict[str, dict[tuple[str, ...], float]] = {}
    for kind, x in feats.items():
        result[kind] = {}
        for group in groups:
            keep = np.isin(labels, group)
            result[kind][group] = cv_accuracy(x[keep], labels[keep], folds)
    return result


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> list[Path]:
    return generate_sample_dataset(
        tmp_path_factory.mktemp("sample"), classes=2, per_class=2, seconds=3, seed=7
    )


def test_writes_folders_layout_with_h264_and_stereo_aac(small_set):
    root = small_set[0].parent.parent
    assert sorted(p.name for p in root.iterdir()) == ["bus", "tram"]
    assert [p.relative_to(root).as_posix() for p in small_set] == [
        "bus/bus-000.mp4",
        "bus/bus-001.mp4",
        "tram/tram-000.mp4",
        "tram/tram-001.mp4",
    ]
    # No temporary files are left behind.
    assert sorted(root.rglob("*")) == sorted(small_set + [root / "bus", root / "tram"])
    for path in small_set:
        with av.open(str(path)) as container:
            video = container.streams.video[0]
            audio = container.streams.audio[0]
            assert video.codec_context.name == "h264"
            assert video.codec_context.pix_fmt == "yuv420p"
            assert audio.codec_context.name == "aac"
            assert audio.codec_context.channels == 2
            assert audio.sample_rate == 48000
            assert container.duration / av.time_base == pytest.approx(3.0, abs=0.15)
            frames = list(container.decode(video=0))
            assert len(frames) == 30
            assert frames[-1].time == pytest.approx(2.9, abs=0.05)


def test_audio_is_stereo_unclipped_and_as_long_as_asked(small_set):
    for path in small_set:
        audio = decode_audio(path, rate=48000)
        assert audio.shape[0] == 2
        assert audio.shape[1] / 48000 == pytest.approx(3.0, abs=0.05)
        assert 0.01 < np.abs(audio).max() < 0.9
        rms = np.sqrt(np.mean(audio**2))
        assert -32 < 20 * np.log10(rms) < -16
        # Events are panned and the bed is partly decorrelated: the channels differ.
        assert np.abs(audio[0] - audio[1]).mean() > 0.05 * np.abs(audio).mean()


def test_same_seed_same_clips_other_seed_other_clips(small_set, tmp_path):
    again = generate_sample_dataset(tmp_path / "a", classes=2, per_class=2, seconds=3, seed=7)
    other = generate_sample_dataset(tmp_path / "b", classes=2, per_class=2, seconds=3, seed=8)
    for first, second, third in zip(small_set, again, other):
        assert np.array_equal(decode_audio(first), decode_audio(second))
        assert np.array_equal(decode_frames(first), decode_frames(second))
        assert not np.allclose(decode_audio(first), decode_audio(third), atol=1e-3)
    # Two clips of one class are different draws, not copies.
    assert not np.allclose(decode_audio(small_set[0]), decode_audio(small_set[1]), atol=1e-3)


def test_a_clip_does_not_depend_on_how_many_classes_or_clips(small_set, tmp_path):
    bigger = generate_sample_dataset(tmp_path, classes=3, per_class=1, seconds=3, seed=7)
    assert bigger[0].name == "bus-000.mp4"
    assert np.array_equal(decode_audio(bigger[0]), decode_audio(small_set[0]))


def test_progress_reports_every_clip(tmp_path):
    events: list[Progress] = []
    paths = generate_sample_dataset(
        tmp_path, classes=["park", "metro"], per_class=1, seconds=1, progress=events.append
    )
    assert [(e.done, e.total) for e in events] == [(0, 2), (1, 2), (2, 2)]
    assert events[-1].info["file"] == str(paths[-1])
    assert [p.parent.name for p in paths] == ["park", "metro"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"classes": 11}, "between 2 and 10"),
        ({"classes": 1}, "between 2 and 10"),
        ({"classes": ["bus", "beach"]}, "unknown class 'beach'"),
        ({"per_class": 0}, "at least 1"),
        ({"seconds": 0}, "clip length"),
        ({"seed": -1}, "non-negative"),
    ],
)
def test_rejects_bad_settings(tmp_path, kwargs, message):
    with pytest.raises(AvscError, match=message):
        generate_sample_dataset(tmp_path, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_cli_writes_dataset(tmp_path, capsys):
    assert (
        main(
            [
                "sample-data",
                str(tmp_path / "d"),
                "--classes",
                "3",
                "--per-class",
                "1",
                "--seconds",
                "1",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    assert sorted(p.parent.name for p in (tmp_path / "d").glob("*/*.mp4")) == [
        "airport",
        "bus",
        "tram",
    ]
    assert "3 clips" in capsys.readouterr().out


def test_cli_usage_and_user_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sample-data", str(tmp_path), "--frobnicate"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["sample-data", str(tmp_path), "--classes", "many"])
    assert exc.value.code == 2
    capsys.readouterr()
    assert main(["sample-data", str(tmp_path), "--classes", "12"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "between 2 and 10" in err[0]
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["sample-data", str(target)]) == 1
    assert "not a folder" in capsys.readouterr().err


@pytest.mark.slow
def test_each_modality_confuses_its_own_pair_and_fusion_separates_all(tmp_path):
    """Simple clip features show the designed structure on the first four classes: audio
    separates airport from shopping_mall but not bus from tram, vision the reverse, and
    both together separate every class."""
    classes = list(CLASS_ORDER[:4])
    generate_sample_dataset(tmp_path, classes=4, per_class=8, seconds=2, seed=0)
    acc = structure_accuracies(tmp_path, classes, folds=4)
    audio_pair, visual_pair = ("bus", "tram"), ("airport", "shopping_mall")
    # A pair drawn from one distribution stays near chance (16 clips: 0.8 or more by luck
    # has a probability well under 1 %); a pair that differs is separated almost perfectly.
    assert acc["audio"][audio_pair] <= 0.8, acc["audio"]
    assert acc["visual"][visual_pair] <= 0.8, acc["visual"]
    for pair in acc["audio"]:
        if len(pair) == 2 and pair != audio_pair:
            assert acc["audio"][pair] >= 0.9, (pair, acc["audio"])
        if len(pair) == 2 and pair != visual_pair:
            assert acc["visual"][pair] >= 0.9, (pair, acc["visual"])
    everything = tuple(classes)
    assert acc["both"][everything] >= 0.9, acc["both"]
    assert acc["both"][everything] > max(acc["audio"][everything], acc["visual"][everything])


def report(out: Path, classes: int = 10, per_class: int = 12, seconds: float = 10.0) -> None:
    """Print the structure on a bigger set (generated into ``out`` unless it exists):
    ``python tests/test_sampledata.py OUT [CLASSES] [PER_CLASS] [SECONDS]``."""
    if not out.exists():
        generate_sample_dataset(out, classes=classes, per_class=per_class, seconds=seconds)
    names = tuple(CLASS_ORDER[:classes])
    accs = structure_accuracies(out, list(names), folds=4)
    for kind, table in accs.items():
        print(f"{kind:7s} all {classes} classes: {table[names]:.3f}")
    for pair in accs["audio"]:
        if len(pair) == 2:
            line = "  ".join(f"{kind} {accs[kind][pair]:.2f}" for kind in accs)
            print(f"{pair[0]:>18s} vs {pair[1]:<18s} {line}")


if __name__ == "__main__":
    report(Path(sys.argv[1]), *(int(a) for a in sys.argv[2:4]), *(float(a) for a in sys.argv[4:5]))
