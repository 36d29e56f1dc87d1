"""The paper preset's recipe: epochs per backbone, warm-up + cosine schedule, early
stopping on validation log loss, and how each new setting resumes."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from avsc_core.cli.main import build_parser
from avsc_core.cli.train import _given_settings
from avsc_core.errors import AvscError
from avsc_core.train import TrainConfig
from avsc_core.train.resume import (
    EPOCH_FIELDS,
    FIXED,
    JOINT_SHAPING,
    TWO_PHASE_SHAPING,
    check_resume,
)
from avsc_core.train.state import StepState, TrainState, phase1_step


def test_the_paper_preset_trains_each_backbone_for_its_own_epochs():
    paper = TrainConfig.for_preset("paper")
    assert paper == TrainConfig()
    assert [paper.backbone_epochs(b) for b in paper.backbones] == [60, 60, 60, 6, 6]
    assert (paper.phase2_epochs, paper.joint_epochs) == (30, 30)
    assert (paper.lr_schedule, paper.warmup_fraction, paper.patience) == ("cosine", 0.05, 8)
    assert paper.precision == "auto"


def test_the_tiny_preset_keeps_its_fast_defaults():
    tiny = TrainConfig.for_preset("tiny")
    assert {tiny.backbone_epochs(b) for b in tiny.backbones} == {10}
    assert (tiny.lr_schedule, tiny.patience, tiny.visual_epochs) == ("constant", 0, 0)


def test_settings_written_before_the_recipe_keep_what_that_version_did():
    old = {k: v for k, v in TrainConfig.for_preset("paper").to_dict().items()
           if k not in ("visual_epochs", "lr_schedule", "warmup_fraction", "patience",
                        "precision")}
    config = TrainConfig.from_dict(old)
    assert (config.visual_epochs, config.lr_schedule, config.patience, config.precision) == (
        0, "constant", 0, "float32")
    assert config.backbone_epochs("vis-conv") == config.phase1_epochs


@pytest.mark.parametrize("args, epochs", [
    ([], None),
    (["--phase1-epochs", "5"], (5, 5, None)),
    (["--phase1-epochs", "5", "--visual-epochs", "2"], (5, 2, None)),
    (["--visual-epochs", "2"], (None, 2, None)),
    (["--epochs", "3"], (3, 3, 3)),
])
def test_epoch_options_override_the_recipe(tmp_path, args, epochs):
    parsed = build_parser().parse_args(["train", str(tmp_path), "--out", str(tmp_path / "m"),
                                        *args])
    given = _given_settings(parsed)
    got = tuple(given.get(k) for k in ("phase1_epochs", "visual_epochs", "phase2_epochs"))
    assert got == (epochs or (None, None, None))
    config = TrainConfig.for_preset("paper", **given)
    if epochs and epochs[0]:
        assert config.backbone_epochs("vis-inc") == epochs[1]


def test_the_schedule_warms_up_then_decays_to_zero():
    from avsc_core.train.trainer import learning_rate

    assert learning_rate(1e-3, "constant", 0.05, 100) == 1e-3
    rate = learning_rate(1e-3, "cosine", 0.1, 100)
    at = {step: float(rate(step)) for step in (0, 5, 10, 55, 100)}
    assert at[0] == 0 and at[5] == pytest.approx(5e-4) and at[10] == pytest.approx(1e-3)
    assert at[55] == pytest.approx(5e-4, rel=1e-3) and at[100] == pytest.approx(0, abs=1e-9)


def test_training_stops_early_keeps_the_best_epoch_and_resumes_without_training(tmp_path):
    from avsc_core.train.monitor import fit_and_keep_best
    from avsc_core.train.pipeline import array_dataset
    from avsc_core.train.trainer import compile_model, training_model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    labels = (x[:, 0] > 0).astype(int)
    # The validation split has the opposite labels: the better the fit, the worse it does.
    train_ds = array_dataset(x, labels, 2, 16, True, 0)
    val_ds = array_dataset(x, 1 - labels, 2, 16, False, 0)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    net = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model = training_model(net, None, 0.0, 0)
    compile_model(model, keras.optimizers.Adam(0.05))
    state = TrainState(tmp_path / "state.json", {})
    step = state.step("phase2:fused")
    paths = {name: tmp_path / f"{name}.npz" for name in ("last", "best")}

    def fit() -> None:
        fit_and_keep_best(model, train_ds, val_ds, stage="phase2:fused", epochs=20,
                          steps_per_epoch=4, state=state, step=step, last_path=paths["last"],
                          best_path=paths["best"], final_path=tmp_path / "head.keras",
                          saved=net, patience=2)

    fit()
    val_log_loss = [h["val_log_loss"] for h in step.history]
    assert step.stopped_early and step.finished and step.epochs_done < 20
    assert step.best_epoch == int(np.argmin(val_log_loss)) == step.epochs_done - 3
    best = keras.saving.load_model(tmp_path / "head.keras", safe_mode=True)
    probs = best.predict_on_batch(x)[np.arange(64), 1 - labels]
    assert -np.log(probs).mean() == pytest.approx(val_log_loss[step.best_epoch], rel=1e-4)
    done = step.epochs_done
    step.finished = False  # as after a kill between the last epoch and the saved model
    fit()
    assert step.epochs_done == done and len(step.history) == done


def test_every_setting_has_a_resume_rule():
    classified = {*FIXED, *EPOCH_FIELDS, *TWO_PHASE_SHAPING, *JOINT_SHAPING, "backbones"}
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= classified


def _run(tmp_path, config: TrainConfig, **steps: StepState) -> TrainState:
    return TrainState(tmp_path / "state.json", {"config": config.to_dict()},
                      {phase1_step(name.replace("_", "-")): s for name, s in steps.items()})


def test_visual_epochs_resume_by_the_rules_of_epochs(tmp_path):
    saved = TrainConfig.for_preset("paper", backbones=("aud-mel", "vis-inc"))
    done = StepState(epochs_done=6, finished=True)
    state = _run(tmp_path, saved, vis_inc=done, aud_mel=StepState(epochs_done=3))
    # More audio epochs leave the finished visual backbone as it is.
    check_resume(tmp_path, state, saved, dataclasses.replace(saved, phase1_epochs=80))
    for change in ({"visual_epochs": 8}, {"phase1_epochs": 80, "visual_epochs": 0}):
        with pytest.raises(AvscError, match="vis-inc \\(Phase I\\) finished with 6 epochs"):
            check_resume(tmp_path, state, saved, dataclasses.replace(saved, **change))


def test_a_backbone_that_stopped_early_takes_any_total_it_did_not_reach(tmp_path):
    saved = TrainConfig.for_preset("paper", backbones=("aud-mel",))
    state = _run(tmp_path, saved, aud_mel=StepState(epochs_done=23, finished=True,
                                                    stopped_early=True))
    check_resume(tmp_path, state, saved, dataclasses.replace(saved, phase1_epochs=100))
    with pytest.raises(AvscError, match="already trained 23 epochs"):
        check_resume(tmp_path, state, saved, dataclasses.replace(saved, phase1_epochs=20))


@pytest.mark.parametrize("change", [{"patience": 3}, {"lr_schedule": "constant"},
                                    {"warmup_fraction": 0.1}])
def test_the_schedule_cannot_change_under_a_started_network(tmp_path, change):
    saved = TrainConfig.for_preset("paper", backbones=("aud-mel",))
    wanted = dataclasses.replace(saved, **change)
    check_resume(tmp_path, _run(tmp_path, saved), saved, wanted)
    with pytest.raises(AvscError, match="aud-mel \\(Phase I\\) has already trained with it"):
        check_resume(tmp_path, _run(tmp_path, saved, aud_mel=StepState(epochs_done=1)),
                     saved, wanted)


def test_joint_optimisation_fine_tunes_three_convnext_stages_by_default():
    from avsc_core.models.joint import JointNetConfig

    paper = TrainConfig.for_preset("paper", strategy="joint")
    assert (paper.joint_image_model, paper.joint_visual_stages, paper.joint_freeze_visual) == (
        "convnext_tiny", 0, False)
    assert JointNetConfig.paper(paper.joint_image_model).visual_stages == 3
