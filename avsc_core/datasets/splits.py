"""Seeded, stratified, group-aware train/val/test splits.

The rule, applied to each class on its own:

* Clips are split by *group* (the recording location for TAU, the file itself
  elsewhere), so a group never spans two splits. A group counts for the class most of
  its clips carry.
* The class's groups are shuffled with a generator seeded by ``seed`` and the class
  name, so a split does not change when another class is added.
* With ``n`` groups, ``test`` takes ``round(n * test_fraction)`` of them and ``val``
  ``round(n * val_fraction)``, but at least one each whenever its fraction is positive,
  and ``train`` always keeps at least one. ``test`` is served before ``val``: a class
  with 1 group is train only; with 2 groups one goes to train and one to test; with 3,
  one to each split.

Splits are therefore deterministic for a given seed and list of clips.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace

from avsc_core.datasets.types import SPLITS, Clip
from avsc_core.errors import AvscError


def _allocate(n: int, fractions: Sequence[float]) -> list[int]:
    """How many of ``n`` groups each part takes, in priority order; train keeps one."""
    left = n - 1
    counts = []
    for fraction in fractions:
        want = max(1, math.floor(n * fraction + 0.5)) if fraction > 0 else 0
        take = max(0, min(want, left))
        counts.append(take)
        left -= take
    return counts


def _group_label(
    labels: Sequence[str], indices: Sequence[int], groups: Sequence[str]
) -> dict[str, str]:
    """The majority label of each group among ``indices`` (ties: first name)."""
    votes: dict[str, Counter] = defaultdict(Counter)
    for i in indices:
        votes[groups[i]][labels[i]] += 1
    return {
        group: min(counter.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        for group, counter in votes.items()
    }


def _pick(
    labels: Sequence[str],
    groups: Sequence[str],
    indices: Sequence[int],
    parts: Sequence[tuple[str, float]],
    seed: int,
) -> dict[str, str]:
    """Map the groups of ``indices`` that leave train to their new split name."""
    by_class: dict[str, list[str]] = defaultdict(list)
    for group, label in _group_label(labels, indices, groups).items():
        by_class[label].append(group)
    moved: dict[str, str] = {}
    for label, members in sorted(by_class.items()):
        members.sort()
        random.Random(f"{seed}:{label}").shuffle(members)
        counts = _allocate(len(members), [fraction for _, fraction in parts])
        start = 0
        for (name, _), count in zip(parts, counts):
            for group in members[start : start + count]:
                moved[group] = name
            start += count
    return moved


def assign_splits(
    labels: Sequence[str],
    groups: Sequence[str],
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> list[str]:
    """Split items three ways by the rule of this module.

    Parameters
    ----------
    labels, groups : sequence of str
        One label and one group per item.
    val_fraction, test_fraction : float
        Share of each class's groups for validation and test.
    seed : int

    Returns
    -------
    list of str
        The split of each item.
    """
    check_fractions(val_fraction, test_fraction)
    moved = _pick(
        labels, groups, range(len(labels)), [("test", test_fraction), ("val", val_fraction)], seed
    )
    return [moved.get(group, "train") for group in groups]


def carve_split(
    splits: Sequence[str],
    labels: Sequence[str],
    groups: Sequence[str],
    fraction: float = 0.15,
    seed: int = 0,
    target: str = "val",
) -> list[str]:
    """Move a stratified share of the ``train`` groups to ``target``.

    Used when the data decides train and test itself (a ``split`` column, TAU fold
    files) but brings no validation part. Items outside ``train`` are left alone.
    """
    check_fractions(fraction, 0.0)
    train = [i for i, split in enumerate(splits) if split == "train"]
    moved = _pick(labels, groups, train, [(target, fraction)], seed)
    return [
        moved.get(groups[i], split) if split == "train" else split for i, split in enumerate(splits)
    ]


def split_warnings(
    clips: Sequence[Clip], classes: Sequence[str], expected: Sequence[str] = SPLITS
) -> list[str]:
    """Say which of the ``expected`` splits are empty, and which classes miss one."""
    present: dict[str, set[str]] = defaultdict(set)
    for clip in clips:
        present[clip.label].add(clip.split)
    used = set().union(*present.values())
    warnings = [
        f"no clip is in {split}: no class has enough clips (or recording locations) to spare"
        for split in expected
        if split not in used
    ]
    totals = Counter(clip.label for clip in clips)
    for name in classes:
        if not totals[name]:
            warnings.append(f"class '{name}' has no clips")
            continue
        missing = [s for s in expected if s in used and s not in present[name]]
        if missing:
            noun = "clip" if totals[name] == 1 else "clips"
            warnings.append(
                f"class '{name}' has {totals[name]} {noun}: none in {' or '.join(missing)}"
            )
    return warnings


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Refuse split shares outside [0, 1) or that leave nothing to train on.

    Raises
    ------
    AvscError
        Naming the share at fault.
    """
    for name, value in (("val fraction", val_fraction), ("test fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise AvscError(f"{name} must be in [0, 1), got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise AvscError(
            f"val and test fractions leave nothing to train on ({val_fraction} + {test_fraction})"
        )


def resolve_splits(
    clips: Sequence[Clip],
    classes: Sequence[str],
    decided: bool,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> tuple[list[Clip], list[str]]:
    """Give every clip its final split, and say what the user should know about it.

    Parameters
    ----------
    clips : sequence of Clip
        Clips whose ``split`` is meaningful only when ``decided``.
    classes : sequence of str
        Every class, to report the ones left without clips.
    decided : bool
        True when the data chose the splits (a ``split`` column, TAU fold files): then a
        missing ``val`` part is carved from ``train``. Otherwise the clips are split
        three ways with :func:`assign_splits`.

    Returns
    -------
    clips : list of Clip
    warnings : list of str
        Empty splits and classes missing from a split (see :func:`split_warnings`).
    """
    labels = [clip.label for clip in clips]
    groups = [clip.group for clip in clips]
    if not decided:
        splits = assign_splits(labels, groups, val_fraction, test_fraction, seed)
    elif not any(clip.split == "val" for clip in clips):
        splits = carve_split([c.split for c in clips], labels, groups, val_fraction, seed)
    else:
        splits = [clip.split for clip in clips]
    result = [replace(clip, split=split) for clip, split in zip(clips, splits)]
    expected = ["train"]
    expected += ["val"] if val_fraction > 0 else []
    expected += ["test"] if decided or test_fraction > 0 else []
    return result, split_warnings(result, classes, expected)
