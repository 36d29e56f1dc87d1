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


def _train_parser():
    from avsc_core.cli.main import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    return parser, subparsers.choices["train"]


def test_every_setting_has_the_option_of_its_name():
    import dataclasses

    from avsc_core.train import TrainConfig

    _, train = _train_parser()
    options = {a.dest: a.option_strings for a in train._actions}
    for field in dataclasses.fields(TrainConfig):
        assert field.name in options, field.name
        assert "--" + field.name.replace("_", "-") in options[field.name], field.name


def test_the_options_go_to_the_config_by_name(tmp_path):
    from avsc_core.cli.train import _given_settings
    from avsc_core.train import TrainConfig

    parser, _ = _train_parser()
    args = parser.parse_args([
        "train", str(tmp_path), "--out", str(tmp_path / "m"), "--strategy", "joint",
        "--joint-epochs", "4", "--lr-schedule", "constant", "--warmup-fraction", "0.1",
        "--precision", "auto", "--fusion-lr", "0.02", "--mixup-alpha", "0.2",
        "--joint-feature", "gam", "--joint-image-model", "inception_v3",
        "--joint-visual-stages", "5", "--joint-freeze-visual", "--joint-branch-weight", "0.5",
        "--backbones", "aud-mel, vis-inc", "--seed", "3"])
    given = _given_settings(args)
    assert given == {
        "strategy": "joint", "joint_epochs": 4, "lr_schedule": "constant",
        "warmup_fraction": 0.1, "precision": "auto", "fusion_lr": 0.02, "mixup_alpha": 0.2,
        "joint_feature": "gam", "joint_image_model": "inception_v3",
        "joint_visual_stages": 5, "joint_freeze_visual": True, "joint_branch_weight": 0.5,
        "backbones": ("aud-mel", "vis-inc"), "seed": 3}
    config = TrainConfig.for_preset("paper", **given)
    assert all(getattr(config, name) == value for name, value in given.items())
    # Options not given stay unset, so that --resume tells them from the defaults.
    bare = parser.parse_args(["train", str(tmp_path), "--out", str(tmp_path / "m")])
    assert _given_settings(bare) == {}


def test_the_earlier_joint_option_names_still_work(tmp_path):
    from avsc_core.cli.train import _given_settings

    parser, _ = _train_parser()
    args = parser.parse_args(["train", str(tmp_path), "--out", str(tmp_path / "m"),
                              "--image-model", "inception_v3", "--visual-stages", "2",
                              "--freeze-visual"])
    assert _given_settings(args) == {"joint_image_model": "inception_v3",
                                     "joint_visual_stages": 2, "joint_freeze_visual": True}


@pytest.mark.parametrize("option, words", [
    (["--warmup-fraction", "1"], "--warmup-fraction must be at least 0 and below 1"),
    (["--fusion-lr", "0"], "--fusion-lr must be above 0"),
    (["--mixup-alpha", "-1"], "--mixup-alpha must be at least 0"),
    (["--joint-epochs", "0"], "--joint-epochs must be at least 1"),
])
def test_bad_new_option_values_name_the_option(tiny_dataset, tmp_path, capsys, option, words):
    code = main(["train", str(tiny_dataset), "--out", str(tmp_path / "m"), *option])
    assert code == 1
    assert words in capsys.readouterr().err


@pytest.mark.parametrize("option, words", [
    (["--epochs", "2", "--joint-epochs", "3"], "give either --epochs or"),
    (["--epochs", "2", "--phase1-epochs", "3"], "give either --epochs or"),
    (["--strategy", "joint", "--phase1-epochs", "3"], "joint optimisation has one phase"),
    (["--phase", "2"], "--phase 2 continues a Phase I run: add --resume"),
])
def test_options_that_cannot_go_together_are_usage_errors(tiny_dataset, tmp_path, capsys,
                                                          option, words):
    """Exit 2, as for argparse's own usage errors (the contract's code for them)."""
    code = main(["train", str(tiny_dataset), "--out", str(tmp_path / "m"), *option])
    err = capsys.readouterr().err
    assert code == 2 and words in err and err.count("\n") == 1
