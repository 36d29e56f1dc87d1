"""``--cache-dir DIR`` on the commands that cache (train, evaluate), and the app's setting."""

from __future__ import annotations

import os

import pytest

from avsc_core.cli.main import main
from avsc_core.features import default_cache_dir


@pytest.fixture
def user_cache(tmp_path, monkeypatch):
    """The user cache folder the commands would use without ``--cache-dir``."""
    folder = tmp_path / "user-cache"
    monkeypatch.setenv("AVSC_CACHE_DIR", str(folder))
    return folder


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_help_names_the_option_and_the_actual_default(command, user_cache, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    text = " ".join(out.split())
    assert "--cache-dir DIR" in text
    assert str(default_cache_dir()) == str(user_cache)
    # argparse may wrap a long path (this test's is) across lines.
    assert f"(default:{user_cache},from$AVSC_CACHE_DIR" in "".join(out.split())
    assert f"--jobs N processes decoding clips and computing features (default: all " \
           f"{os.cpu_count()} cores)" in text


def test_train_and_evaluate_keep_to_the_cache_dir_given(
        tiny_dataset, trained_tiny_model, user_cache, tmp_path, capsys):
    cache = tmp_path / "elsewhere"
    out = tmp_path / "model"
    assert main(["train", str(tiny_dataset), "--out", str(out), "--preset", "tiny",
                 "--backbones", "aud-mel", "--epochs", "1", "--phase", "1",
                 "--cache-dir", str(cache)]) == 0
    entries = sorted(p.name.split("-")[0] for p in cache.rglob("*.f16"))
    assert entries == ["mel"] * 10  # no frames: an audio backbone only
    assert main(["evaluate", "--model", str(trained_tiny_model), str(tiny_dataset),
                 "--cache-dir", str(cache), "--jobs", "1"]) == 0
    assert len(list(cache.rglob("frames-*.jpg"))) > 0
    assert (cache / "index.sqlite").exists()
    assert not user_cache.exists()
    capsys.readouterr()


def test_a_cache_dir_that_is_a_file_is_refused_at_once(tmp_path, trained_tiny_model,
                                                       tiny_dataset, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["evaluate", "--model", str(trained_tiny_model), str(tiny_dataset),
                 "--cache-dir", str(blocker / "cache")])
    assert code == 1
    assert "feature cache folder" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(trained_tiny_model), str(tiny_dataset),
                 "--jobs", "0"]) == 1
    assert "--jobs must be at least 1, got 0" in capsys.readouterr().err
