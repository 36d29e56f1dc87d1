"""The training journal: its step names, reading it (core and app), old journals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.training import TrainingReport, interrupted_run, stage_title
from avsc_core.errors import AvscError
from avsc_core.train import TrainConfig
from avsc_core.train.resume import HEAD_STEPS, check_resume, discarded_steps
from avsc_core.train.state import (
    EMBEDDINGS_STEP,
    JOINT_STEP,
    JOURNAL,
    StepState,
    TrainState,
    canonical_step,
    phase1_step,
    phase2_step,
    read_journal,
    step_parts,
)

CONFIG = TrainConfig.for_preset("tiny", phase1_epochs=2, phase2_epochs=2,
                                backbones=("aud-mel", "vis-inc"))
HISTORY = [{"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4},
           {"epoch": 2, "loss": 0.8, "accuracy": 0.6, "val_loss": 0.9, "val_accuracy": 0.5}]


def write_journal(out: Path, steps: dict[str, StepState]) -> TrainState:
    """A journal as a run writes it, without training: settings, then steps."""
    state = TrainState(out / JOURNAL, {"config": CONFIG.to_dict()})
    state.save()
    for name, step in steps.items():
        state.steps[name] = step
        state.save()
    return state


def old_journal(out: Path, steps: dict[str, dict]) -> Path:
    """A journal with Phase I steps spelled ``phase1/<backbone>``, as before."""
    path = out / JOURNAL
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"version": 1, "settings": {"config": CONFIG.to_dict()},
                                "steps": steps}))
    return path


# ----- step names -----------------------------------------------------------------------

def test_every_step_is_spelled_phase_colon_model():
    assert phase1_step("aud-mel") == "phase1:aud-mel"
    assert phase2_step("fused") == "phase2:fused"
    assert EMBEDDINGS_STEP == "phase2:embeddings" and JOINT_STEP == "joint"
    assert HEAD_STEPS == ("phase2:audio", "phase2:visual", "phase2:fused")
    assert step_parts("phase1:vis-inc") == ("phase1", "vis-inc")
    assert step_parts(JOINT_STEP) == ("joint", "")
    for name in ("phase1:aud-mel", "phase2:fused", EMBEDDINGS_STEP, JOINT_STEP, "prepare"):
        assert canonical_step(name) == name
    assert canonical_step("phase1/aud-mel") == "phase1:aud-mel"


def test_the_app_titles_journal_steps_as_it_titles_progress_stages():
    assert stage_title(phase1_step("aud-mel")) == "Phase I: aud-mel backbone"
    assert stage_title(phase2_step("fused")) == "Phase II: fused fusion head"
    assert stage_title(EMBEDDINGS_STEP) == "Phase II: computing embeddings"
    assert stage_title(JOINT_STEP).startswith("Joint optimisation")


# ----- read_journal ---------------------------------------------------------------------

def test_read_journal_summarises_each_step_of_a_run(tmp_path):
    write_journal(tmp_path, {
        phase1_step("aud-mel"): StepState(epochs_done=2, best_epoch=2, finished=True,
                                          history=HISTORY),
        phase1_step("vis-inc"): StepState(epochs_done=1, history=HISTORY[:1]),
    })
    journal = read_journal(tmp_path)
    assert journal is not None and journal.interrupted
    assert list(journal.steps) == ["phase1:aud-mel", "phase1:vis-inc"]
    mel, inc = journal.steps.values()
    assert (mel.epochs_done, mel.finished, mel.history) == (2, True, tuple(HISTORY))
    assert (inc.epochs_done, inc.finished, [h["epoch"] for h in inc.history]) == (1, False, [1])

    (tmp_path / "manifest.json").write_text("{}")  # the run wrote its bundle
    journal = read_journal(tmp_path)
    assert journal is not None and not journal.interrupted


def test_read_journal_is_none_without_a_journal_it_can_read(tmp_path):
    assert read_journal(tmp_path) is None
    assert read_journal(tmp_path / "missing") is None
    path = tmp_path / JOURNAL
    path.parent.mkdir(parents=True)
    for text in ("{not json", json.dumps({"version": 99, "steps": {}}), "[]",
                 json.dumps({"version": 1, "steps": {"phase1:aud-mel": {"nope": 1}}})):
        path.write_text(text)
        assert read_journal(tmp_path) is None, text


def test_a_journal_without_steps_is_still_an_interrupted_run(tmp_path):
    # A run killed before its first epoch: nothing to plot, but resume is offered.
    write_journal(tmp_path, {})
    journal = read_journal(tmp_path)
    assert journal is not None and journal.interrupted and not journal.steps


def test_the_app_reads_the_history_and_the_resume_offer_from_the_journal(tmp_path):
    write_journal(tmp_path, {phase1_step("vis-inc"): StepState(epochs_done=2, history=[
        {"epoch": 1, "loss": 1.0, "accuracy": 0.5}, {"epoch": 2, "loss": 0.8}])})
    assert interrupted_run(tmp_path)
    report = TrainingReport()
    report.load_history(tmp_path)
    curve = report.curves["phase1:vis-inc"]
    assert curve.epochs == [1, 2] and curve.values["loss"] == [1.0, 0.8]
    (tmp_path / "manifest.json").write_text("{}")
    assert not interrupted_run(tmp_path)
    assert not interrupted_run(tmp_path / "elsewhere")


# ----- journals written before the common spelling --------------------------------------

def test_an_old_journal_is_read_with_todays_step_names_and_saved_with_them(tmp_path):
    done = {"epochs_done": 2, "best_epoch": 2, "best_score": [0.5, -1.0], "finished": True,
            "history": HISTORY}
    path = old_journal(tmp_path, {"phase1/aud-mel": done,
                                  "phase1/vis-inc": {**done, "epochs_done": 1,
                                                     "finished": False},
                                  "phase2:fused": {**done, "epochs_done": 1}})
    state = TrainState.load(path)
    assert list(state.steps) == ["phase1:aud-mel", "phase1:vis-inc", "phase2:fused"]
    assert state.steps["phase1:aud-mel"].best_score == [0.5, -1.0]
    assert [name for name in read_journal(tmp_path).steps] == list(state.steps)
    report = TrainingReport()
    report.load_history(tmp_path)
    assert report.curves["phase1:aud-mel"].epochs == [1, 2]

    state.save()
    assert set(json.loads(path.read_text())["steps"]) == {
        "phase1:aud-mel", "phase1:vis-inc", "phase2:fused"}


def test_an_old_journal_resumes_under_the_rules_of_resume(tmp_path):
    old_journal(tmp_path, {"phase1/aud-mel": {"epochs_done": 2, "finished": True},
                           "phase1/vis-inc": {"epochs_done": 1}})
    state = TrainState.load(tmp_path / JOURNAL)
    # The saved work is found under the new names: it keeps the rules' promises.
    with pytest.raises(AvscError, match=r"aud-mel \(Phase I\) finished with 2 epochs"):
        check_resume(tmp_path, state, CONFIG,
                     TrainConfig.from_dict({**CONFIG.to_dict(), "phase1_epochs": 3}))
    smaller = TrainConfig.from_dict({**CONFIG.to_dict(), "backbones": ["aud-mel"]})
    assert discarded_steps(state, CONFIG, smaller) == ["phase1:vis-inc"]


@pytest.mark.slow
def test_a_run_interrupted_under_the_old_spelling_resumes_its_epochs(tiny_dataset, tmp_path):
    from avsc_core.progress import Cancelled
    from avsc_core.train import train_model

    config = TrainConfig.for_preset("tiny", phase1_epochs=2, phase2_epochs=1,
                                    backbones=("aud-mel",), batch_size=8)
    out = tmp_path / "model"
    epochs: list[tuple[str, int]] = []

    def progress(event):
        if event.info.get("event") == "epoch":
            epochs.append((event.stage, event.done))

    with pytest.raises(Cancelled):
        train_model(tiny_dataset, out, config, progress=progress, cancel=lambda: bool(epochs))
    assert epochs == [("phase1:aud-mel", 1)]
    # Spell the journal as the versions before did.
    path = out / JOURNAL
    data = json.loads(path.read_text())
    data["steps"] = {name.replace("phase1:", "phase1/"): step
                     for name, step in data["steps"].items()}
    assert "phase1/aud-mel" in data["steps"]
    path.write_text(json.dumps(data))

    epochs.clear()
    train_model(tiny_dataset, out, resume=True, progress=progress)
    assert epochs[0] == ("phase1:aud-mel", 2)  # epoch 1 was not trained again
    manifest = json.loads((out / "manifest.json").read_text())
    assert [h["epoch"] for h in manifest["history"]["phase1:aud-mel"]] == [1, 2]
    assert not any("/" in name for name in manifest["history"])
