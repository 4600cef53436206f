"""Ablation: how much a task metric drops when a head, an MLP layer or a set of MLP neurons is removed.

Every intervention is a hook passed to `run_with_hooks`, never a weight edit:

    head h of layer l   blocks.l.attn.hook_z   (B,T,H,Dh)  z[:, :, h] ← 0 or its mean
    MLP of layer l      blocks.l.hook_mlp_out  (B,T,D)     ← 0 or its mean
    MLP neurons         blocks.l.mlp.hook_post (B,T,d_mlp) selected columns ← 0 or their mean

The metric is a callable on logits, so any task metric plugs in (answer log-probability, exact match, …);
`TaskBatch` and the scorers below build the usual ones from encoded task examples. Mean ablation replaces an
activation by its mean over the batch's real (non-pad) positions, which keeps the residual stream on
distribution (Wang et al. 2022 use a reference-distribution mean in the same spirit).

Pruning curves remove heads (or neurons) cumulatively in order of least importance and report the metric
against the fraction removed. Head importance is the exact single-head ablation drop; neuron importance is
the first-order estimate |Σ (ā − a)·∂score/∂a| ("attribution patching", Nanda 2023), one backward pass for
all neurons instead of one forward pass each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from emergence.errors import UserError

ScoreFn = Callable[[torch.Tensor], torch.Tensor]  # logits (B,T,V) → scalar tensor, higher is better
Kind = Literal["zero", "mean"]
Means = dict[str, torch.Tensor]  # hook name → mean activation without the (B, T) axes
Hooks = list[tuple[str, Callable[[torch.Tensor, Any], torch.Tensor]]]  # for run_with_hooks(fwd_hooks=…)
DEFAULT_FRACTIONS = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


@dataclass(frozen=True)
class TaskBatch:
    """Encoded examples `<bos> prompt target`, right-padded: tokens, target_mask and valid, all (B,T)."""

    tokens: torch.Tensor  # (B, T) long
    target_mask: torch.Tensor  # (B, T) bool: positions holding answer tokens
    valid: torch.Tensor  # (B, T) bool: real (non-pad) positions


def encode_examples(tokenizer: Any, examples: Sequence[Any], max_len: int) -> TaskBatch:
    """Encode `Example`s as `<bos> prompt target`, right-padded to the longest (at most max_len)."""
    rows, masks = [], []
    for ex in examples:
        prompt = tokenizer.encode(ex.prompt, add_bos=True)
        target = tokenizer.encode(ex.target)
        ids = (prompt + target)[:max_len]
        if len(prompt) >= len(ids):
            continue  # the answer does not fit in the context
        rows.append(ids)
        masks.append([False] * len(prompt) + [True] * (len(ids) - len(prompt)))
    if not rows:
        raise UserError(f"encode_examples: no example fits in {max_len} tokens with its answer")
    T = max(len(r) for r in rows)
    tokens = torch.full((len(rows), T), tokenizer.pad_id, dtype=torch.long)
    target_mask = torch.zeros(len(rows), T, dtype=torch.bool)
    valid = torch.zeros(len(rows), T, dtype=torch.bool)
    for i, (r, m) in enumerate(zip(rows, masks, strict=True)):
        tokens[i, : len(r)] = torch.tensor(r)
        target_mask[i, : len(m)] = torch.tensor(m)
        valid[i, : len(r)] = True
    return TaskBatch(tokens, target_mask, valid)


def answer_logprob(batch: TaskBatch) -> ScoreFn:
    """Scorer: mean over examples of the summed log-probability of the answer tokens (teacher forced)."""
    tgt = batch.target_mask[:, 1:]  # (B, T−1): logits at t predict token t+1

    def score(logits: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T−1, V)
        tok = logp.gather(-1, batch.tokens[:, 1:, None]).squeeze(-1)  # (B, T−1)
        return (tok * tgt).sum(1).mean()

    return score


def exact_match(batch: TaskBatch) -> ScoreFn:
    """Scorer: fraction of examples whose every answer token is the greedy prediction (teacher forced)."""
    tgt = batch.target_mask[:, 1:]

    def score(logits: torch.Tensor) -> torch.Tensor:
        hit = logits[:, :-1].argmax(-1) == batch.tokens[:, 1:]  # (B, T−1)
        return (hit | ~tgt).all(dim=1).float().mean()

    return score


def mean_activations(
    model: Any, tokens: torch.Tensor, names: Sequence[str], valid: torch.Tensor | None = None
) -> Means:
    """{hook name: mean activation over real positions}, shape = activation shape without (B,T)."""
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=list(names))
    w = (valid if valid is not None else torch.ones(tokens.shape, dtype=torch.bool)).float()  # (B, T)
    out: Means = {}
    for n in names:
        a = cache[n]  # (B, T, ...)
        wb = w.reshape(*w.shape, *([1] * (a.dim() - 2)))
        out[n] = (a * wb).sum(dim=(0, 1)) / w.sum()
    return out


def _replace(x: torch.Tensor, index: Any, kind: Kind, mean: torch.Tensor | None) -> torch.Tensor:
    """x with x[..., index, ...] replaced by zero or the mean (a copy: hooks must not edit the cache)."""
    x = x.clone()
    if kind == "zero":
        x[index] = 0.0
    else:
        if mean is None:
            raise ValueError("mean ablation needs the mean activation")
        x[index] = mean[index[2:]] if isinstance(index, tuple) else mean
    return x


def head_hooks(heads: Sequence[tuple[int, int]], kind: Kind, means: Means | None = None) -> Hooks:
    """Hooks on `blocks.l.attn.hook_z` (B,T,H,Dh) that ablate the given (layer, head) pairs."""
    by_layer: dict[int, list[int]] = {}
    for layer, h in heads:
        by_layer.setdefault(layer, []).append(h)
    hooks: Hooks = []
    for layer, hs in by_layer.items():
        name = f"blocks.{layer}.attn.hook_z"
        mean = means.get(name) if means else None
        idx = (slice(None), slice(None), torch.tensor(hs))

        def fn(z: torch.Tensor, hook: Any, idx: Any = idx, mean: Any = mean) -> torch.Tensor:
            return _replace(z, idx, kind, mean)

        hooks.append((name, fn))
    return hooks


def mlp_hooks(layers: Sequence[int], kind: Kind, means: Means | None = None) -> Hooks:
    """Hooks on `blocks.l.hook_mlp_out` (B,T,D) that remove whole MLP layers."""
    hooks: Hooks = []
    for layer in layers:
        name = f"blocks.{layer}.hook_mlp_out"
        mean = means.get(name) if means else None

        def fn(x: torch.Tensor, hook: Any, mean: Any = mean) -> torch.Tensor:
            return torch.zeros_like(x) if kind == "zero" else mean.expand_as(x).clone()

        hooks.append((name, fn))
    return hooks


def neuron_hooks(neurons: dict[int, Sequence[int]], kind: Kind, means: Means | None = None) -> Hooks:
    """Hooks on `blocks.l.mlp.hook_post` (B,T,d_mlp) that ablate the given neurons of each layer."""
    hooks: Hooks = []
    for layer, ids in neurons.items():
        if len(ids) == 0:
            continue
        name = f"blocks.{layer}.mlp.hook_post"
        mean = means.get(name) if means else None
        idx = (slice(None), slice(None), torch.as_tensor(list(ids), dtype=torch.long))

        def fn(x: torch.Tensor, hook: Any, idx: Any = idx, mean: Any = mean) -> torch.Tensor:
            return _replace(x, idx, kind, mean)

        hooks.append((name, fn))
    return hooks


def _score(model: Any, tokens: torch.Tensor, score_fn: ScoreFn, hooks: Hooks) -> float:
    with torch.no_grad():
        return float(score_fn(model.run_with_hooks(tokens, fwd_hooks=hooks)))


def _has_mlp(model: Any) -> bool:
    return not model.cfg.attn_only


def _means(
    model: Any, tokens: torch.Tensor, kind: Kind, names: list[str], valid: torch.Tensor | None
) -> Means | None:
    return mean_activations(model, tokens, names, valid) if kind == "mean" else None


def ablate_components(
    model: Any,
    tokens: torch.Tensor,
    score_fn: ScoreFn,
    kind: Kind = "zero",
    valid: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Drop in the score (baseline − ablated) for every head (L,H) and every MLP layer (L,)."""
    L, H = model.cfg.n_layer, model.cfg.n_head
    names = [f"blocks.{i}.attn.hook_z" for i in range(L)]
    if _has_mlp(model):
        names += [f"blocks.{i}.hook_mlp_out" for i in range(L)]
    means = _means(model, tokens, kind, names, valid)
    base = _score(model, tokens, score_fn, [])
    heads = np.zeros((L, H))
    for layer in range(L):
        for h in range(H):
            heads[layer, h] = base - _score(model, tokens, score_fn, head_hooks([(layer, h)], kind, means))
    mlps = None
    if _has_mlp(model):
        mlps = [base - _score(model, tokens, score_fn, mlp_hooks([i], kind, means)) for i in range(L)]
    return {"kind": kind, "baseline": base, "heads": heads, "mlps": mlps}


