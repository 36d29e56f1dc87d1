"""``avsc train`` on data, options and folders that used to end in a traceback or a trap.

Each test checks what the user sees (exit code 1, one ``avsc train: error:`` line naming
the path or option and what to do, no traceback) and that the folder can then be
completed, with ``--resume`` and corrected options, or started again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, TINY_CLASSES, write_media

from avsc_core.cli.main import build_parser, main
from avsc_core.config import FeatureConfig, MediaConfig
from avsc_core.datasets import load_dataset
from avsc_core.errors import AvscError
from avsc_core.locks import OutputBusyError, OutputLock
from avsc_core.progress import Cancelled
from avsc_core.train import TrainConfig, train_model
from avsc_core.train.resume import check_resume, check_split_options, discarded_steps
from avsc_core.train.state import StepState, TrainState

TINY = ["--preset", "tiny"]


def train(capsys, *args: str) -> tuple[int, str]:
    """Run ``avsc train ARGS``; return the exit code and the error line (or "")."""
    code = main(["train", *map(str, args)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("avsc train: error:")]
    assert len(errors) == (code == 1), err
    return code, errors[0] if errors else ""


def write_clip(path: Path, label: str, *, audio: bool = True, video: bool = True) -> Path:
    """A 1-s clip whose tone and colour tell its class (a wav file when it has no video)."""
    hz, colour = TINY_CLASSES[label]
    if not video:
        return write_media(path.with_suffix(".wav"), seconds=1.0, video=False,
                           audio_codec="pcm_s16le", tone_hz=hz)
    return write_media(path, seconds=1.0, fps=4, size=(48, 32), audio=audio, tone_hz=hz,
                       frame_colour=colour)


@pytest.fixture(scope="session")
def sound_only_data(tmp_path_factory) -> Path:
    """Two classes of wav files: nothing for the visual networks."""
    root = tmp_path_factory.mktemp("sound-only")
    for label in TINY_CLASSES:
        for i in range(4):
            write_clip(root / label / f"{label}-{i}", label, video=False)
    return root


@pytest.fixture(scope="session")
def silent_data(tmp_path_factory) -> Path:
    """Two classes of videos without a sound track: nothing for the audio networks."""
    root = tmp_path_factory.mktemp("silent")
    for label in TINY_CLASSES:
        for i in range(4):
            write_clip(root / label / f"{label}-{i}.mp4", label, audio=False)
    return root


@pytest.fixture
def one_class_data(tmp_path) -> Path:
    root = tmp_path / "one-class"
    for i in range(3):
        write_clip(root / "park" / f"park-{i}.mp4", "park")
    return root


# ----- 1. data no model can learn from ------------------------------------------------

def test_one_class_is_refused_before_anything_is_written(one_class_data, tmp_path, capsys):
    out = tmp_path / "model"
    code, error = train(capsys, one_class_data, "--out", out, *TINY)
    assert code == 1
    assert str(one_class_data) in error and "only one class (park)" in error
    assert "at least 2 classes" in error
    assert not out.exists()


def test_a_class_without_training_clips_is_refused(tmp_path, capsys):
    rows = ["path,label,split"]
    for label, split in (("park", "train"), ("park", "test"), ("tram", "test")):
        clip = write_clip(tmp_path / f"{label}-{split}.mp4", label)
        rows.append(f"{clip.name},{label},{split}")
    table = tmp_path / "data.csv"
    table.write_text("\n".join(rows) + "\n")
    code, error = train(capsys, table, "--out", tmp_path / "model", *TINY)
    assert code == 1 and "class 'tram' has 1 clip but none in the training split" in error
    assert not (tmp_path / "model").exists()


def test_a_journal_without_finished_work_never_traps_the_folder(
        one_class_data, tmp_path, capsys):
    # What earlier versions left after crashing on a one-class dataset.
    out = tmp_path / "model"
    dataset = load_dataset(one_class_data)
    TrainState(out / "training" / "state.json", {
        "config": TrainConfig.for_preset("tiny").to_dict(),
        "media": MediaConfig().to_dict(),
        "features": FeatureConfig().to_dict(),
        "dataset": dataset.to_dict(),
    }).save()
    for args in ([], ["--resume"]):
        code, error = train(capsys, one_class_data, "--out", out, *TINY, *args)
        assert code == 1 and "only one class (park)" in error, args
        assert "interrupted training run" not in error


def test_sound_only_data_names_the_backbones_that_work_and_resume_takes_them(
        sound_only_data, tmp_path, capsys):
    out = tmp_path / "model"
    # Joint optimisation needs both modalities and says what to do instead.
    code, error = train(capsys, sound_only_data, "--out", out, *TINY, "--strategy", "joint")
    assert code == 1 and "no training clip has both sound and pictures" in error
    assert error.endswith("--strategy two-phase --backbones aud-mel,aud-gam,aud-cqt")
    # The refused run saved no work: a new run replaces it, and is refused after decoding,
    # before any training, with the backbones that would work.
    code, error = train(capsys, sound_only_data, "--out", out, *TINY)
    assert code == 1
    assert str(sound_only_data) in error
    assert "no training clip has pictures, which vis-inc, vis-conv need" in error
    assert error.endswith("--backbones aud-mel,aud-gam,aud-cqt")
    assert not (out / "backbones").exists()
    assert train(capsys, sound_only_data, "--out", out, *TINY) == (1, error)
    # Resuming with the backbones it offered completes the folder.
    code, _ = train(capsys, sound_only_data, "--out", out, "--resume", "--backbones", "aud-mel",
                    "--epochs", "1")
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [b["name"] for b in manifest["backbones"]] == ["aud-mel"]
    assert set(manifest["heads"]) == {"audio"}
    assert manifest["training"]["phase1_epochs"] == 1
    assert manifest["metrics"]["test"]["branches"]["fused"] is not None


def test_silent_videos_offer_the_visual_backbones(silent_data, tmp_path, capsys):
    code, error = train(capsys, silent_data, "--out", tmp_path / "m", *TINY)
    assert code == 1
    assert "no training clip has sound, which aud-mel, aud-gam, aud-cqt need" in error
    assert error.endswith("--backbones vis-inc,vis-conv")
    # The user's own choice, less what cannot train, comes first.
    code, error = train(capsys, silent_data, "--out", tmp_path / "m", *TINY,
                        "--backbones", "aud-mel,vis-inc")
    assert code == 1 and error.endswith("--backbones vis-inc")


# ----- 2. options given again on --resume --------------------------------------------

def journal(tmp_path: Path, config: TrainConfig, steps: dict[str, StepState] | None = None
            ) -> TrainState:
    return TrainState(tmp_path / "state.json",
                      {"config": config.to_dict(), "dataset": {"layout": "folders"},
                       "split": {"val_fraction": 0.15, "test_fraction": 0.15}}, steps or {})


SAVED = TrainConfig.for_preset("tiny", phase1_epochs=2, phase2_epochs=2,
                               backbones=("aud-mel", "vis-inc"))
DONE = StepState(epochs_done=2, finished=True)


def resumed(state: TrainState, **changes) -> None:
    wanted = TrainConfig.from_dict({**SAVED.to_dict(), **changes})
    check_resume(Path("model"), state, SAVED, wanted)


@pytest.mark.parametrize("epochs_done, change, words", [
    (1, {"seed": 3}, "--seed 3: this run has 0, and the seed drew the split"),
    (1, {"preset": "paper"}, "--preset paper: this run has tiny"),
    (1, {"strategy": "joint"}, "--strategy joint: this run has two-phase"),
    (1, {"batch_size": 4},
     "--batch-size 4: this run has 8, and aud-mel (Phase I) has already trained with it"),
    (1, {"audio_lr": 0.1}, "--audio-lr 0.1: this run has 0.002"),
    (2, {"phase1_epochs": 1}, "aud-mel (Phase I) has already trained 2 epochs"),
])
def test_resume_refuses_what_the_saved_work_cannot_take(tmp_path, epochs_done, change, words):
    state = journal(tmp_path, SAVED, {"phase1:aud-mel": StepState(epochs_done=epochs_done)})
    with pytest.raises(AvscError) as error:
        resumed(state, **change)
    message = str(error.value)
    assert message.startswith("model: cannot resume with ") and words in message, message
    assert ", or train into another --out" in message and "\n" not in message


def test_resume_honours_what_the_saved_work_allows(tmp_path):
    state = journal(tmp_path, SAVED, {"phase1:aud-mel": StepState(epochs_done=1)})
    # More or fewer epochs, as totals; what shapes only steps not started yet.
    resumed(state, phase1_epochs=5, phase2_epochs=1, visual_lr=0.5, fusion="f2")
    resumed(state, backbones=("vis-inc", "aud-mel"))  # another order is the same set
    # Nothing trained yet: the batch size may change too.
    resumed(journal(tmp_path, SAVED), batch_size=4)


def test_epochs_of_a_finished_phase_and_fusion_after_phase2_are_refused(tmp_path):
    state = journal(tmp_path, SAVED, {"phase1:aud-mel": DONE, "phase1:vis-inc": DONE,
                                      "phase2:fused": StepState(epochs_done=1)})
    with pytest.raises(AvscError, match=r"--phase1-epochs 3: .*aud-mel \(Phase I\) finished "
                                        r"with 2 epochs; resume without --phase1-epochs "
                                        r"\(or --epochs"):
        resumed(state, phase1_epochs=3)
    with pytest.raises(AvscError, match=r"--fusion f2: .*the fused head \(Phase II\)"):
        resumed(state, fusion="f2")
    resumed(state, phase2_epochs=4)  # the heads are not finished


def test_a_smaller_backbone_set_discards_its_phase1_and_redoes_phase2(tmp_path):
    state = journal(tmp_path, SAVED, {"phase1:aud-mel": DONE, "phase1:vis-inc": DONE,
                                      "phase2:fused": DONE,
                                      "phase2:embeddings": StepState(finished=True)})
    smaller = TrainConfig.from_dict({**SAVED.to_dict(), "backbones": ["aud-mel"]})
    assert discarded_steps(state, SAVED, smaller) == [
        "phase1:vis-inc", "phase2:fused", "phase2:embeddings"]
    # Phase II is done again, so its epochs and fusion may change with it.
    resumed(state, backbones=("aud-mel",), fusion="f1", phase2_epochs=5)


def test_the_split_options_of_a_run_cannot_change(tmp_path):
    state = journal(tmp_path, SAVED)
    check_split_options(Path("m"), state, {"layout": "auto", "val_fraction": 0.15,
                                           "test_fraction": None})
    for given, words in [({"layout": "csv"}, "--layout csv: this run has folders"),
                         ({"test_fraction": 0.3}, "--test-fraction 0.3: this run has 0.15")]:
        with pytest.raises(AvscError, match=words):
            check_split_options(Path("m"), state, given)


def test_resume_applies_new_epoch_totals_and_refuses_other_changes(
        tiny_dataset, tmp_path, capsys):
    out = tmp_path / "model"
    config = TrainConfig.for_preset("tiny", phase1_epochs=2, phase2_epochs=2,
                                    backbones=("aud-mel",))
    epochs: list[int] = []
    busy: list[str] = []

    def progress(event):
        if event.info.get("event") == "epoch" and event.stage == "phase1:aud-mel":
            epochs.append(event.done)
            try:  # a second writer is refused while the run holds the folder
                OutputLock(out).acquire()
            except OutputBusyError as exc:
                busy.append(str(exc))

    with pytest.raises(Cancelled):
        train_model(tiny_dataset, out, config, progress=progress, cancel=lambda: bool(epochs))
    assert epochs == [1] and "is being written by" in busy[0]

    for option, words in [(["--seed", "3"], "--seed 3: this run has 0"),
                          (["--batch-size", "4"], "--batch-size 4: this run has 8"),
                          (["--preset", "paper"], "--preset paper: this run has tiny"),
                          (["--val-fraction", "0.3"], "--val-fraction 0.3: this run has 0.15")]:
        code, error = train(capsys, tiny_dataset, "--out", out, "--resume", *option)
        assert code == 1 and f"{out}: cannot resume with {words}" in error
        assert error.endswith("resume without " + option[0] + ", or train into another --out")

    code, _ = train(capsys, tiny_dataset, "--out", out, "--resume", "--epochs", "3",
                    "--fusion", "f2")
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert [h["epoch"] for h in manifest["history"]["phase1:aud-mel"]] == [1, 2, 3]
    assert len(manifest["history"]["phase2:audio"]) == 3
    training = manifest["training"]
    assert (training["phase1_epochs"], training["phase2_epochs"], training["fusion"]) == (
        3, 3, "f2")


# ----- 3. outputs and values refused before TensorFlow loads ----------------------

def test_unusable_paths_are_refused_at_once_without_tensorflow(tiny_dataset, tmp_path):
    script = (
        "import sys\n"
        "from avsc_core.cli.main import main\n"
        "code = main(sys.argv[1:])\n"
        "print(code, 'tensorflow' in sys.modules)\n"
    )
    cases = [
        ([str(tmp_path / "no-such-data"), "--out", str(tmp_path / "m")],
         "no-such-data: no such file or folder"),
        ([str(tiny_dataset), "--out", "/proc/m"], "/proc/m: cannot write the model bundle"),
        ([str(tiny_dataset), "--out", str(tmp_path / "m"), "--epochs", "-1"],
         "--epochs must be at least 1, got -1"),
        ([str(tiny_dataset), "--out", str(tmp_path / "m"), "--batch-size", "0"],
         "--batch-size must be at least 1, got 0"),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for args, words in cases:
        done = subprocess.run([sys.executable, "-c", script, "train", *args], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=60)
        assert done.stdout.split() == ["1", "False"], (args, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("avsc train: error: "), done.stderr
        assert words in lines[0]


@pytest.mark.parametrize("option", [["--val-fraction", "1.5"], ["--jobs", "0"],
                                    ["--joint-visual-stages", "-2"], ["--audio-lr", "0"]])
def test_bad_values_are_one_line(tiny_dataset, tmp_path, capsys, option):
    code, error = train(capsys, tiny_dataset, "--out", tmp_path / "m", *option)
    assert code == 1 and option[0] in error and option[1] in error


# ----- 4. one writer per output -------------------------------------------------------

def test_a_second_training_into_the_same_output_is_refused(tiny_dataset, tmp_path, capsys):
    out = tmp_path / "model"
    with OutputLock(out):
        code, error = train(capsys, tiny_dataset, "--out", out, *TINY)
    assert code == 1 and f"{out}: is being written by" in error
    assert not out.exists()


# ----- 5. help --------------------------------------------------------------------------

def test_every_train_option_has_help_with_its_default():
    parser = build_parser()
    command = next(a for a in parser._subparsers._group_actions if a.choices)
    for action in command.choices["train"]._actions:
        if action.option_strings and action.dest != "help":
            assert action.help and "default" in action.help, action.option_strings


# ----- 6. training metrics and avsc evaluate score alike ------------------------------

@pytest.fixture(scope="session")
def partly_silent_data(tmp_path_factory) -> Path:
    """A CSV dataset where some clips have no pictures (wav) and some no sound."""
    root = tmp_path_factory.mktemp("partly-silent")
    kinds = {"av": {}, "sound": {"video": False}, "silent": {"audio": False}}
    plan = {"train": ["av"] * 3 + ["sound", "silent"], "val": ["av"],
            "test": ["av", "sound", "silent"]}
    rows = ["path,label,split"]
    for label in TINY_CLASSES:
        for split, members in plan.items():
            for i, kind in enumerate(members):
                clip = write_clip(root / f"{label}-{split}-{kind}-{i}.mp4", label, **kinds[kind])
                rows.append(f"{clip.name},{label},{split}")
    (root / "data.csv").write_text("\n".join(rows) + "\n")
    return root / "data.csv"


def test_training_metrics_equal_evaluate_on_clips_without_sound_or_pictures(
        partly_silent_data, tmp_path):
    from avsc_core.evaluation.evaluate import evaluate_model

    config = TrainConfig.for_preset("tiny", phase1_epochs=1, phase2_epochs=1,
                                    backbones=("aud-mel", "vis-inc"))
    model = train_model(partly_silent_data, tmp_path / "model", config)
    recorded = json.loads((model / "manifest.json").read_text())["metrics"]["test"]
    evaluated = evaluate_model(model, partly_silent_data, split="test")
    assert recorded["n"] == evaluated["n"] == 6
    # The fused branch answers every clip, from the branch that exists when one is missing.
    assert np.sum(recorded["branches"]["fused"]["confusion"]) == 6
    assert np.sum(recorded["branches"]["audio"]["confusion"]) == 4
    for branch in ("audio", "visual", "fused"):
        mine, theirs = recorded["branches"][branch], evaluated["branches"][branch]
        assert mine["confusion"] == theirs["confusion"], branch
        for metric in ("accuracy", "log_loss"):
            assert mine[metric] == pytest.approx(theirs[metric], abs=1e-6), (branch, metric)
