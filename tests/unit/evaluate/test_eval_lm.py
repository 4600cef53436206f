"""Language-model adapters: the shared contract, prefix-cache equality, batching order, length errors."""

from __future__ import annotations

import math

import pytest
import torch
from tests.unit.evaluate.contract import check_language_model_contract
from tests.unit.evaluate.fixtures import ALPHABET, tiny_gpt

from emergence.errors import UserError
from emergence.evaluate.lm import (
    DummyLanguageModel,
    GPTLanguageModel,
    LanguageModel,
    cut_at_stop,
    equal_length_batches,
    length_sorted_batches,
)
from emergence.models.gpt import GPT, GPTConfig
from emergence.tokenizers import CharTokenizer


def adder(context: str) -> str:
    """The dummy's script: answer the last `a+b=` of the context correctly."""
    query = context.rsplit("\n", 1)[-1]
    if not query.endswith("="):
        return ""
    a, b = query[:-1].split("+")
    return str(int(a) + int(b))


def test_dummy_implements_the_contract() -> None:
    check_language_model_contract(DummyLanguageModel(adder, alphabet=ALPHABET))


def test_gpt_adapter_implements_the_contract() -> None:
    model, tok = tiny_gpt()
    for cached in (True, False):
        check_language_model_contract(GPTLanguageModel(model, tok, batch_size=3, use_prefix_cache=cached))


def test_dummy_scores_exactly() -> None:
    lm = DummyLanguageModel(adder, alphabet=ALPHABET, confidence=0.9)
    right, wrong, long = lm.loglikelihood([("2+3=", "5"), ("2+3=", "6"), ("2+3=", "55")])
    assert right.is_greedy and right.logprob == pytest.approx(math.log(0.9))
    miss = math.log(0.1 / (lm.vocab_size - 1))
    assert not wrong.is_greedy and wrong.logprob == pytest.approx(miss) and wrong.token_ranks == (2,)
    assert long.token_greedy == (True, False)  # after the answer the dummy expects its end token
    assert lm.generate(["2+3=", "10+10="], stop=["\n"], max_new_tokens=5) == ["5", "20"]
    assert lm.generate(["99+1="], stop=["\n"], max_new_tokens=2) == ["10"]
    assert lm.generate(["99+1="], stop=["0"], max_new_tokens=5) == ["1"]
    with pytest.raises(UserError, match="not in the alphabet"):
        lm.loglikelihood([("2*3=", "6")])
    scripted = DummyLanguageModel.from_answers({"1+1=": "2", "11+1=": "12"}, alphabet=ALPHABET)
    assert scripted.generate(["1+1=", "11+1=", "5+5="], stop=[], max_new_tokens=4) == ["2", "12", ""]


def test_dummy_is_a_language_model() -> None:
    assert isinstance(DummyLanguageModel(adder, alphabet=ALPHABET), LanguageModel)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_prefix_cache_equals_uncached_loglikelihood(dtype: torch.dtype) -> None:
    # float32 with moderate weights: the production setting; float64: the algorithm itself is exact.
    model, tok = tiny_gpt(std=0.3, dtype=dtype)
    fast = GPTLanguageModel(model, tok, batch_size=4, use_prefix_cache=True)
    slow = GPTLanguageModel(model, tok, batch_size=4, use_prefix_cache=False)
    prefix = "12+30=42\n7+7=14\n100+23=123\n"
    requests = [("5+6=", "11"), ("123+456=", "579"), ("9=", "9"), ("", "1"), ("1+1=", "2"), ("88+1=", "890")]
    a = fast.loglikelihood(requests, shared_prefix=prefix)
    b = slow.loglikelihood(requests, shared_prefix=prefix)
    for x, y in zip(a, b, strict=True):
        assert x.token_logprobs == pytest.approx(y.token_logprobs, abs=1e-5)
        assert x.token_greedy == y.token_greedy and x.token_ranks == y.token_ranks
    # and the uncached path equals one un-batched forward of the whole sequence, computed here by hand
    ids = [tok.bos_id, *tok.encode(prefix + "123+456=579")]
    with torch.no_grad():
        logp = model(torch.tensor([ids])).log_softmax(-1)[0]  # (T, V), one sequence: no padding, no cache
    n = 3
    by_hand = [logp[len(ids) - n - 1 + j, ids[len(ids) - n + j]].item() for j in range(n)]
    assert a[1].token_logprobs == pytest.approx(by_hand, abs=1e-5)


