"""Few-shot prompts: format, determinism, demonstrations never include a query, context truncation."""

from __future__ import annotations

import pytest

from emergence.errors import UserError
from emergence.evaluate.fewshot import (
    PromptFormat,
    build_trials,
    fit_to_context,
    sample_demonstrations,
)
from emergence.evaluate.lm import DummyLanguageModel
from emergence.tasks import Example, make_task


def ex(prompt: str, target: str) -> Example:
    return Example(prompt, target)


def test_default_format_matches_training_layout() -> None:
    fmt = PromptFormat()
    demos = [ex("1+2=", "3"), ex("4+4=", "8")]
    assert fmt.prefix(demos) == "1+2=3\n4+4=8\n"
    assert fmt.render_query(ex("5+5=", "10")) == "5+5="
    assert fmt.prefix([]) == ""
    assert fmt.stop == ("\n",)


def test_custom_template_and_task_prefix() -> None:
    fmt = PromptFormat(template="Q: {prompt}\nA: {target}.", delimiter="\n\n", task_prefix="Add.\n")
    demos = [ex("1+2", "3")]
    assert fmt.prefix(demos) == "Add.\nQ: 1+2\nA: 3.\n\n"
    assert fmt.render_query(ex("{x}", "?")) == "Q: {x}\nA: "  # braces in data are not format fields
    assert fmt.render_demo(ex("2+2", "4")) == "Q: 2+2\nA: 4."
    assert fmt.stop == (".", "\n\n")


@pytest.mark.parametrize(
    "template", ["{prompt}", "{target}{prompt}", "{prompt}{target}{x}", "{prompt}{target"]
)
def test_bad_templates_are_rejected(template: str) -> None:
    with pytest.raises(ValueError, match="template"):
        PromptFormat(template=template)


POOL = [ex(f"{i}+{i}=", str(2 * i)) for i in range(30)]


def test_sampling_is_deterministic_and_seeded() -> None:
    a = sample_demonstrations(POOL, 5, [0, 1, 4, 0])
    assert a == sample_demonstrations(POOL, 5, [0, 1, 4, 0])
    assert a != sample_demonstrations(POOL, 5, [0, 1, 4, 1])
    assert len({d.prompt for d in a}) == 5  # without replacement
    assert sample_demonstrations(POOL, 0, 0) == []


def test_excluded_prompts_never_appear() -> None:
    exclude = frozenset(e.prompt for e in POOL[:25])
    for seed in range(20):
        demos = sample_demonstrations(POOL, 5, seed, exclude)
        assert not {d.prompt for d in demos} & exclude
    with pytest.raises(UserError, match="only 5"):
        sample_demonstrations(POOL, 6, 0, exclude)


def test_trials_on_a_real_task() -> None:
    task = make_task("addition", digits=2)
    queries = task.examples("test", 20, 0)
    pool = task.examples("train", 200, 0) + queries  # a leaky pool: queries must still never be demos
    fmt = PromptFormat()
    trials = build_trials(task.name, pool, queries, 4, 3, 0, fmt)
    assert [t.trial for t in trials] == [0, 1, 2]
    assert len({t.prefix for t in trials}) == 3  # independent demonstration sets
    query_prompts = {q.prompt for q in queries}
    for t in trials:
        assert t.n_demos == 4 and t.k == 4
        assert not {d.prompt for d in t.demos} & query_prompts
        assert t.prefix == "".join(d.prompt + d.target + "\n" for d in t.demos)
    # deterministic, and adding trials leaves the existing ones unchanged
    again = build_trials(task.name, pool, queries, 4, 5, 0, fmt)
    assert [t.prefix for t in again[:3]] == [t.prefix for t in trials]
    # another seed or task name gives other demonstrations
    assert build_trials(task.name, pool, queries, 4, 3, 1, fmt)[0].prefix != trials[0].prefix
    assert build_trials("other", pool, queries, 4, 3, 0, fmt)[0].prefix != trials[0].prefix
    # zero shots: a single trial with an empty prefix
    zero = build_trials(task.name, pool, queries, 0, 3, 0, fmt)
    assert len(zero) == 1 and zero[0].prefix == "" and zero[0].n_demos == 0


def test_truncation_drops_the_oldest_demonstrations() -> None:
    lm = DummyLanguageModel(lambda _: "", alphabet="0123456789+=\n", max_length=20)
    demos = [ex("1+1=", "2"), ex("2+2=", "4"), ex("3+3=", "6")]  # 6 characters each with the delimiter
    kept = fit_to_context(demos, PromptFormat(), lm, need=7)
    assert kept == demos[1:]  # 12 + 7 ≤ 20, 18 + 7 > 20
    assert fit_to_context(demos, PromptFormat(), lm, need=2) == demos
    with pytest.raises(UserError, match="3-shot prompt needs 25 tokens"):
        fit_to_context(demos, PromptFormat(), lm, need=7, policy="error")
    with pytest.raises(UserError, match="even with no demonstrations"):
        fit_to_context(demos, PromptFormat(), lm, need=21)
