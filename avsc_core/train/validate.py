"""Refusing data a model cannot be trained on, before any training (no TensorFlow here).

A run that trains for minutes and then fails leaves a folder the user has to clean up;
these checks run when the dataset is read (before the run folder is written) and right
after every clip is decoded (before the first epoch), and each says what would work.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from avsc_core.backbones import AUDIO, VISUAL, modality_of
from avsc_core.datasets import Dataset
from avsc_core.errors import AvscError
from avsc_core.features.prepare import PreparedClip
from avsc_core.train.settings import ALL_BACKBONES, TrainConfig

# A network learns to tell scenes apart only from clips of at least this many of them.
MIN_CLASSES = 2
_WORDS = {AUDIO: "sound", VISUAL: "pictures"}


def check_classes(dataset: Dataset) -> None:
    """Refuse a dataset with fewer than two classes to train on, or a class kept out of
    training by its split.

    Classes without any clip are allowed: TAU 2021 always lists its ten scenes, and a
    partial download trains on the ones it has.

    Raises
    ------
    AvscError
        Naming the dataset, the class and what to do.
    """
    totals = Counter(c.label for c in dataset.clips)
    training = Counter(c.label for c in dataset.split("train"))
    for name in dataset.classes:
        if totals[name] and not training[name]:
            raise AvscError(
                f"{dataset.root}: class '{name}' has {_clips(totals[name])} but none in the "
                "training split; give it training clips (the split column or fold files "
                "decide), or leave it out"
            )
    _need_two_classes(dataset.root, dataset.classes, training, "clips to train on")


def check_prepared(
    data: str | Path,
    dataset: Dataset,
    train: Sequence[PreparedClip],
    config: TrainConfig,
    parts: Mapping[str, tuple[str, str]],
) -> None:
    """Refuse training when decoding left a class, or a network, without training clips.

    Parameters
    ----------
    train : sequence of PreparedClip
        The training clips that could be decoded.
    parts : mapping
        ``{backbone: (modality, feature)}`` of the model to train.

    Raises
    ------
    AvscError
        A class whose training clips are all unreadable; a backbone (or joint
        optimisation) whose modality the training clips of fewer than two classes have,
        with the ``--backbones`` or ``--strategy`` that would work.
    """
    expected = Counter(c.label for c in dataset.split("train"))
    readable = Counter(c.clip.label for c in train)
    for name in dataset.classes:
        if expected[name] and not readable[name]:
            raise AvscError(
                f"{data}: class '{name}' has no readable training clip (its "
                f"{_clips(expected[name])} could not be used; the dataset check above says why)"
            )
    having = {
        AUDIO: {c.clip.label for c in train if c.has_audio},
        VISUAL: {c.clip.label for c in train if c.has_video},
    }
    if config.strategy == "joint":
        both = {c.clip.label for c in train if c.has_audio and c.has_video}
        if len(both) < MIN_CLASSES:
            raise AvscError(
                f"{data}: {_coverage(both, 'both sound and pictures')}, which joint "
                f"optimisation needs; {_two_phase_instead(having)}"
            )
        return
    for modality, word in _WORDS.items():
        needing = [b for b, (m, _) in parts.items() if m == modality]
        if needing and len(having[modality]) < MIN_CLASSES:
            raise AvscError(
                f"{data}: {_coverage(having[modality], word)}, which {', '.join(needing)} "
                f"{'needs' if len(needing) == 1 else 'need'}; {_backbones_instead(having, config)}"
            )


def _need_two_classes(
    root: Path, classes: Sequence[str], counts: Mapping[str, int], what: str
) -> None:
    used = [name for name in classes if counts.get(name)]
    if len(used) >= MIN_CLASSES:
        return
    which = f"only one class ({used[0]}) has" if used else "no class has"
    raise AvscError(
        f"{root}: {which} {what}; a scene classifier needs at least {MIN_CLASSES} classes: "
        "add clips of another scene"
    )


def _clips(n: int) -> str:
    return f"{n} clip" if n == 1 else f"{n} clips"


def _coverage(labels: Iterable[str], word: str) -> str:
    labels = sorted(labels)
    if not labels:
        return f"no training clip has {word}"
    return f"only the training clips of '{labels[0]}' have {word}"


def _usable(having: Mapping[str, set[str]], backbones: Iterable[str]) -> list[str]:
    return [b for b in backbones if len(having[modality_of(b)]) >= MIN_CLASSES]


def _backbones_instead(having: Mapping[str, set[str]], config: TrainConfig) -> str:
    # Prefer the user's own choice minus what cannot train; else every network that can.
    usable = _usable(having, config.backbones) or _usable(having, ALL_BACKBONES)
    if not usable:
        return "every network needs training clips of at least two classes with its input"
    return f"train the networks that can with --backbones {','.join(usable)}"


def _two_phase_instead(having: Mapping[str, set[str]]) -> str:
    usable = _usable(having, ALL_BACKBONES)
    if not usable:
        return "every network needs training clips of at least two classes with its input"
    if len(usable) == len(ALL_BACKBONES):
        return "train each modality on its own with --strategy two-phase"
    return f"train two-phase instead: --strategy two-phase --backbones {','.join(usable)}"
