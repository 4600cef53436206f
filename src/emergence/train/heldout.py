"""Held-out measurements taken during training: masked CLM loss, a VAE's ELBO terms and greedy exact match.

The objectives (`train.objectives`, `train.encoder`) call these; the trainer only schedules them, so this
module sits below both.
"""

from __future__ import annotations

from typing import Any

import torch

from emergence.models.generation import generate
from emergence.models.recurrent import LSTMVAE, VAEDecoderLM
from emergence.train.data import Batch, TrainData, collate
from emergence.train.losses import OBJECTIVES


@torch.no_grad()
def heldout_loss(model: torch.nn.Module, data: TrainData, batch_size: int, device: str) -> float:
    """Mean masked CLM loss over the held-out items."""
    total, count = 0.0, 0
    seqs = data.eval_seqs
    for i in range(0, len(seqs), batch_size):
        b = collate(seqs[i : i + batch_size], data.tokenizer.pad_id).to(device)
        s, n = OBJECTIVES.get("clm")(model(b.x), b.y, b.mask)
        total += float(s)
        count += n
    return total / max(count, 1)


@torch.no_grad()
def exact_match(
    model: torch.nn.Module, tokenizer: Any, pairs: list[tuple[str, str]], batch_size: int, device: str
) -> float:
    """Share of prompts whose greedy continuation up to `<eos>` equals the target exactly."""
    n_ctx = model.cfg.n_ctx
    by_len: dict[int, list[tuple[list[int], str]]] = {}
    for prompt, target in pairs:
        ids = tokenizer.encode(prompt, add_bos=True)
        by_len.setdefault(len(ids), []).append((ids, target))
    max_target = max(len(tokenizer.encode(t)) for _, t in pairs)
    hits = 0
    for length, group in sorted(by_len.items()):
        # One token beyond the longest answer leaves room for <eos>; a longer answer is wrong anyway.
        max_new = min(max_target + 1, n_ctx - length)
        if max_new <= 0:
            continue
        for i in range(0, len(group), batch_size):
            chunk = group[i : i + batch_size]
            idx = torch.tensor([ids for ids, _ in chunk], dtype=torch.long, device=device)  # (B, T)
            # Rows stop at <eos> (not included), so a row is exactly the model's answer.
            out = generate(model, idx, max_new, temperature=0.0, stop_ids=[tokenizer.eos_id])
            hits += sum(tokenizer.decode(row) == target for row, (_, target) in zip(out, chunk, strict=True))
    return hits / len(pairs)


@torch.no_grad()
def heldout_elbo(model: Any, data: TrainData, batch_size: int, device: str) -> dict[str, float]:
    """A VAE's held-out terms per sentence at β = 1: eval_recon, eval_kl and eval_loss = −ELBO = recon + KL.

    z is drawn from a generator of its own (fixed seed), so evaluating never moves the training RNG.
    """
    gen = torch.Generator().manual_seed(0)
    recon = kl = 0.0
    rows = 0
    seqs = data.eval_seqs
    for i in range(0, len(seqs), batch_size):
        b = collate(seqs[i : i + batch_size], data.tokenizer.pad_id).to(device)
        out = model.elbo(sentence_rows(b), step=0, generator=gen)
        n = b.x.shape[0]
        recon += float(out["recon"]) * n
        kl += float(out["kl"]) * n
        rows += n
    recon, kl = recon / max(rows, 1), kl / max(rows, 1)
    return {"eval_recon": recon, "eval_kl": kl, "eval_loss": recon + kl}


def sentence_rows(b: Batch) -> torch.Tensor:
    """The whole right-padded rows `<bos> … <eos> <pad>…` (B,T+1) a VAE reads, rebuilt from inputs/targets."""
    return torch.cat([b.x[:, :1], b.y], dim=1)  # x[:, 0] is <bos>; y holds every later token


def evaluate(model: torch.nn.Module, data: TrainData, batch_size: int, device: str) -> dict[str, float]:
    """Held-out loss and exact match (held-out, and training examples for a fixed training set).

    For an LSTM-VAE the loss is the held-out negative ELBO (`heldout_elbo`) and exact match decodes with its
    decoder at z = 0 (`VAEDecoderLM`, as the study's evaluation does).
    """
    was_training = model.training
    model.eval()
    out: dict[str, float] = {}
    vae = isinstance(model, LSTMVAE)
    try:
        if data.eval_seqs:
            if vae:
                out.update(heldout_elbo(model, data, batch_size, device))
            else:
                out["eval_loss"] = heldout_loss(model, data, batch_size, device)
        if vae:
            model = VAEDecoderLM(model)  # type: ignore[arg-type]
        if data.eval_generate:
            out["eval_exact_match"] = exact_match(
                model, data.tokenizer, data.eval_generate, batch_size, device
            )
        if data.train_generate:
            out["train_exact_match"] = exact_match(
                model, data.tokenizer, data.train_generate, batch_size, device
            )
    finally:
        model.train(was_training)
    return out
