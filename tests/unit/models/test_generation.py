"""Generation: cached greedy equals naive greedy, sampling filters, stopping, determinism, context crop."""

from __future__ import annotations

import pytest
import torch

from emergence.models.generation import generate, sample_next
from emergence.models.gpt import GPT, GPTConfig

V = 17


def model(n_ctx: int = 40) -> GPT:
    return GPT(GPTConfig(vocab_size=V, n_layer=2, n_head=2, d_model=32, n_ctx=n_ctx)).eval()


def naive_greedy(m: GPT, idx: torch.Tensor, n: int) -> torch.Tensor:
    """Greedy decoding by re-running the whole (cropped) sequence each step, no cache."""
    seq = idx
    with torch.no_grad():
        for _ in range(n):
            nxt = m(seq[:, -m.cfg.n_ctx :])[:, -1].argmax(-1)
            seq = torch.cat([seq, nxt[:, None]], dim=1)
    return seq[:, idx.shape[1] :]


def test_cached_greedy_equals_naive_greedy() -> None:
    m = model()
    prompt = torch.randint(0, V, (3, 6))
    out = generate(m, prompt, max_new_tokens=20)
    assert out == naive_greedy(m, prompt, 20).tolist()


def test_generation_past_the_context_crops_like_naive() -> None:
    m = model(n_ctx=12)
    prompt = torch.randint(0, V, (2, 8))
    assert generate(m, prompt, max_new_tokens=10) == naive_greedy(m, prompt, 10).tolist()


def test_stop_ids_and_stop_callback() -> None:
    m = model()
    prompt = torch.randint(0, V, (2, 5))
    free = generate(m, prompt, max_new_tokens=15)
    stop_tok = free[0][3]
    stopped = generate(m, prompt, max_new_tokens=15, stop_ids=[stop_tok])
    first = free[0].index(stop_tok)
    assert stopped[0] == free[0][:first]  # the stop token itself is not returned
    # Stop callback on decoded text: stop once the text contains the 4th token's "character".
    decode = lambda ids: "".join(chr(97 + i) for i in ids)  # noqa: E731
    target = chr(97 + free[1][3])
    by_text = generate(m, prompt, max_new_tokens=15, stop=lambda s: target in s, decode=decode)
    cut = decode(free[1]).index(target) + 1
    assert by_text[1] == free[1][:cut]  # the token completing the stop string is kept
    with pytest.raises(ValueError, match="decode"):
        generate(m, prompt, max_new_tokens=3, stop=lambda s: False)


def test_sampling_is_deterministic_with_a_generator_and_varies_across_seeds() -> None:
    m = model()
    prompt = torch.randint(0, V, (1, 4))

    def run(seed: int) -> list[list[int]]:
        g = torch.Generator().manual_seed(seed)
        return generate(m, prompt, 12, temperature=1.5, num_return_sequences=4, generator=g)

    a, b = run(1), run(1)
    assert a == b
    assert len(a) == 4 and all(len(r) == 12 for r in a)
    assert run(2) != a
    assert len({tuple(r) for r in a}) > 1  # the 4 continuations differ


def test_num_return_sequences_orders_rows_by_prompt() -> None:
    m = model()
    prompt = torch.randint(0, V, (2, 5))
    out = generate(m, prompt, max_new_tokens=6, num_return_sequences=3)
    greedy = generate(m, prompt, max_new_tokens=6)
    assert out == [greedy[0]] * 3 + [greedy[1]] * 3


def test_generate_restores_training_mode() -> None:
    m = model().train()
    generate(m, torch.randint(0, V, (1, 3)), 2)
    assert m.training


def test_top_k_and_top_p_filters() -> None:
    logits = torch.tensor([[4.0, 3.0, 0.0, -1.0, -2.0]]).repeat(2000, 1)
    g = torch.Generator().manual_seed(0)
    k2 = sample_next(logits, temperature=1.0, top_k=2, generator=g)
    assert set(k2.tolist()) == {0, 1}
    # softmax([4,3,0,-1,-2]) ≈ [.70, .26, .013, …]: top_p 0.5 keeps only token 0; 0.9 keeps tokens 0 and 1.
    assert set(sample_next(logits, 1.0, top_p=0.5, generator=g).tolist()) == {0}
    assert set(sample_next(logits, 1.0, top_p=0.9, generator=g).tolist()) == {0, 1}
    # Unfiltered sampling at high temperature reaches every token.
    assert set(sample_next(logits, 5.0, generator=g).tolist()) == {0, 1, 2, 3, 4}
    # Temperature 0 is the argmax whatever the filters.
    assert sample_next(logits[:1], 0.0, top_k=1).tolist() == [0]
    with pytest.raises(ValueError, match="top_p"):
        sample_next(logits, 1.0, top_p=0.0)
    with pytest.raises(ValueError, match="top_k"):
        sample_next(logits, 1.0, top_k=0)


def test_top_p_on_unsorted_logits() -> None:
    # The filter must map back from sorted order: the most likely token here is index 3.
    logits = torch.tensor([[0.0, -1.0, 1.0, 6.0]]).repeat(500, 1)
    g = torch.Generator().manual_seed(0)
    assert set(sample_next(logits, 1.0, top_p=0.5, generator=g).tolist()) == {3}
