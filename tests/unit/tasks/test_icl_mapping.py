"""icl_mapping: the packed bursty encoding, loss spans, labellings disjoint by hash, k-shot problems."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import pytest

from emergence.errors import UserError
from emergence.tasks import make_task
from emergence.tasks.base import hash_split
from emergence.tasks.icl import class_key, labelling_key


def pairs_of(prompt: str, target: str) -> list[tuple[str, str]]:
    """(item, label) pairs of a packed training prompt and its target."""
    text = prompt + target
    return [(text[i], text[i + 1]) for i in range(0, len(text), 2)]


def test_training_sequences_are_bursty_packed_pairs_with_every_label_scored() -> None:
    task = make_task("icl_mapping", items=26, labels=4, classes=3, pairs=10)
    for ex in task.examples("train", 50, seed=0):
        pairs = pairs_of(ex.prompt, ex.target)
        assert len(pairs) == 10 and len(ex.prompt) == 19
        assert all(i in task.item_symbols and lab in task.label_symbols for i, lab in pairs)
        # Every label inside the prompt is a loss span (the target, the last label, counts anyway).
        assert ex.loss_spans == tuple((2 * j + 1, 2 * j + 2) for j in range(9))
        assert [ex.prompt[a:b] for a, b in ex.loss_spans] == [lab for _, lab in pairs[:-1]]
        # Bursty: at most `classes` items, each always with the same label, labels distinct across them.
        labelling = dict(pairs)
        assert len(labelling) <= 3 and all(labelling[i] == lab for i, lab in pairs)
        assert len(set(labelling.values())) == len(labelling)
        assert ex.choices == ("0", "1", "2", "3") and ex.target in ex.choices


def test_fresh_labellings_vary_and_pool_one_fixes_them() -> None:
    fresh = make_task("icl_mapping", pairs=8)
    labels: dict[str, set[str]] = {}
    for ex in fresh.examples("train", 300, seed=1):
        for item, label in pairs_of(ex.prompt, ex.target):
            labels.setdefault(item, set()).add(label)
    assert all(len(s) == 4 for s in labels.values())  # pool 0: an item takes every label across sequences
    fixed = make_task("icl_mapping", pairs=8, pool=1)
    labels = {}
    for ex in fixed.examples("train", 300, seed=1):
        for item, label in pairs_of(ex.prompt, ex.target):
            labels.setdefault(item, set()).add(label)
    assert all(len(s) == 1 for s in labels.values())  # pool 1: one labelling, learnable in the weights


def test_burstiness_zero_draws_items_from_the_whole_set() -> None:
    task = make_task("icl_mapping", pairs=12, bursty=0.0)
    distinct = [
        len({i for i, _ in pairs_of(e.prompt, e.target)}) for e in task.examples("train", 100, seed=0)
    ]
    assert max(distinct) > task.opts.classes and sum(distinct) / len(distinct) > 8


def test_labellings_of_train_and_test_are_disjoint_by_hash() -> None:
    # A tiny space (C(4,2)·2 = 12 labellings) that training covers many times over: only the hash keeps
    # test labellings out of training.
    task = make_task("icl_mapping", items=4, labels=2, classes=2, pairs=6, test_fraction=0.3)
    train = {
        labelling_key(dict(pairs_of(e.prompt, e.target)))
        for seed in range(3)
        for e in task.examples("train", 400, seed=seed)
    }
    test = {e.meta["labelling"] for seed in range(3) for e in task.examples("test", 2, seed=seed)}
    assert train and test and train.isdisjoint(test)
    # The split is by class set: no test problem's classes are ever a training sequence's classes.
    train_classes = {class_key(k[::3]) for k in train if len(k) == 5}  # a sequence may show one class only
    test_classes = {class_key(k[::3]) for k in test}
    assert train_classes.isdisjoint(test_classes)
    assert all(hash_split(c, "icl_mapping", 0.3) == "train" for c in train_classes)
    assert all(hash_split(c, "icl_mapping", 0.3) == "test" for c in test_classes)
    # The space is enumerated: the test split is exact, every class of each test labelling queried once.
    n_test = 2 * sum(
        hash_split(c, "icl_mapping", 0.3) == "test" for c in ["ab", "ac", "ad", "bc", "bd", "cd"]
    )
    whole = task.examples("test", 2 * n_test, seed=0)
    assert len({e.meta["labelling"] for e in whole}) == n_test and len(test) <= n_test
    assert [e.target for e in whole].count("0") == n_test  # balanced answers
    assert all(whole[i].meta["labelling"] == whole[i + 1].meta["labelling"] for i in range(0, 2 * n_test, 2))
    with pytest.raises(UserError, match="holds only"):
        task.examples("test", 2 * n_test + 1)
    big = make_task("icl_mapping", items=52, labels=10, classes=8)  # too many to enumerate: rejection
    assert len({(e.meta["labelling"], e.prompt) for e in big.examples("test", 50)}) == 50
    with pytest.raises(UserError, match="explicit n"):
        task.examples("train")


@pytest.mark.parametrize("options", [{"labels": 2, "classes": 2}, {"labels": 4, "classes": 3, "items": 6}])
def test_every_item_label_is_balanced_in_both_splits(options: dict[str, int]) -> None:
    # The split ignores labels, so for every item each label is exactly as frequent among the test problems
    # as any other, and as frequent among the training sequences up to sampling noise: nothing learned about
    # an item's labels in training leans for or against its test labels (hashing labellings did: small
    # models then scored below chance).
    task = make_task("icl_mapping", pairs=8, test_fraction=0.3, **{"items": 26, **options})
    # The space is enumerated, so the whole test split is taken: every labelling of each test class set.
    sets = itertools.combinations(task.item_symbols, options["classes"])
    n_sets = sum(hash_split(class_key(c), "icl_mapping", 0.3) == "test" for c in sets)
    per_set = math.perm(options["labels"], options["classes"]) * options["classes"]
    test = task.examples("test", n_sets * per_set, seed=0)
    by_item: dict[str, Counter[str]] = {}
    for e in test:
        labelling = dict(zip(e.meta["labelling"][::3], e.meta["labelling"][1::3], strict=True))
        for item, label in labelling.items():
            by_item.setdefault(item, Counter())[label] += 1
    assert by_item
    for item, counts in by_item.items():
        assert set(counts) == set(task.label_symbols) and len(set(counts.values())) == 1, (item, counts)
    train: dict[str, Counter[str]] = {}
    for e in task.examples("train", 3000, seed=1):
        for item, label in set(pairs_of(e.prompt, e.target)):
            train.setdefault(item, Counter())[label] += 1
    for item, counts in train.items():
        total = sum(counts.values())
        for label in task.label_symbols:  # binomial: within 5 standard errors of uniform
            p = 1 / options["labels"]
            assert abs(counts[label] - total * p) < 5 * (total * p * (1 - p)) ** 0.5 + 1, (item, counts)


def test_k_shot_problems_come_from_the_query_labelling() -> None:
    task = make_task("icl_mapping", classes=3, labels=3)
    for q in task.examples("test", 30, seed=0):
        labelling = dict(zip(q.meta["labelling"][::3], q.meta["labelling"][1::3], strict=True))
        assert q.prompt == q.meta["query"] and labelling[q.prompt] == q.target
        assert task.in_context_query(q, 0, [0, 1]).prompt == q.prompt
        shot = task.in_context_query(q, 6, [0, 1, 2])
        assert shot == task.in_context_query(q, 6, [0, 1, 2])  # deterministic in the seed
        assert shot.prompt.endswith(q.prompt) and len(shot.prompt) == 13
        assert all(labelling[i] == lab for i, lab in pairs_of(shot.prompt[:-1], ""))
        assert shot.target == q.target and shot.choices == q.choices
    q = task.examples("test", 1, seed=0)[0]
    assert len({task.in_context_query(q, 6, [0, 1, s]).prompt for s in range(20)}) > 1


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"items": 60}, "items"),
        ({"labels": 1}, "labels"),
        ({"classes": 5, "labels": 4}, "classes"),
        ({"pairs": 1}, "pairs"),
        ({"bursty": 1.5}, "bursty"),
        ({"pool": -1}, "pool"),
        ({"fixed": 1.2}, "fixed"),
        ({"fixed": 0.5, "pool": 3}, "fixed"),
    ],
)
def test_bad_options_name_the_field(options: dict[str, object], field: str) -> None:
    with pytest.raises(UserError, match=field):
        make_task("icl_mapping", **options)


def test_fixed_class_sets_always_carry_one_labelling_and_never_reach_test() -> None:
    opts = {"items": 26, "labels": 2, "classes": 2, "pairs": 8}
    task = make_task("icl_mapping", fixed=0.5, **opts)
    seen: dict[str, set[str]] = {}
    for ex in task.examples("train", 4000, seed=3):
        labelling = dict(pairs_of(ex.prompt, ex.target))
        if len(labelling) == 2:  # both classes occurred, so the whole labelling is visible
            seen.setdefault(class_key(labelling), set()).add(labelling_key(labelling))
    fixed = {k for k in seen if task._fixed_labelling(k) is not None}
    free = set(seen) - fixed
    # About half of the class sets seen are fixed; each of them shows one labelling, the others show both.
    assert 0.35 < len(fixed) / len(seen) < 0.65
    assert all(len(seen[k]) == 1 for k in fixed)
    assert sum(len(seen[k]) == 2 for k in free) > 0.9 * len(free)
    # Test class sets are never trained on, fixed or not, and every labelling of them is a test problem.
    n_test = 4 * sum(
        task._in_test(dict.fromkeys(c, "0")) for c in itertools.combinations(task.item_symbols, 2)
    )
    test = task.examples("test", n_test, seed=0)
    test_sets = {class_key(ex.meta["labelling"].replace(",", "")[0::2]) for ex in test}
    assert test_sets and not test_sets & set(seen)
    per_set = Counter(class_key(ex.meta["labelling"].replace(",", "")[0::2]) for ex in test)
    assert set(per_set.values()) == {4}  # 2 labellings × 2 queries: a fixed per-item lean scores chance


def test_fixed_zero_is_the_fresh_task() -> None:
    a = make_task("icl_mapping", pairs=8)
    b = make_task("icl_mapping", pairs=8, fixed=0.0)
    assert [e.prompt for e in a.examples("train", 50, seed=1)] == [
        e.prompt for e in b.examples("train", 50, seed=1)
    ]
