"""``avsc train``, ``evaluate`` and ``info`` as a user runs them."""

from __future__ import annotations

import json

import pytest

from avsc_core.cli.main import main


def test_info_lists_backbones_with_parameter_counts(trained_tiny_model, capsys):
    assert main(["info", "--model", str(trained_tiny_model)]) == 0
    out = capsys.readouterr().out
    assert "aud-mel" in out and "vis-inc" in out and "trainable parameters" in out
    assert "park, tram" in out and "fusion f4" in out


def test_evaluate_writes_contract_json(trained_tiny_model, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "metrics.json"
    report = tmp_path / "report"
    code = main(
        [
            "evaluate",
            "--model",
            str(trained_tiny_model),
            str(tiny_dataset),
            "--json",
            str(out),
            "--report",
            str(report),
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert {"n", "classes", "branches"} <= set(result)
    assert set(result["branches"]) == {"audio", "visual", "fused"}
    assert (report / "confusion-fused.png").exists()
    assert (report / "training-curves.png").exists()
    assert "fused" in capsys.readouterr().out


def test_training_into_an_existing_model_is_refused(trained_tiny_model, tiny_dataset, capsys):
    code = main(["train", str(tiny_dataset), "--out", str(trained_tiny_model), "--preset", "tiny"])
    assert code == 1
    err = capsys.readouterr().err
    assert "already there" in err and "Traceback" not in err


def test_resume_without_a_run_is_a_clear_error(tiny_dataset, tmp_path, capsys):
    code = main(["train", str(tiny_dataset), "--out", str(tmp_path / "m"), "--resume"])
    assert code == 1
    assert "no interrupted training run" in capsys.readouterr().err


def test_missing_dataset_is_a_clear_error(tmp_path, capsys):
    code = main(["train", str(tmp_path / "nothing"), "--out", str(tmp_path / "m")])
    assert code == 1
    assert "nothing" in capsys.readouterr().err


def test_one_weights_file_for_two_visual_backbones_is_refused(tiny_dataset, tmp_path, capsys):
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"x")
    code = main(
        [
            "train",
            str(tiny_dataset),
            "--out",
            str(tmp_path / "m"),
            "--preset",
            "paper",
            "--backbones",
            "vis-inc,vis-conv",
            "--visual-weights",
            str(weights),
        ]
    )
    assert code == 1
    assert "cannot start both visual backbones" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--preset", "huge"], ["--fusion", "f9"], ["--epochs", "x"]])
def test_bad_options_are_usage_errors(tiny_dataset, tmp_path, args):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(tiny_dataset), "--out", str(tmp_path / "m"), *args])
    assert exit_info.value.code == 2


def test_info_on_a_folder_that_is_not_a_model(tmp_path, capsys):
    assert main(["info", "--model", str(tmp_path)]) == 1
    assert "not a model bundle" in capsys.readouterr().err


def test_joint_strategy_trains_from_the_command_line(tiny_dataset, tmp_path, capsys):
    model = tmp_path / "joint"
    code = main(["train", str(tiny_dataset), "--out", str(model), "--preset", "tiny",
                 "--strategy", "joint", "--epochs", "2", "--visual-stages", "2",
                 "--visual-lr", "5e-4"])
    assert code == 0
    out = capsys.readouterr().out
    assert "strategy   joint" in out
    training = json.loads((model / "manifest.json").read_text())["training"]
    assert (training["joint_epochs"], training["joint_visual_stages"], training["visual_lr"]) == (
        2, 2, 5e-4)
    assert main(["info", "--model", str(model)]) == 0
    assert "2 epochs of joint optimisation (mel + tiny_cnn)" in capsys.readouterr().out


def test_joint_strategy_refuses_phase_options(tiny_dataset, tmp_path, capsys):
    code = main(["train", str(tiny_dataset), "--out", str(tmp_path / "m"), "--preset", "tiny",
                 "--strategy", "joint", "--phase1-epochs", "3"])
    assert code == 1
    assert "one phase" in capsys.readouterr().err
