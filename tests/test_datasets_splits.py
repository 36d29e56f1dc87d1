"""The seeded, stratified, group-aware split rule."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from avsc_core.datasets import assign_splits, carve_split
from avsc_core.errors import AvscError


def _per_class(labels, splits):
    out = defaultdict(Counter)
    for label, split in zip(labels, splits):
        out[label][split] += 1
    return out


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, {"train": 1}),
        (2, {"train": 1, "test": 1}),
        (3, {"train": 1, "val": 1, "test": 1}),
        (4, {"train": 2, "val": 1, "test": 1}),
        (20, {"train": 14, "val": 3, "test": 3}),
        (100, {"train": 70, "val": 15, "test": 15}),
    ],
)
def test_tiny_and_large_classes_follow_the_documented_rule(n, expected):
    labels = ["a"] * n
    splits = assign_splits(labels, [f"f{i}" for i in range(n)], 0.15, 0.15, seed=0)
    assert Counter(splits) == Counter(expected)


def test_every_class_is_stratified_independently():
    labels = ["a"] * 40 + ["b"] * 10 + ["c"] * 3
    groups = [f"f{i}" for i in range(len(labels))]
    counts = _per_class(labels, assign_splits(labels, groups, seed=7))
    assert counts["a"] == Counter(train=28, val=6, test=6)
    assert counts["b"] == Counter(train=6, val=2, test=2)
    assert counts["c"] == Counter(train=1, val=1, test=1)


def test_same_seed_same_split_other_seed_other_split():
    labels = ["a", "b"] * 30
    groups = [f"f{i}" for i in range(60)]
    first = assign_splits(labels, groups, seed=3)
    assert assign_splits(labels, groups, seed=3) == first
    assert assign_splits(list(labels), list(groups), seed=4) != first


def test_adding_a_class_does_not_move_the_clips_of_other_classes():
    labels = ["a"] * 20
    groups = [f"a{i}" for i in range(20)]
    before = assign_splits(labels, groups, seed=1)
    after = assign_splits(labels + ["b"] * 10, groups + [f"b{i}" for i in range(10)], seed=1)
    assert after[:20] == before


def test_a_group_never_spans_two_splits():
    # 12 locations with 1 to 4 clips each, in two classes.
    labels, groups = [], []
    for loc in range(12):
        for _ in range(1 + loc % 4):
            labels.append("park" if loc % 2 else "bus")
            groups.append(f"city-{loc}")
    splits = assign_splits(labels, groups, seed=0)
    by_group = defaultdict(set)
    for group, split in zip(groups, splits):
        by_group[group].add(split)
    assert all(len(s) == 1 for s in by_group.values())
    # Each class has 6 locations: 1 to test, 1 to val, 4 to train.
    locations = defaultdict(Counter)
    for group, label in set(zip(groups, labels)):
        locations[label][by_group[group].pop()] += 1
    assert locations["bus"] == locations["park"] == Counter(train=4, val=1, test=1)


def test_carving_val_leaves_test_alone_and_takes_whole_groups_from_train():
    labels = ["a"] * 30
    groups = [f"loc{i // 3}" for i in range(30)]  # 10 locations of 3 clips
    splits = ["test"] * 6 + ["train"] * 24
    carved = carve_split(splits, labels, groups, fraction=0.15, seed=0)
    assert carved[:6] == ["test"] * 6
    val_groups = {g for g, s in zip(groups, carved) if s == "val"}
    # 8 train locations -> round(1.2) = 1 location = 3 clips.
    assert len(val_groups) == 1 and carved.count("val") == 3
    assert carve_split(splits, labels, groups, fraction=0.15, seed=0) == carved


def test_zero_fractions_keep_everything_in_train_and_bad_fractions_are_refused():
    assert set(assign_splits(["a"] * 5, list("vwxyz"), 0.0, 0.0)) == {"train"}
    with pytest.raises(AvscError, match="val fraction"):
        assign_splits(["a"], ["x"], val_fraction=1.5)
    with pytest.raises(AvscError, match="nothing to train"):
        assign_splits(["a"], ["x"], val_fraction=0.5, test_fraction=0.5)
