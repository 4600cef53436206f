"""Autoregressive generation with the key/value cache: greedy, temperature, top-k and top-p sampling.

    prompt (B,T) ─► prefill (one forward, fills the cache) ─► repeat: sample ─► feed one token (B·n,1)

Each prompt row yields `num_return_sequences` continuations (rows b·n … b·n + n − 1 belong to prompt b).
A row stops at a stop token id (not included in its output), when `stop(decode(new_tokens))` turns true (the
token that completed the stop string is kept, so the caller can cut the text at the string), or after
`max_new_tokens`. When the context fills up, the oldest tokens are dropped and the cache is rebuilt from the
last n_ctx tokens (nanoGPT's crop), so generation can run past the context at the cost of a prefill per step.
Sampling draws only from the given `torch.Generator`, so a seeded generator reproduces its samples.

Recurrent models (`LSTMLM`, `VAEDecoderLM`: anything with `forward_state(idx, state)`) take the same options;
their state (h, c) plays the cache's part, and having no context limit they never crop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from emergence.models.gpt import GPT, KVCache


def _accept(
    tokens: list[int],
    outputs: list[list[int]],
    done: list[bool],
    stop_set: set[int],
    stop: Callable[[str], bool] | None,
    decode: Callable[[list[int]], str] | None,
) -> bool:
    """Append each unfinished row's sampled token, or finish the row on a stop id or stop string; all done?"""
    for r, tok in enumerate(tokens):
        if done[r]:
            continue
        if tok in stop_set:
            done[r] = True
            continue
        outputs[r].append(tok)
        if stop is not None and decode is not None and stop(decode(outputs[r])):
            done[r] = True
    return all(done)


def sample_next(
    logits: torch.Tensor,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Next token ids (R,) from last-position logits (R,V): argmax at temperature 0, else sample."""
    if temperature < 0:
        raise ValueError(f"temperature: must be >= 0, got {temperature}")
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None:
        if top_k <= 0:
            raise ValueError(f"top_k: must be positive, got {top_k}")
        if top_k < logits.shape[-1]:
            kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (R, 1) the k-th largest logit
            logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p: must be in (0, 1], got {top_p}")
        # Nucleus sampling (Holtzman et al. 2020): keep the smallest set of most likely tokens whose mass
        # reaches top_p; a token is dropped when the mass *before* it already reaches top_p, so the most
        # likely token always survives.
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (R, V)
        probs = sorted_logits.softmax(dim=-1)
        drop_sorted = probs.cumsum(dim=-1) - probs >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def generate(
    model: Any,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    num_return_sequences: int = 1,
    stop_ids: Sequence[int] = (),
    stop: Callable[[str], bool] | None = None,
    decode: Callable[[list[int]], str] | None = None,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Continue each prompt row of idx (B,T); return the new token ids of B·num_return_sequences rows."""
    if idx.dim() != 2 or idx.shape[1] == 0:
        raise ValueError(f"idx: expected a non-empty (batch, time) tensor, got shape {tuple(idx.shape)}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens: must be >= 0, got {max_new_tokens}")
    if num_return_sequences < 1:
        raise ValueError(f"num_return_sequences: must be >= 1, got {num_return_sequences}")
    if stop is not None and decode is None:
        raise ValueError("stop: a stop callback needs a decode function to turn tokens into text")
    if not isinstance(model, GPT):
        return _generate_recurrent(
            model,
            idx,
            max_new_tokens,
            temperature,
            top_k,
            top_p,
            num_return_sequences,
            stop_ids,
            stop,
            decode,
            generator,
        )
    n_ctx = model.cfg.n_ctx
    rows = idx.shape[0] * num_return_sequences
    outputs: list[list[int]] = [[] for _ in range(rows)]
    if max_new_tokens == 0:
        return outputs
    stop_set = set(stop_ids)
    was_training = model.training
    model.eval()
    try:
        seq = idx[:, -n_ctx:]  # a prompt longer than the context keeps its most recent tokens
        cache = model.new_cache(seq.shape[0])
        logits = model(seq, cache=cache, last_only=True)[:, -1]  # (B, V)
        if num_return_sequences > 1:
            # Prefill once per prompt, then give each continuation its own copy of the prompt's cache.
            cache = KVCache(
                [k.repeat_interleave(num_return_sequences, dim=0) for k in cache.keys],
                [v.repeat_interleave(num_return_sequences, dim=0) for v in cache.values],
                cache.length,
            )
            logits = logits.repeat_interleave(num_return_sequences, dim=0)  # (B·n, V)
            seq = seq.repeat_interleave(num_return_sequences, dim=0)  # (B·n, T)
        done = [False] * rows
        for step in range(max_new_tokens):
            nxt = sample_next(logits, temperature, top_k, top_p, generator)  # (B·n,)
            if _accept(nxt.tolist(), outputs, done, stop_set, stop, decode) or step == max_new_tokens - 1:
                break
            seq = torch.cat([seq, nxt[:, None]], dim=1)  # (B·n, T+1)
            if cache.length + 1 > n_ctx:
                # Context full: forget the oldest tokens and rebuild the cache (positions restart at 0).
                seq = seq[:, -n_ctx:]
                cache = model.new_cache(rows)
                logits = model(seq, cache=cache, last_only=True)[:, -1]
            else:
                logits = model(nxt[:, None], cache=cache)[:, -1]  # (B·n, V)
    finally:
        model.train(was_training)
    return outputs


@torch.no_grad()
def _generate_recurrent(
    model: Any,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    num_return_sequences: int,
    stop_ids: Sequence[int],
    stop: Callable[[str], bool] | None,
    decode: Callable[[list[int]], str] | None,
    generator: torch.Generator | None,
) -> list[list[int]]:
    """`generate` for a recurrent model: prefill the prompt once, then one token per step with the state."""
    rows = idx.shape[0] * num_return_sequences
    outputs: list[list[int]] = [[] for _ in range(rows)]
    if max_new_tokens == 0:
        return outputs
    stop_set = set(stop_ids)
    was_training = model.training
    model.eval()
    try:
        seq = idx.repeat_interleave(num_return_sequences, dim=0)  # (B·n, T): rows of one prompt adjacent
        logits, state = model.forward_state(seq)
        logits = logits[:, -1]  # (B·n, V)
        done = [False] * rows
        for step in range(max_new_tokens):
            nxt = sample_next(logits, temperature, top_k, top_p, generator)  # (B·n,)
            if _accept(nxt.tolist(), outputs, done, stop_set, stop, decode) or step == max_new_tokens - 1:
                break
            step_logits, state = model.forward_state(nxt[:, None], state)  # (B·n, 1, V)
            logits = step_logits[:, -1]
    finally:
        model.train(was_training)
    return outputs