def test_prefix_cache_equals_uncached_generation() -> None:
    model, tok = tiny_gpt()
    fast = GPTLanguageModel(model, tok, batch_size=3, use_prefix_cache=True)
    slow = GPTLanguageModel(model, tok, batch_size=3, use_prefix_cache=False)
    prefix = "12+30=42\n7+7=14\n"
    prompts = ["5+6=", "123+456=", "1+1=", "88+1=", "2+2=", "7+0="]
    for stop in (["\n"], []):
        out_fast = fast.generate(prompts, stop=stop, max_new_tokens=8, shared_prefix=prefix)
        out_slow = slow.generate(prompts, stop=stop, max_new_tokens=8, shared_prefix=prefix)
        assert out_fast == out_slow
    # the comparison means something only if answers vary and depend on the prefix
    assert len(set(out_fast)) >= 3
    assert fast.generate(prompts, stop=[], max_new_tokens=8) != out_fast


def test_batching_preserves_order() -> None:
    model, tok = tiny_gpt()
    requests = [("1+1=", "2"), ("123+456=", "579"), ("9=", "9"), ("55+5=", "60"), ("3+", "3=6")]
    one = GPTLanguageModel(model, tok, batch_size=1).loglikelihood(requests)
    many = GPTLanguageModel(model, tok, batch_size=2).loglikelihood(requests)
    for a, b in zip(one, many, strict=True):
        assert a.token_logprobs == pytest.approx(b.token_logprobs, abs=1e-5)
    assert [r.n_tokens for r in many] == [1, 3, 1, 2, 3]


def test_length_sorting_helpers() -> None:
    batches = length_sorted_batches([3, 9, 1, 9, 4], batch_size=2)
    assert batches == [[1, 3], [4, 0], [2]]
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3, 4]
    eq = equal_length_batches([2, 3, 2, 2, 3], batch_size=2)
    assert eq == [[1, 4], [0, 2], [3]]
    assert cut_at_stop("12\n34", ["\n"]) == ("12", True)
    assert cut_at_stop("12=34\n", ["\n", "="]) == ("12", True)
    assert cut_at_stop("1234", ["\n"]) == ("1234", False)


def test_context_overflow_is_a_clear_error() -> None:
    model, tok = tiny_gpt(n_ctx=16)
    lm = GPTLanguageModel(model, tok)
    assert lm.max_length == 15  # one position goes to <bos>
    with pytest.raises(UserError, match="n_ctx=16"):
        lm.loglikelihood([("1+1=", "2")], shared_prefix="1234567890+")
    with pytest.raises(UserError, match="n_ctx=16"):
        lm.generate(["1234567890123456"], stop=["\n"], max_new_tokens=2)
    # generation stops when the context is full instead of failing mid-way
    out = lm.generate(["123456789012"], stop=[], max_new_tokens=10)
    assert lm.n_tokens(out[0]) <= 16 - 1 - 12


def test_gpt_adapter_rejects_an_encoder() -> None:
    tok = CharTokenizer(sorted(ALPHABET))
    enc = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=1, n_head=1, d_model=8, n_ctx=8, causal=False))
    with pytest.raises(UserError, match="causal"):
        GPTLanguageModel(enc, tok)


def test_generation_equals_naive_recomputation() -> None:
    """Greedy decoding through the preallocated shared-prefix cache equals re-running the whole sequence."""
    model, tok = tiny_gpt()
    lm = GPTLanguageModel(model, tok, batch_size=4)
    prefix = "12+30=42\n7+7=14\n"
    prompts = ["5+6=", "123+456=", "1+1=", "88+1=", "2+2=", "7+0="]
    got = lm.generate(prompts, stop=[], max_new_tokens=6, shared_prefix=prefix)
    specials = {tok.pad_id, tok.bos_id, tok.eos_id, tok.sep_id}
    for prompt, out in zip(prompts, got, strict=True):
        ids = [tok.bos_id, *tok.encode(prefix + prompt)]
        new: list[int] = []
        with torch.no_grad():
            for _ in range(6):
                nxt = int(model(torch.tensor([ids + new]))[0, -1].argmax())
                if nxt in specials:
                    break
                new.append(nxt)
        assert out == tok.decode(new)