def head_pruning_curve(
    model: Any,
    tokens: torch.Tensor,
    score_fn: ScoreFn,
    importance: np.ndarray,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    kind: Kind = "zero",
    valid: torch.Tensor | None = None,
) -> list[dict[str, float]]:
    """Score after removing the least important heads first, at each fraction of all heads removed."""
    L, H = importance.shape
    order = [(int(i // H), int(i % H)) for i in np.argsort(importance, axis=None, kind="stable")]
    names = [f"blocks.{i}.attn.hook_z" for i in range(L)]
    means = _means(model, tokens, kind, names, valid)
    out = []
    for f in fractions:
        k = round(f * len(order))
        out.append(
            {
                "fraction": float(f),
                "score": _score(model, tokens, score_fn, head_hooks(order[:k], kind, means)),
            }
        )
    return out


def neuron_importance(
    model: Any,
    tokens: torch.Tensor,
    score_fn: ScoreFn,
    kind: Kind = "zero",
    valid: torch.Tensor | None = None,
) -> list[np.ndarray]:
    """First-order ablation effect |Σ_{b,t} (ā − a)·∂score/∂a| of every MLP neuron: L arrays (d_mlp,)."""
    if not _has_mlp(model):
        return []
    names = [f"blocks.{i}.mlp.hook_post" for i in range(model.cfg.n_layer)]
    means = _means(model, tokens, kind, names, valid)
    with torch.enable_grad():
        logits, cache = model.run_with_cache(tokens, names_filter=names, detach=False)
        acts = [cache[n] for n in names]
        grads = torch.autograd.grad(score_fn(logits), acts, allow_unused=True)
    out = []
    for n, a, g in zip(names, acts, grads, strict=True):
        if g is None:
            out.append(np.zeros(a.shape[-1]))
            continue
        target = torch.zeros_like(a) if means is None else means[n].expand_as(a)
        out.append(((target - a.detach()) * g).sum(dim=(0, 1)).abs().double().numpy())  # (d_mlp,)
    return out


def neuron_pruning_curve(
    model: Any,
    tokens: torch.Tensor,
    score_fn: ScoreFn,
    importance: list[np.ndarray],
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    kind: Kind = "zero",
    valid: torch.Tensor | None = None,
) -> list[dict[str, float]]:
    """Score after removing the least important MLP neurons (pooled over layers) at each fraction removed."""
    if not importance:
        return []
    flat = np.concatenate(importance)
    sizes = [len(x) for x in importance]
    offsets = np.concatenate(([0], np.cumsum(sizes)))
    order = np.argsort(flat, kind="stable")
    names = [f"blocks.{i}.mlp.hook_post" for i in range(len(importance))]
    means = _means(model, tokens, kind, names, valid)
    out = []
    for f in fractions:
        chosen = order[: round(f * flat.size)]
        layer_of = np.searchsorted(offsets, chosen, side="right") - 1
        neurons = {
            int(layer): (chosen[layer_of == layer] - offsets[layer]).tolist() for layer in set(layer_of)
        }
        out.append(
            {
                "fraction": float(f),
                "score": _score(model, tokens, score_fn, neuron_hooks(neurons, kind, means)),
            }
        )
    return out
