"""The command line's refusals: one line naming the path, at once, before TensorFlow loads.

Tests run as root, for whom permission bits mean nothing, so an unwritable output is a
path below ``/proc`` or below a regular file. Whether TensorFlow was imported is asked in a
fresh process (:func:`run_avsc`), since this test session may have imported it already.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from avsc_core.cli.classify import runtime_note
from avsc_core.cli.main import build_parser, main

REPO = Path(__file__).resolve().parents[1]

# Runs ``main(argv)``, then writes whether TensorFlow is loaded into the file argv[1].
_RUNNER = """
import sys
from avsc_core.cli.main import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as marker:
    marker.write(str("tensorflow" in sys.modules))
sys.exit(code)
"""

# The commands whose options this suite checks (train and label have their own owners).
OWN_COMMANDS = ("sample-data", "features", "evaluate", "export", "classify", "info")


class Run:
    """What a fresh ``avsc`` process did: exit code, output, and whether TF was loaded."""

    def __init__(self, code: int, out: str, err: str, tensorflow: bool):
        self.code, self.out, self.err, self.tensorflow = code, out, err, tensorflow


def run_avsc(tmp_path: Path, *args: object) -> Run:
    marker = tmp_path / "tensorflow-loaded.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(marker), *map(str, args)],
        check=False, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    return Run(done.returncode, done.stdout, done.stderr, marker.read_text() == "True")


def assert_refused(run: Run, command: str, path: object, *words: str) -> None:
    """Exit 1, one line on stderr naming ``path`` (and ``words``), no TensorFlow."""
    assert run.code == 1, run.err
    assert "Traceback" not in run.err
    [line] = run.err.splitlines()
    assert line.startswith(f"avsc {command}: error: ") and str(path) in line
    for word in words:
        assert word in line
    assert not run.tensorflow, "refused only after TensorFlow was imported"


@pytest.fixture
def below_a_file(tmp_path) -> Path:
    """A regular file: nothing can be created below it."""
    path = tmp_path / "plain.txt"
    path.write_text("not a folder")
    return path


@pytest.fixture
def clip(make_media) -> Path:
    return make_media("clip.mp4", seconds=1.0, fps=4)


# --- outputs ---------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--out", "--png"])
def test_features_refuses_unwritable_outputs(tmp_path, clip, below_a_file, option):
    for bad, reason in [
        (Path("/proc/avsc-test/features.x"), "does not accept new files"),
        (below_a_file / "features.x", "is not a folder"),
        (tmp_path, "is a folder"),
    ]:
        run = run_avsc(tmp_path, "features", clip, "--kind", "mel", option, bad)
        assert_refused(run, "features", bad, reason)


def test_evaluate_refuses_unwritable_outputs_before_any_work(
    trained_tiny_model, tiny_dataset, tmp_path, below_a_file
):
    base = ["evaluate", "--model", trained_tiny_model, tiny_dataset]
    for option, bad in [
        ("--json", Path("/proc/avsc-test.json")),
        ("--json", tmp_path),
        ("--report", below_a_file / "report"),
        ("--report", below_a_file),
    ]:
        assert_refused(run_avsc(tmp_path, *base, option, bad), "evaluate", bad)


def test_sample_data_refuses_unwritable_folders(tmp_path, below_a_file):
    for bad in (Path("/proc/avsc-test-data"), below_a_file / "data", below_a_file):
        assert_refused(run_avsc(tmp_path, "sample-data", bad), "sample-data", bad)


def test_label_refuses_an_unwritable_csv(trained_tiny_model, tiny_dataset, tmp_path,
                                         below_a_file):
    for bad in (Path("/proc/avsc-labels.csv"), below_a_file / "labels.csv", tmp_path):
        run = run_avsc(tmp_path, "label", "--model", trained_tiny_model, tiny_dataset,
                       "--out", bad)
        assert_refused(run, "label", bad)


def test_export_refuses_a_bundle_it_cannot_write(trained_tiny_model, monkeypatch, capsys):
    # Root may write anywhere, so the read-only bundle is what os.access says it is.
    real_access = os.access
    monkeypatch.setattr(
        os, "access",
        lambda path, mode, **kw: Path(path) != trained_tiny_model and real_access(path, mode),
    )
    assert main(["export", "--model", str(trained_tiny_model), "--format", "tflite"]) == 1
    err = capsys.readouterr().err
    assert err == (f"avsc export: error: {trained_tiny_model}: cannot write the model bundle: "
                   "permission denied\n")
    assert not (trained_tiny_model / "exports").exists()


def test_an_os_error_escaping_a_command_is_one_line(trained_tiny_model, monkeypatch, capsys):
    def fail(model, brief=False):
        raise PermissionError(13, "Permission denied", "/somewhere/manifest.json")

    monkeypatch.setattr("avsc_core.cli.info.describe", fail)
    assert main(["info", "--model", str(trained_tiny_model)]) == 1
    assert capsys.readouterr().err == (
        "avsc info: error: /somewhere/manifest.json: permission denied\n")
    assert main(["info", "--model", str(trained_tiny_model), "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("/somewhere/manifest.json: permission denied\n")


# --- missing inputs: refused before TensorFlow loads ------------------------------------


def test_missing_models_are_refused_before_tensorflow(tmp_path, clip, tiny_dataset):
    missing = tmp_path / "no-such-model"
    for command, args in [
        ("classify", [clip]),
        ("evaluate", [tiny_dataset]),
        ("export", ["--format", "tflite"]),
        ("info", []),
        ("label", [tiny_dataset, "--out", tmp_path / "labels.csv"]),
    ]:
        run = run_avsc(tmp_path, command, "--model", missing, *args)
        assert_refused(run, command, missing, "model not found")
    not_a_model = tmp_path / "plain-folder"
    not_a_model.mkdir()
    run = run_avsc(tmp_path, "classify", "--model", not_a_model, clip)
    assert_refused(run, "classify", not_a_model, "no manifest.json")


def test_missing_inputs_are_refused_before_tensorflow(trained_tiny_model, tmp_path):
    missing = tmp_path / "nowhere"
    model = ["--model", trained_tiny_model]
    assert_refused(run_avsc(tmp_path, "classify", *model, missing / "clip.mp4"), "classify",
                   missing / "clip.mp4", "not found")
    assert_refused(run_avsc(tmp_path, "evaluate", *model, missing), "evaluate", missing)
    assert_refused(run_avsc(tmp_path, "label", *model, missing, "--out", tmp_path / "l.csv"),
                   "label", missing, "not found")
    assert_refused(run_avsc(tmp_path, "features", missing / "a.wav", "--kind", "mel"),
                   "features", missing / "a.wav", "not found")


# --- --debug, help ---------------------------------------------------------------------


def test_debug_works_before_and_after_the_command(tmp_path, capsys):
    missing = str(tmp_path / "no-such-model")
    for argv in (["--debug", "info", "--model", missing], ["info", "--debug", "--model", missing],
                 ["info", "--model", missing, "--debug"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "Traceback" in err
        assert err.endswith(f"avsc info: error: {missing}: model not found\n")
    assert main(["info", "--model", missing]) == 1
    assert "Traceback" not in capsys.readouterr().err
    assert build_parser().parse_args(["info", "--model", missing]).debug is False


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return commands.choices


@pytest.mark.parametrize("command", OWN_COMMANDS)
def test_every_option_has_help_with_its_default(command):
    for action in _commands()[command]._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = action.option_strings[0] if action.option_strings else action.dest
        assert action.help, f"avsc {command} {name} has no help"
        if action.option_strings:
            assert action.required or "default" in action.help, (
                f"avsc {command} {name}: the help does not say the default")


def test_export_help_says_what_works_and_tflite_bf16_is_one_clear_line(trained_tiny_model,
                                                                         capsys):
    text = " ".join(_commands()["export"].format_help().split())
    assert "What works: tflite fp32 and int8, onnx fp32, bf16 and int8." in text
    assert "tflite bf16 is refused" in text
    assert main(["export", "--model", str(trained_tiny_model), "--format", "tflite",
                 "--precision", "bf16"]) == 2  # options that cannot go together
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("avsc export: error: --precision bf16:")
    assert "use --format onnx --precision bf16" in err


# --- classify names its runtime --------------------------------------------------------


def test_classify_names_the_runtime(trained_tiny_model, clip, capsys):
    assert main(["classify", "--model", str(trained_tiny_model), str(clip)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["file", "label", "conf", "audio", "visual", "review"]
    assert lines[-1].startswith("runtime keras (the model has no export; 'avsc export --model")
    assert main(["classify", "--model", str(trained_tiny_model), str(clip), str(clip),
                 "--json"]) == 0
    assert [d["runtime"] for d in json.loads(capsys.readouterr().out)] == ["keras", "keras"]
    assert runtime_note("tflite-int8", trained_tiny_model) == "runtime tflite-int8"
