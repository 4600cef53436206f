"""Grammar tasks: the Task contract, determinism, disjoint splits, labels checked against the grammar."""

from __future__ import annotations

from typing import Any

import pytest

import emergence.tasks.grammar_tasks  # noqa: F401  (registers the grammar tasks until tasks/__init__ does)
from emergence.corpus import Grammar, GrammarConfig
from emergence.errors import UserError
from emergence.tasks import TASKS, Task, example_hash, make_task

CASES: list[tuple[str, dict[str, Any]]] = [
    ("agreement", {}),
    ("agreement", {"format": "pair", "max_depth": 1}),
    ("agreement", {"format": "judge", "min_attractors": 1}),
    ("polarity", {}),
]


@pytest.mark.parametrize(("name", "options"), CASES)
def test_contract_and_determinism(name: str, options: dict[str, Any]) -> None:
    assert name in TASKS
    task = make_task(name, **options)
    assert isinstance(task, Task) and task.kind == "choice"
    alphabet = set(task.alphabet())
    a = task.examples("train", 30, seed=5)
    assert a == make_task(name, **task.options).examples("train", 30, seed=5)
    assert task.examples("train", 12, seed=5) == a[:12]  # prefix-stable
    assert a != task.examples("train", 30, seed=6)
    for ex in a + task.examples("test", 20, seed=5):
        assert ex.choices is not None and ex.target in ex.choices and len(ex.choices) == 2
        assert set(ex.prompt + "".join(ex.choices)) <= alphabet
        assert all(len(c) <= task.max_answer_len for c in ex.choices)
        assert ex.target and not ex.target.startswith(" ")


@pytest.mark.parametrize(("name", "options"), CASES)
def test_splits_are_disjoint(name: str, options: dict[str, Any]) -> None:
    task = make_task(name, test_fraction=0.3, **options)
    train = task.examples("train", 150, seed=0) + task.examples("train", 150, seed=1)
    test = task.examples("test", 80, seed=0) + task.examples("test", 80, seed=1)
    assert not {e.meta["sentence"] for e in train} & {e.meta["sentence"] for e in test}
    assert not {example_hash(e) for e in train} & {example_hash(e) for e in test}


def test_agreement_prefix_labels_follow_the_grammar() -> None:
    task = make_task("agreement", max_depth=2)
    g = Grammar(GrammarConfig(max_depth=2))
    numbers = []
    for ex in task.examples("train", 200, seed=0):
        sg, pl = ex.choices  # type: ignore[misc]
        rest = ex.meta["sentence"][len(ex.prompt) + len(ex.target) :]
        assert ex.meta["sentence"].startswith(ex.prompt + ex.target)
        assert g.is_valid(ex.prompt + ex.target + rest)
        other = pl if ex.target == sg else sg
        assert not g.is_valid(ex.prompt + other + rest)
        numbers.append(ex.target == sg)
    assert 70 < sum(numbers) < 130  # singular and plural subjects about equally often


def test_agreement_min_attractors_and_pair_format() -> None:
    g = Grammar(GrammarConfig(max_depth=2))
    for ex in make_task("agreement", min_attractors=2).examples("test", 20, seed=0):
        assert ex.meta["attractors"] >= 2
    positions = []
    for ex in make_task("agreement", format="pair").examples("train", 100, seed=0):
        good, bad = (ex.target, next(c for c in ex.choices if c != ex.target))  # type: ignore[union-attr]
        assert ex.prompt == "" and g.is_valid(good) and not g.is_valid(bad)
        positions.append(ex.choices.index(ex.target))  # type: ignore[union-attr]
    assert 30 < sum(positions) < 70  # the grammatical sentence is first or second at random


def test_agreement_judge_labels() -> None:
    g = Grammar(GrammarConfig(max_depth=2))
    labels = []
    for ex in make_task("agreement", format="judge").examples("train", 100, seed=0):
        sentence = ex.prompt.removesuffix(" grammatical:")
        assert g.is_valid(sentence) == (ex.target == "yes")
        labels.append(ex.target == "yes")
    assert 30 < sum(labels) < 70


def test_polarity_labels_are_balanced_and_correct() -> None:
    task = make_task("polarity", negation_prob=0.4)
    exs = task.examples("train", 300, seed=0)
    positives = sum(e.target == "positive" for e in exs)
    assert 120 < positives < 180
    assert 40 < sum(e.meta["negated"] for e in exs) < 200
    g = Grammar(GrammarConfig(negation_prob=0.4, topic_weight=0.0))
    for e in exs:
        sentence = e.prompt.removesuffix(" polarity:")
        assert g.is_valid(sentence)
        assert len(sentence[:-1].split(" ")) <= task.opts.max_words  # type: ignore[attr-defined]


def test_errors() -> None:
    with pytest.raises(UserError, match="explicit n"):
        make_task("agreement").examples("train", None)
    with pytest.raises(UserError, match="did you mean"):
        make_task("agreement", formt="pair")
    with pytest.raises(UserError, match="min_attractors"):
        make_task("agreement", max_depth=1, min_attractors=2)
    with pytest.raises(UserError, match="distinct"):
        make_task("agreement", max_depth=0, temperature=0.05, max_words=3).examples("train", 50)
