"""The `LanguageModel` contract as one reusable check: every backend (GPT, dummy, Hugging Face, LSTM) runs it.

    from tests.unit.evaluate.contract import check_language_model_contract
    check_language_model_contract(my_lm)

The default texts use digits, "+", "=" and "\\n"; pass your own when the backend's vocabulary differs.
`prefix_concat_equal=False` relaxes the checks that need "prefix + text" to tokenize like prefix, then text
(true for character tokenizers, not in general for BPE).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from emergence.evaluate.lm import LanguageModel, LLResult

CONTEXTS = ("12+34=", "7+8=", "999+1=", "5+5=")
CONTINUATIONS = ("46", "15", "1000", "1")
PREFIX = "1+1=2\n3+4=7\n"


def _close(a: LLResult, b: LLResult, atol: float, what: str) -> None:
    assert a.n_tokens == b.n_tokens, f"{what}: token counts differ ({a.n_tokens} vs {b.n_tokens})"
    assert abs(a.logprob - b.logprob) <= atol, f"{what}: logprob {a.logprob} vs {b.logprob}"
    for x, y in zip(a.token_logprobs, b.token_logprobs, strict=True):
        assert abs(x - y) <= atol, f"{what}: token log-probs {a.token_logprobs} vs {b.token_logprobs}"
    assert a.token_greedy == b.token_greedy, f"{what}: greedy flags {a.token_greedy} vs {b.token_greedy}"


def check_language_model_contract(
    lm: LanguageModel,
    *,
    contexts: Sequence[str] = CONTEXTS,
    continuations: Sequence[str] = CONTINUATIONS,
    prefix: str = PREFIX,
    stop: str = "\n",
    max_new_tokens: int = 6,
    atol: float = 1e-5,
    prefix_concat_equal: bool = True,
) -> None:
    """Assert that `lm` implements the LanguageModel protocol faithfully; raises AssertionError otherwise."""
    assert isinstance(lm, LanguageModel), f"{type(lm).__name__} lacks a LanguageModel method"
    assert isinstance(lm.max_length, int) and lm.max_length > 0
    for text in (*contexts, *continuations, prefix):
        ids = lm.tokenize(text)
        assert isinstance(ids, list) and all(isinstance(i, int) for i in ids)
        assert lm.n_tokens(text) == len(ids)

    # --- loglikelihood: well-formed results in request order
    requests = list(zip(contexts, continuations, strict=True))
    assert lm.loglikelihood([]) == []
    results = lm.loglikelihood(requests)
    assert len(results) == len(requests)
    for (ctx, cont), r in zip(requests, results, strict=True):
        assert isinstance(r, LLResult)
        assert r.n_tokens == lm.n_tokens(cont) == len(r.token_greedy) == len(r.token_ranks)
        assert math.isclose(r.logprob, sum(r.token_logprobs), abs_tol=1e-6)
        assert all(lp <= 1e-6 for lp in r.token_logprobs), f"positive log-prob for {ctx!r}+{cont!r}"
        assert r.is_greedy == all(r.token_greedy)
        assert all(rank >= 1 for rank in r.token_ranks)
        assert all(rank == 1 for rank, g in zip(r.token_ranks, r.token_greedy, strict=True) if g)

    # --- batching and ordering do not change any score
    reversed_results = lm.loglikelihood(requests[::-1])
    for a, b in zip(results, reversed_results[::-1], strict=True):
        _close(a, b, atol, "reversed order")
    for req, r in zip(requests, results, strict=True):
        _close(lm.loglikelihood([req])[0], r, atol, f"alone vs batched {req!r}")

    # --- the shared prefix means "prepended text"
    with_prefix = lm.loglikelihood(requests, shared_prefix=prefix)
    assert len(with_prefix) == len(requests)
    if prefix_concat_equal:
        joined = lm.loglikelihood([(prefix + c, x) for c, x in requests])
        for a, b in zip(with_prefix, joined, strict=True):
            _close(a, b, atol, "shared prefix vs concatenated")

    # --- generation: one string per prompt, stop sequence removed, deterministic, batch-invariant
    assert lm.generate([], stop=[stop], max_new_tokens=max_new_tokens) == []
    for shared in ("", prefix):
        outs = lm.generate(contexts, stop=[stop], max_new_tokens=max_new_tokens, shared_prefix=shared)
        assert len(outs) == len(contexts) and all(isinstance(o, str) for o in outs)
        assert all(stop not in o for o in outs), f"stop sequence left in {outs!r}"
        assert all(lm.n_tokens(o) <= max_new_tokens for o in outs)
        again = lm.generate(contexts[::-1], stop=[stop], max_new_tokens=max_new_tokens, shared_prefix=shared)
        assert again[::-1] == outs, "generation depends on batch order"
        alone = [
            lm.generate([c], stop=[stop], max_new_tokens=max_new_tokens, shared_prefix=shared)[0]
            for c in contexts
        ]
        assert alone == outs, "generation depends on batching"
        # A greedy answer scores as greedy (what exact match and token accuracy rely on agreeing).
        scored = lm.loglikelihood(
            [(c, o) for c, o in zip(contexts, outs, strict=True) if o], shared_prefix=shared
        )
        assert all(r.is_greedy for r in scored), "a generated answer does not score as the greedy answer"
        if shared and prefix_concat_equal:
            joined_outs = lm.generate(
                [shared + c for c in contexts], stop=[stop], max_new_tokens=max_new_tokens
            )
            assert joined_outs == outs, "generation with a shared prefix differs from the concatenated prompt"
    short = lm.generate(contexts, stop=[stop], max_new_tokens=1)
    assert all(lm.n_tokens(o) <= 1 for o in short)
