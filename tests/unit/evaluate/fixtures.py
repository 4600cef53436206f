"""Shared test models for the evaluation tests."""

from __future__ import annotations

import torch

from emergence.models.gpt import GPT, GPTConfig
from emergence.tokenizers import SPECIAL_TOKENS, CharTokenizer

ALPHABET = "0123456789+=\n"


def tiny_gpt(
    n_ctx: int = 64,
    seed: int = 2,
    std: float = 1.2,
    dtype: torch.dtype = torch.float64,
    alphabet: str = ALPHABET,
) -> tuple[GPT, CharTokenizer]:
    """A 2-layer GPT with wide random weights (float64 by default, so equality tests test the algorithm)."""
    tok = CharTokenizer(sorted(set(alphabet)))
    torch.manual_seed(seed)
    cfg = GPTConfig(
        vocab_size=tok.vocab_size, n_layer=2, n_head=2, d_model=32, n_ctx=n_ctx, tie_embeddings=False
    )
    model = GPT(cfg)
    # GPT-2 init gives near-uniform logits and the same greedy token everywhere; wide weights make the greedy
    # answers depend on the prompt and the prefix, so that equality tests compare something. Zero logits for
    # the special tokens keep an untrained model from ending every answer at once.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, std)
        model.unembed.weight[: len(SPECIAL_TOKENS)] = 0.0
    return model.to(dtype), tok
