"""Every built-in generator: contract, determinism, disjoint splits by hashing, and each encoding checked."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emergence.errors import UserError
from emergence.tasks import TASKS, BaseTask, Example, Task, example_hash, fewshot_prompt, make_task
from emergence.tasks.base import hash_split, stable_unit, symbol_table

# Small settings so that every split is enumerated or cheap to sample.
GENERATORS: list[tuple[str, dict[str, Any]]] = [
    ("addition", {"digits": 2}),
    ("addition", {"digits": 6, "reverse_answer": True}),
    ("multiplication", {"digits": 2}),
    ("modular_addition", {"p": 13}),
    ("modular_addition", {"p": 13, "encoding": "symbol"}),
    ("copy", {"length": 4, "alphabet": "abcd"}),
    ("reverse", {"length": 5, "min_length": 2, "alphabet": "abcd"}),
    ("sort", {"length": 6}),
    ("induction", {"length": 8}),
    ("induction", {"length": 3, "vocab": 8, "distinct": True, "separator": ""}),
    ("induction", {"length": 10, "min_length": 4, "vocab": 12, "answer": "sequence"}),
    (
        "induction",
        {"length": 5, "min_length": 2, "vocab": 9, "fill": 16, "layout": "planted", "separator": ""},
    ),
    ("induction", {"length": 5, "min_length": 2, "vocab": 9, "fill": 16, "gap": 2, "separator": ""}),
    (
        "induction",
        {"layout": "phrases", "phrases": 3, "length": 4, "min_length": 2, "vocab": 9, "fill": 20}
        | {"separator": "", "answer": "sequence"},
    ),
    ("parity", {"length": 8}),
    ("parity", {"length": 9, "answer": "word"}),
    ("larger", {"digits": 2}),
    ("majority", {"length": 9}),
    ("agreement", {"max_depth": 1}),
    ("agreement", {"format": "judge"}),
    ("polarity", {}),
    ("icl_mapping", {}),
    ("icl_mapping", {"items": 6, "labels": 3, "classes": 3, "pairs": 4, "pool": 5, "bursty": 0.5}),
]


@pytest.mark.parametrize(("name", "options"), GENERATORS)
def test_contract(name: str, options: dict[str, Any]) -> None:
    task = make_task(name, **options)
    assert isinstance(task, Task) and task.name == name
    assert task.kind in ("generate", "choice")
    assert task.options == {**task.options, **options}  # resolved options include what was given
    assert make_task(name, **task.options).examples("test", 5) == task.examples("test", 5)
    alphabet = set(task.alphabet())
    assert task.alphabet() == "".join(sorted(alphabet))
    exs = task.examples("train", 30, seed=0) + task.examples("test", 30, seed=0)
    for ex in exs:
        assert isinstance(ex, Example)
        assert set(ex.prompt + ex.target + "".join(ex.choices or ())) <= alphabet
        assert ex.target and not ex.target.startswith(" ")
        assert len(ex.target) <= task.max_answer_len
        if task.kind == "choice":
            assert ex.choices is not None and ex.target in ex.choices
            assert all(len(c) <= task.max_answer_len for c in ex.choices)
        else:
            assert ex.choices is None


@pytest.mark.parametrize(("name", "options"), GENERATORS)
def test_deterministic_prefix_stable_and_seeded(name: str, options: dict[str, Any]) -> None:
    task = make_task(name, **options)
    a = task.examples("train", 40, seed=7)
    assert a == make_task(name, **options).examples("train", 40, seed=7)
    assert task.examples("train", 20, seed=7) == a[:20]
    assert task.examples("train", 40, seed=8) != a
    assert len({example_hash(e) for e in a}) == len(a)  # no repeats: sampled without replacement


@pytest.mark.parametrize(("name", "options"), GENERATORS)
def test_train_and_test_disjoint(name: str, options: dict[str, Any]) -> None:
    task = make_task(name, **options)
    train = {example_hash(e) for seed in range(3) for e in task.examples("train", 60, seed=seed)}
    test = {example_hash(e) for seed in range(3) for e in task.examples("test", 30, seed=seed)}
    assert train and test and train.isdisjoint(test)


def test_every_registered_generator_is_covered() -> None:
    file_tasks = {"jsonl", "bigbench", "mixture"}  # tested in test_file_tasks.py and test_mixture
    assert {n for n, _ in GENERATORS} == set(TASKS.names()) - file_tasks
    for name in TASKS.names():
        cls = TASKS.get(name)
        assert issubclass(cls, BaseTask)
        assert "Encoding" in (cls.__doc__ or ""), f"{name} must document its encoding"


def test_exhaustive_small_spaces_partition() -> None:
    for name, opts, size in [
        ("copy", {"length": 3, "alphabet": "abc"}, 27),
        ("parity", {"length": 6}, 64),
        ("larger", {"digits": 1}, 90),
        ("induction", {"length": 3, "vocab": 4, "distinct": True}, 24),
        ("reverse", {"length": 3, "min_length": 1, "alphabet": "ab"}, 2 + 4 + 8),
    ]:
        task = make_task(name, **opts)
        train, test = task.examples("train"), task.examples("test")
        hashes = [example_hash(e) for e in train + test]
        assert len(hashes) == len(set(hashes)) == size, name
        with pytest.raises(UserError, match="holds only"):
            task.examples("test", len(test) + 1)


def test_hash_split_is_stable() -> None:
    # sha256-based: these values must never change, or stored splits would silently move.
    assert stable_unit("3,4", "addition") == pytest.approx(stable_unit("3,4", "addition"))
    assert hash_split("x", "salt", 0.0) == "train" and hash_split("x", "salt", 1.0) == "test"
    units = [stable_unit(str(i), "s") for i in range(2000)]
    assert 0.45 < sum(u < 0.5 for u in units) / len(units) < 0.55


def test_string_encodings() -> None:
    for ex in make_task("copy", length=5).examples("test", 20):
        s = ex.prompt.removeprefix("copy:").removesuffix("=")
        assert ex.prompt == f"copy:{s}=" and ex.target == s
    for ex in make_task("reverse", length=5, min_length=1, alphabet="abcd").examples("test", 50):
        s = ex.prompt.removeprefix("reverse:").removesuffix("=")
        assert ex.target == s[::-1] and 1 <= len(s) <= 5
    sort = make_task("sort", length=5, alphabet="zyx")  # sort follows the alphabet option's order
    for ex in sort.examples("test", 20):
        s = ex.prompt.removeprefix("sort:").removesuffix("=")
        assert sorted(ex.target) == sorted(s)
        assert ex.target == "".join(sorted(s, key="zyx".index))


def test_induction_encoding() -> None:
    task = make_task("induction", length=12, vocab=100)
    assert set(task.symbols) == set(symbol_table(100)) and len(task.symbols) == 100
    for ex in task.examples("test", 20):
        first, sep = ex.prompt[:-1], ex.prompt[-1]
        assert sep == "|" and ex.target == first and len(first) == 12
        assert set(first) <= set(task.symbols)
    for ex in make_task("induction", length=6, vocab=6, distinct=True).examples("train", 20):
        assert len(set(ex.target)) == 6


def test_induction_variable_lengths_and_whole_sequence_answer() -> None:
    task = make_task("induction", length=12, min_length=4, vocab=30)
    exs = task.examples("train", 900)
    lengths = [len(ex.target) for ex in exs]
    assert set(lengths) == set(range(4, 13))  # every length in range, about equally often
    assert max(lengths.count(n) for n in range(4, 13)) < 2 * min(lengths.count(n) for n in range(4, 13))
    for ex in exs[:50]:
        assert ex.prompt == ex.target + "|"
    seq = make_task("induction", length=12, min_length=4, vocab=30, answer="sequence")
    assert seq.max_answer_len == 25
    for ex, same in zip(seq.examples("test", 30), task.examples("test", 30), strict=True):
        assert ex.prompt == "" and ex.target == same.prompt + same.target  # all of it is the answer
    fixed = make_task("induction", length=12, vocab=30)  # no min_length: the item space as before
    assert fixed._space_size() == 30**12 and fixed._sequence(31) == "bbaaaaaaaaaa"
    three = make_task("induction", length=5, vocab=30, repeats=3)
    ex = three.examples("test", 1)[0]
    assert ex.target == ex.prompt + ex.prompt[:-1] and three.max_answer_len == 11
    four = make_task("induction", length=5, vocab=30, repeats=4, answer="sequence", separator="")
    assert four.examples("test", 1)[0].target == 4 * ex.prompt[:-1] and four.max_answer_len == 20
    filled = make_task(
        "induction", length=9, min_length=3, vocab=30, fill=40, answer="sequence", separator=""
    )
    for ex in filled.examples("train", 30):
        span = ex.meta["sequence"]
        assert len(ex.target) == 40 and ex.target == (span * 14)[:40]  # the span repeated, cut to 40 tokens
    with pytest.raises(UserError, match="fill"):
        make_task("induction", length=9, fill=17, separator="")
    with pytest.raises(UserError, match="min_length"):
        make_task("induction", length=5, min_length=6)


def test_induction_planted_layout() -> None:
    """Filler with the span written twice: second copy at the end, first copy uniformly placed before it."""
    task = make_task(
        "induction",
        length=6,
        min_length=3,
        vocab=20,
        fill=24,
        layout="planted",
        separator="",
        answer="sequence",
    )
    assert task.max_answer_len == 24
    starts: dict[int, list[int]] = {3: [], 6: []}
    filler_symbols: Counter[str] = Counter()
    exs = task.examples("train", 3000, seed=2)
    for ex in exs:
        span, text = ex.meta["sequence"], ex.target
        assert ex.prompt == "" and len(text) == 24 and 3 <= len(span) <= 6 and text.endswith(span)
        # The first copy sits at a position p in [0, 24 - 2T]; the rest is filler.
        first = [p for p in range(24 - 2 * len(span) + 1) if text[p : p + len(span)] == span]
        assert first, text
        if len(span) in starts:
            starts[len(span)].append(first[0])
        p = first[0]
        filler_symbols.update(text[:p] + text[p + len(span) : -len(span)])
    # Every first-copy position occurs, none more than twice as often as another (uniform over 0..24-2T).
    for t, seen in starts.items():
        counts = Counter(seen)
        assert set(counts) == set(range(24 - 2 * t + 1)), (t, counts)
    assert set(filler_symbols) == set(task.symbols)
    assert max(filler_symbols.values()) < 1.3 * min(filler_symbols.values())
    # The split follows the span: no planted span of the test split is a training span.
    train_spans = {ex.meta["sequence"] for ex in exs}
    assert not train_spans & {ex.meta["sequence"] for ex in task.examples("test", 500)}
    assert [ex.target for ex in task.examples("train", 20, seed=2)] == [ex.target for ex in exs[:20]]
    repeat = make_task("induction", length=6, vocab=20, fill=24, layout="planted", separator="")
    assert repeat.max_answer_len == 6
    for ex in repeat.examples("test", 20):
        assert len(ex.prompt) == 18 and ex.target == ex.meta["sequence"] and ex.target in ex.prompt
    for options, field in (
        ({"layout": "planted", "separator": ""}, "fill"),
        ({"layout": "planted", "fill": 40}, "separator"),
        ({"layout": "planted", "fill": 40, "separator": "", "repeats": 3}, "repeats"),
    ):
        with pytest.raises(UserError, match=field):
            make_task("induction", length=6, **options)


def test_induction_copies_with_gaps() -> None:
    """Copies separated by 0..gap random symbols, cut to `fill`: no fixed period, every gap length used."""
    task = make_task(
        "induction", length=6, min_length=3, vocab=20, fill=30, gap=3, separator="", answer="sequence"
    )
    gaps: Counter[int] = Counter()
    for ex in task.examples("train", 400, seed=3):
        span, text = ex.meta["sequence"], ex.target
        assert len(text) == 30 and text.startswith(span)
        pos = len(span)
        while pos < 30:  # each copy starts 0..3 symbols after the previous one ends
            starts = [g for g in range(4) if text[pos + g : pos + g + len(span)] == span[: 30 - pos - g]]
            assert starts, (span, text, pos)
            gaps[starts[0]] += 1
            pos += starts[0] + len(span)
    assert set(gaps) == {0, 1, 2, 3}
    assert max(gaps.values()) < 2 * min(gaps.values())
    # An item space past float's range (over 128^200 sequences) still samples.
    huge = make_task("induction", length=20, min_length=6, vocab=128, fill=200, gap=12, separator="")
    assert huge._space_size() > 10**400 and len(huge.examples("train", 3)) == 3
    repeat = make_task("induction", length=6, vocab=20, fill=30, gap=3, separator="")
    for ex in repeat.examples("test", 10):
        assert ex.prompt == ex.meta["sequence"] and len(ex.prompt + ex.target) == 30
    for options in (
        {"gap": 2},
        {"gap": 2, "fill": 30},
        {"gap": 2, "fill": 30, "separator": "", "layout": "planted"},
    ):
        with pytest.raises(UserError, match="gap"):
            make_task("induction", length=6, **options)


def test_induction_phrases_layout() -> None:
    """The vocabulary cut into M phrases, strung together in random order: no phrase twice in a row, every
    composition of phrase lengths and every phrase order used, the split by phrase set."""
    phrases3 = {"layout": "phrases", "phrases": 3, "length": 4, "min_length": 2, "vocab": 9}
    task = make_task("induction", **phrases3, fill=30, separator="", answer="sequence")
    assert task.max_answer_len == 30
    lengths: Counter[tuple[int, ...]] = Counter()
    first: Counter[int] = Counter()
    follows: Counter[tuple[int, int]] = Counter()
    exs = task.examples("train", 3000, seed=4)
    for ex in exs:
        phrases, text = ex.meta["phrases"], ex.target
        assert ex.prompt == "" and len(text) == 30
        # The phrases partition the vocabulary, each 2-4 symbols long.
        assert sorted("".join(phrases)) == sorted(task.symbols) and all(2 <= len(p) <= 4 for p in phrases)
        lengths[tuple(len(p) for p in phrases)] += 1
        # Parse the text back into phrases (each symbol belongs to exactly one).
        owner = {c: k for k, p in enumerate(phrases) for c in p}
        pos, seq = 0, []
        while pos < 30:
            k = owner[text[pos]]
            assert text[pos : pos + len(phrases[k])] == phrases[k][: 30 - pos], (phrases, text, pos)
            seq.append(k)
            pos += len(phrases[k])
        first[seq[0]] += 1
        follows.update(pairwise(seq))
    # Compositions of 9 into 3 parts of 2-4: 7 of them, each drawn about equally often.
    assert len(lengths) == 7 and max(lengths.values()) < 1.3 * min(lengths.values())
    assert set(first) == {0, 1, 2} and max(first.values()) < 1.3 * min(first.values())
    assert all(a != b for a, b in follows) and len(follows) == 6
    assert max(follows.values()) < 1.3 * min(follows.values())
    # The split follows the phrase set.
    key = lambda ex: tuple(sorted(ex.meta["phrases"]))  # noqa: E731
    assert not {key(ex) for ex in exs} & {key(ex) for ex in task.examples("test", 500)}
    assert [ex.target for ex in task.examples("train", 20, seed=4)] == [ex.target for ex in exs[:20]]
    for options, field in (
        ({"fill": 30}, "layout"),
        ({"fill": 30, "answer": "sequence", "separator": "", "vocab": 20}, "phrases"),
        ({"fill": 30, "answer": "sequence", "separator": "", "vocab": 5}, "phrases"),
        ({"fill": 30, "answer": "sequence", "separator": "", "phrases": 1}, "phrases"),
        # A short `fill` is no error here (the copies layout's "two copies" rule does not apply).
        ({"fill": 5, "answer": "sequence", "separator": "", "length": 16, "min_length": None}, "phrases"),
    ):
        with pytest.raises(UserError, match=field):
            make_task(
                "induction",
                **({"layout": "phrases", "phrases": 3, "length": 4, "min_length": 2, "vocab": 9} | options),
            )


def test_choice_encodings() -> None:
    for ex in make_task("parity", length=9).examples("test", 40):
        bits = ex.prompt.removeprefix("parity:").removesuffix("=")
        assert ex.choices == ("0", "1") and ex.target == str(bits.count("1") % 2)
    for ex in make_task("parity", length=9, answer="word").examples("test", 40):
        bits = ex.prompt.removeprefix("parity:").removesuffix("=")
        assert ex.target == ("odd" if bits.count("1") % 2 else "even")
    positions = []
    for ex in make_task("larger", digits=2).examples("test", 60):
        a, b = map(int, ex.prompt.removeprefix("larger:").removesuffix("=").split(","))
        assert a != b and ex.choices == (str(a), str(b)) and ex.target == str(max(a, b))
        positions.append(ex.choices.index(ex.target))
    assert 0 < sum(positions) < len(positions)  # the answer is not always in the same position
    for ex in make_task("majority", length=9).examples("test", 40):
        bits = ex.prompt.removeprefix("majority:").removesuffix("=")
        assert ex.target == ("1" if bits.count("1") > 4 else "0")


@pytest.mark.parametrize(
    ("name", "options", "field"),
    [
        ("copy", {"alphabet": "ab="}, "alphabet"),
        ("copy", {"alphabet": "aa"}, "alphabet"),
        ("sort", {"min_length": 9, "length": 4}, "min_length"),
        ("induction", {"vocab": 1}, "vocab"),
        ("induction", {"distinct": True, "length": 30, "vocab": 26}, "length"),
        ("induction", {"separator": "a"}, "separator"),
        ("parity", {"answer": "letters"}, "answer"),
        ("majority", {"length": 8}, "length"),
        ("modular_addition", {"p": 1}, "p"),
        ("modular_addition", {"train_fraction": 0}, "train_fraction"),
        ("modular_addition", {"encoding": "roman"}, "encoding"),
        ("larger", {"digits": "two"}, "digits"),
    ],
)
def test_bad_option_values_name_the_option(name: str, options: dict[str, Any], field: str) -> None:
    with pytest.raises(UserError, match=field):
        make_task(name, **options)


def test_example_validation() -> None:
    with pytest.raises(ValueError, match="not one of the choices"):
        Example("q", "c", ("a", "b"))
    with pytest.raises(ValueError, match="tuple"):
        Example("q", "a", ["a", "b"])  # type: ignore[arg-type]
    assert Example("q", "a", meta={"x": 1}) == Example("q", "a", meta={"x": 2})  # meta is not identity


def test_fewshot_prompt_layout() -> None:
    task = make_task("addition", digits=1)
    shots = task.examples("train", 2)
    query = task.examples("test", 1)[0]
    text = fewshot_prompt(task, shots, query)
    assert text == f"{shots[0].prompt}{shots[0].target}\n{shots[1].prompt}{shots[1].target}\n{query.prompt}"
    assert set(text) <= set(task.alphabet())


def test_mixture() -> None:
    spec = [
        {"name": "addition", "options": {"digits": 2}, "weight": 3},
        {"name": "copy", "options": {"length": 3}},
    ]
    task = make_task("mixture", tasks=spec)
    assert task.kind == "generate" and task.max_answer_len == 3
    assert task.options["tasks"][1] == {
        "name": "copy",
        "options": make_task("copy", length=3).options,
        "weight": 1.0,
    }
    exs = task.examples("train", 400, seed=1)
    assert exs == task.examples("train", 400, seed=1)
    assert task.examples("train", 100, seed=1) == exs[:100]
    share = sum(e.meta["task"] == "addition" for e in exs) / len(exs)
    assert 0.65 < share < 0.85  # weight 3 : 1
    assert set("".join(e.prompt + e.target for e in exs)) <= set(task.alphabet())
    test = {example_hash(e) for e in task.examples("test", 300, seed=2)}
    assert test.isdisjoint(example_hash(e) for e in exs)
    # rebuilding from the resolved options gives the same task
    assert make_task("mixture", **task.options).examples("test", 50) == task.examples("test", 50)
    choice = make_task("mixture", tasks=[{"name": "parity"}, {"name": "majority"}])
    assert choice.kind == "choice" and all(e.choices for e in choice.examples("test", 20))


def test_mixture_errors() -> None:
    with pytest.raises(UserError, match="at least one"):
        make_task("mixture")
    with pytest.raises(UserError, match=r"tasks\[0\]: unknown key"):
        make_task("mixture", tasks=[{"name": "copy", "wieght": 2}])
    with pytest.raises(UserError, match=r"tasks\[0\].weight"):
        make_task("mixture", tasks=[{"name": "copy", "weight": 0}])
    with pytest.raises(UserError, match=r"mixture.tasks\[1\]: .*did you mean 'digits'"):
        make_task("mixture", tasks=[{"name": "copy"}, {"name": "addition", "options": {"digts": 2}}])
    small = make_task("mixture", tasks=[{"name": "addition", "options": {"digits": 1}}])
    with pytest.raises(UserError, match="holds only"):
        small.examples("test", 500)


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=20), st.floats(0.01, 0.98), st.floats(0.0, 0.5))
def test_hash_split_is_nested_in_test_fraction(key: str, fraction: float, more: float) -> None:
    # Raising test_fraction only moves items from train to test: an item never goes back to training.
    larger = min(0.99, fraction + more)
    if hash_split(key, "t", fraction) == "test":
        assert hash_split(key, "t", larger) == "test"
