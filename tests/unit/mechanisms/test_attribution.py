"""Attribution of an answer to prompt tokens: completeness of integrated gradients and the HTML snippet."""

from __future__ import annotations

import pytest
import torch

from emergence.analysis.attribution import answer_attribution, attribution_html
from emergence.errors import UserError
from emergence.models.gpt import GPT, GPTConfig

from .handset import induction_model


def test_integrated_gradients_is_complete() -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(20, 2, 2, 16, n_ctx=16))
    res = answer_attribution(model, [1, 5, 6, 7, 8], [9, 10], pad_id=0, n_steps=64)
    assert len(res["scores"]) == 5 and res["scores"][0] == 0.0  # BOS is kept in the baseline
    assert sum(res["scores"]) == pytest.approx(res["logprob"] - res["baseline_logprob"], abs=1e-3)
    gxi = answer_attribution(model, [1, 5, 6, 7, 8], [9, 10], pad_id=0, method="grad_x_input")
    assert len(gxi["scores"]) == 5 and gxi["delta"] is None


def test_induction_answer_is_attributed_to_the_earlier_occurrence() -> None:
    """Predicting 12 after `BOS 3 7 12 5 9 7`: the copied 12 and the querying final 7 get the most credit.

    (The other tokens share the rest in path-dependent ways: in the all-pad baseline every key matches the
    query, so tokens that stop matching along the path also earn credit.)"""
    model = induction_model(span=10)
    prompt = [0, 3, 7, 12, 5, 9, 7]
    res = answer_attribution(model, prompt, [12], pad_id=39, n_steps=64)
    scores = res["scores"]
    assert max(range(len(prompt)), key=lambda i: scores[i]) == 3
    assert sorted(range(len(prompt)), key=lambda i: -scores[i])[1] == 6
    assert res["logprob"] > res["baseline_logprob"] + 2


def test_attribution_html_escapes_and_colours() -> None:
    html = attribution_html(["<b>", "x"], [1.0, -0.5], title="a&b")
    assert "&lt;b&gt;" in html and "a&amp;b" in html
    assert "rgba(220,50,47,1.000)" in html and "rgba(38,139,210,0.500)" in html
    with pytest.raises(UserError):
        attribution_html(["a"], [1.0, 2.0])
