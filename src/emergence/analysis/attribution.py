"""Which prompt tokens an answer depends on: per-token attribution on the token-embedding output.

The attributed quantity is the answer's log-probability under teacher forcing, log P(answer | prompt), as a
function of the token embeddings (the output of `hook_embed`, (B,T,D)); positional embeddings are untouched.

- `integrated_gradients` (Sundararajan et al. 2017) through captum's `LayerIntegratedGradients` on the
  `hook_embed` module: the path runs from the embeddings of a baseline prompt (every prompt token replaced by
  `<pad>`, BOS and answer kept) to the real ones; scores sum to the change in log-probability up to the
  reported convergence delta (completeness).
- `grad_x_input`: gradient × (embedding − baseline embedding), one backward pass (the first-order
  approximation of the same path integral).

A token's score is the sum over D of its attribution; positive scores raise the answer's probability.
`attribution_html` renders the prompt coloured by score (red raises, blue lowers).
"""

from __future__ import annotations

import html
from typing import Any, Literal

import torch
import torch.nn.functional as F

from emergence.errors import UserError

Method = Literal["integrated_gradients", "grad_x_input"]


def _answer_logprob(model: Any, tokens: torch.Tensor, n_prompt: int) -> torch.Tensor:
    """log P(tokens[n_prompt:] | tokens[:n_prompt]) per row (B,)."""
    logits = model(tokens)  # (B, T, V)
    logp = F.log_softmax(logits[:, n_prompt - 1 : -1].float(), dim=-1)  # predictions of the answer tokens
    return logp.gather(-1, tokens[:, n_prompt:, None]).squeeze(-1).sum(-1)


def answer_attribution(
    model: Any,
    prompt_ids: list[int],
    answer_ids: list[int],
    pad_id: int,
    method: Method = "integrated_gradients",
    n_steps: int = 32,
    keep_first: bool = True,
) -> dict[str, Any]:
    """Attribution of log P(answer | prompt) to each prompt token: {scores, logprob, baseline_logprob, delta}.

    `keep_first` leaves the first prompt token (BOS) in the baseline, since a sequence without it is off
    distribution for the model.
    """
    if not prompt_ids or not answer_ids:
        raise UserError("answer_attribution: prompt and answer must each have at least one token")
    n_prompt = len(prompt_ids)
    tokens = torch.tensor([prompt_ids + answer_ids], dtype=torch.long)  # (1, T)
    baseline = tokens.clone()
    baseline[0, int(keep_first) : n_prompt] = pad_id

    def forward(t: torch.Tensor) -> torch.Tensor:
        return _answer_logprob(model, t, n_prompt)

    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            if method == "integrated_gradients":
                from captum.attr import LayerIntegratedGradients

                lig = LayerIntegratedGradients(forward, model.hook_embed)
                attr, delta = lig.attribute(
                    tokens, baselines=baseline, n_steps=n_steps, return_convergence_delta=True
                )
                delta_v = float(delta.sum())
            elif method == "grad_x_input":
                attr = _grad_x_input(model, tokens, baseline, forward)
                delta_v = None
            else:
                raise UserError(f"answer_attribution: unknown method {method!r}")
        with torch.no_grad():
            lp, lp0 = float(forward(tokens)), float(forward(baseline))
    finally:
        model.train(was_training)
    scores = attr[0].sum(-1)[:n_prompt].detach().double().tolist()  # (T, D) → prompt positions
    return {"method": method, "scores": scores, "logprob": lp, "baseline_logprob": lp0, "delta": delta_v}


def _grad_x_input(model: Any, tokens: torch.Tensor, baseline: torch.Tensor, forward: Any) -> torch.Tensor:
    """(e − e₀)·∂f/∂e on the `hook_embed` output (1, T, D)."""
    with torch.no_grad():
        _, c0 = model.run_with_cache(baseline, names_filter="hook_embed")
    store: dict[str, torch.Tensor] = {}

    def grab(x: torch.Tensor, hook: Any) -> torch.Tensor:
        x = x.detach().requires_grad_(True)
        store["e"] = x
        return x

    with model.hooks([("hook_embed", grab)]):
        out = forward(tokens).sum()
    (g,) = torch.autograd.grad(out, store["e"])
    return (store["e"].detach() - c0["hook_embed"]) * g


def attribution_html(tokens: list[str], scores: list[float], title: str = "") -> str:
    """An HTML snippet: each token shaded by its score (red positive, blue negative), value on hover."""
    if len(tokens) != len(scores):
        raise UserError(f"attribution_html: {len(tokens)} tokens but {len(scores)} scores")
    top = max((abs(s) for s in scores), default=0.0) or 1.0
    spans = []
    for tok, s in zip(tokens, scores, strict=True):
        a = min(1.0, abs(s) / top)
        rgb = "220,50,47" if s >= 0 else "38,139,210"
        text = html.escape(tok).replace(" ", "&nbsp;").replace("\n", "↵")
        spans.append(
            f'<span title="{s:+.4f}" style="background-color: rgba({rgb},{a:.3f}); '
            f'font-family: monospace; padding: 1px 0">{text}</span>'
        )
    head = f"<div><b>{html.escape(title)}</b></div>" if title else ""
    return f'<div class="attribution">{head}<div>{"".join(spans)}</div></div>'


def attribute_example(
    model: Any,
    tokenizer: Any,
    prompt: str,
    target: str,
    method: Method = "integrated_gradients",
    n_steps: int = 32,
) -> dict[str, Any]:
    """Attribution of one task example: scores per prompt token, the token strings and an HTML snippet."""
    prompt_ids = tokenizer.encode(prompt, add_bos=True)
    answer_ids = tokenizer.encode(target)
    res = answer_attribution(model, prompt_ids, answer_ids, tokenizer.pad_id, method, n_steps)
    toks = [tokenizer.id_to_token(i) for i in prompt_ids]
    res["tokens"] = toks
    res["html"] = attribution_html(toks, res["scores"], title=f"→ {target!r}")
    return res
