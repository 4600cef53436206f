"""Sampling from a trained checkpoint: the library side of `emergence generate`."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from emergence.errors import UserError
from emergence.train.checkpoint import load_checkpoint, resolve_checkpoint


def generate_text(
    run_dir: str | os.PathLike[str],
    prompts: Sequence[str],
    *,
    step: int | None = None,
    max_new_tokens: int = 32,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    num_return_sequences: int = 1,
    stop: Sequence[str] = (),
    seed: int = 0,
    add_bos: bool = True,
) -> list[str]:
    """Prompt + continuation for every prompt × sample, from a run's checkpoint (greedy at temperature 0)."""
    from emergence.models.generation import generate

    model, tokenizer, _ = load_checkpoint(resolve_checkpoint(run_dir, step))
    generator = torch.Generator().manual_seed(seed)
    stops = [s for s in stop if s]

    def hit(text: str) -> bool:
        return any(s in text for s in stops)

    out: list[str] = []
    for prompt in prompts:
        ids = tokenizer.encode(prompt, add_bos=add_bos)
        if not ids:
            raise UserError("--prompt: empty prompt (and no <bos>)")
        idx = torch.tensor([ids], dtype=torch.long)  # (1, T)
        try:
            rows = generate(
                model,
                idx,
                max_new_tokens,
                temperature=temperature,
                top_k=top_k,
                top_p=top_p,
                num_return_sequences=num_return_sequences,
                stop_ids=[tokenizer.eos_id],
                stop=hit if stops else None,
                decode=tokenizer.decode,
                generator=generator,
            )
        except ValueError as e:  # bad sampling options (e.g. top_p out of range) are the user's input
            raise UserError(str(e)) from None
        for row in rows:
            text = tokenizer.decode(row)
            cuts = [text.index(s) for s in stops if s in text]
            out.append(prompt + (text[: min(cuts)] if cuts else text))
    return out
