"""Mechanism measurements of one checkpoint, gathered into one JSON-serialisable dict.

    measure_checkpoint(model, tokenizer, tasks, cfg) ─► {
        heads        previous-token / duplicate / induction / copying scores (L,H), ICL score, logit lens
        neurons      firing, dead neurons, residual outliers, dimensionality, polysemanticity
        criticality  avalanches vs subsample size (+ shuffled null), token × layer components, branching ratio
        jacobian     χ per block (full and residual branch), Lyapunov exponent, APJN growth
        ablation     per task: drop of the metric per head and per MLP, pruning curves
        attribution  per task: integrated-gradients scores of a few examples with an HTML snippet
    }

The study runner calls it on every checkpoint; the report plots its numbers against scale and training step.
The schema is documented in docs/mechanisms.md. Every part can be switched off in `MechanismsConfig`.

Input text: the heads use repeated random tokens (REFERENCES §7); everything else uses streams of task
examples `<bos> prompt target <eos> prompt target <eos> …` cut to `stream_len` tokens, from the test split
for measurements and the train split for the neuron z-score calibration.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from emergence.analysis import ablation, attention, attribution, criticality, neurons
from emergence.config import to_dict
from emergence.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MechanismsConfig:
    """What to measure on each checkpoint and how much data to use (defaults: seconds on a tiny CPU model)."""

    seed: int = 0  # all sampling (random tokens, examples, neuron subsets, probes) derives from it
    heads: bool = True  # head scores, copying, ICL score, logit lens
    head_span: int = 32  # T of [BOS, r_1..r_T, r_1..r_T]; shrunk to fit n_ctx
    head_batch: int = 16  # sequences of repeated random tokens
    induction_threshold: float = 0.4  # a head with an induction score above this counts as an induction head
    n_special: int = 4  # ids below this are specials (pad/bos/eos/sep), excluded from random tokens & copying
    stream_len: int = 128  # tokens per stream of task examples (ICL, neurons, criticality); ≤ n_ctx
    # ICL score data: "streams" (the streams above) or "examples": n_streams test examples, one per row as the
    # trainer encodes them (`<bos> prompt target`), positions scaled to each example's length (Olsson et al.
    # average over dataset examples; use it when the model was trained on single examples, not streams).
    icl_data: Literal["streams", "examples"] = "streams"
    n_streams: int = 32  # measurement streams (REFERENCES §11: 32–64 sequences × 128–256 tokens)
    n_calibration: int = 16  # calibration streams for the per-neuron z-scores
    neurons: bool = True
    criticality: bool = True  # needs MLPs; skipped for attention-only models
    event_threshold: float = 3.0  # z-score threshold, used when event_rate is null
    event_rate: float | None = (
        0.01  # per-layer threshold matched to this event rate (comparable across models)
    )
    subsample: tuple[int, ...] = (16, 32, 64, 128)  # neurons per avalanche population (exponents vs n)
    n_draws: int = 4  # random neuron subsets pooled per n
    bin_size: int | None = None  # avalanche time bin in tokens; null = mean inter-event interval
    component_neurons: int = 64  # neurons (spread over layers) for token × layer connected components
    branching_numboot: int = 20  # bootstrap samples of the branching-ratio fit
    jacobian: bool = True
    jacobian_streams: int = 2  # streams (of stream_len tokens) used as the Jacobian's input
    jacobian_probes: int = 4  # random probes per layer (4 suffice, REFERENCES §11)
    ablation: bool = True
    ablation_kind: Literal["zero", "mean"] = "mean"
    ablation_metric: Literal["answer_logprob", "exact_match"] = "answer_logprob"
    n_examples: int = 64  # task examples for ablation
    pruning: bool = True
    pruning_fractions: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
    attribution_examples: int = 2  # examples per task given an attribution snippet (0 = off)
    attribution_steps: int = 32  # integrated-gradients steps
    # Grokking (emergence.analysis.grokking): Fourier progress measures of every checkpoint of a modular task
    # with one-token residues, and the delay S2/S1 from each run's training curve (study level only).
    fourier: bool = False
    fourier_fraction: float = 0.9  # key frequencies: the fewest carrying this share of the embedding's norm
    grok_train_accuracy: float = 0.99  # S1: first evaluation with training exact match ≥ this
    grok_test_accuracy: float = 0.95  # S2: first evaluation with held-out exact match ≥ this

    def __post_init__(self) -> None:
        for name in ("head_span", "head_batch", "stream_len", "n_streams", "n_calibration", "n_draws"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be ≥ 1, got {getattr(self, name)}")
        if self.head_span < 2:
            raise ValueError(f"head_span: must be ≥ 2, got {self.head_span}")
        if self.event_rate is not None and not 0.0 < self.event_rate < 1.0:
            raise ValueError(f"event_rate: must be in (0, 1) or null, got {self.event_rate}")
        if self.bin_size is not None and self.bin_size < 1:
            raise ValueError(f"bin_size: must be ≥ 1 or null, got {self.bin_size}")
        if any(n < 1 for n in self.subsample):
            raise ValueError(f"subsample: sizes must be ≥ 1, got {self.subsample}")
        if any(not 0.0 <= f <= 1.0 for f in self.pruning_fractions):
            raise ValueError(f"pruning_fractions: must lie in [0, 1], got {self.pruning_fractions}")
        for name in ("fourier_fraction", "grok_train_accuracy", "grok_test_accuracy"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: must be in (0, 1], got {getattr(self, name)}")


def task_streams(
    tokenizer: Any,
    tasks: Sequence[Any],
    n: int,
    length: int,
    split: str,
    seed: int,
    vocab_size: int,
    low: int,
) -> torch.Tensor:
    """(n, length) streams of concatenated task examples; uniform random tokens when there are no tasks."""
    g = torch.Generator().manual_seed(seed)
    if not tasks:
        return torch.randint(low, vocab_size, (n, length), generator=g)
    pool: list[list[int]] = []
    for t in tasks:
        exs = _examples(t, split, max(8, n * length // 8), seed)
        pool += [tokenizer.encode(e.prompt + e.target, add_eos=True) for e in exs]
    rng = np.random.default_rng(seed)
    out = torch.empty(n, length, dtype=torch.long)
    for i in range(n):
        ids = [tokenizer.bos_id]
        while len(ids) < length:
            ids += pool[int(rng.integers(len(pool)))]
        out[i] = torch.tensor(ids[:length])
    return out


def _examples(task: Any, split: str, n: int, seed: int) -> list[Any]:
    """Up to n examples; a small split is taken whole instead of raising."""
    while True:
        try:
            return task.examples(split, n, seed)
        except UserError:
            if n <= 1:
                raise
            n //= 2


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray | torch.Tensor):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def measure_heads(
    model: Any,
    cfg: MechanismsConfig,
    streams: torch.Tensor,
    bos_id: int,
    icl_examples: ablation.TaskBatch | None = None,
) -> dict[str, Any]:
    """Head scores on repeated random tokens, copying scores, ICL score and logit-lens losses.

    The ICL score is measured on `icl_examples` (one example per row) when given, else on the streams.
    """
    V, n_ctx = model.cfg.vocab_size, model.cfg.n_ctx
    span = min(cfg.head_span, (n_ctx - 1) // 2)
    g = torch.Generator().manual_seed(cfg.seed)
    low = cfg.n_special if cfg.n_special + 1 < V else 0
    toks = attention.repeated_random_tokens(V, span, cfg.head_batch, bos_id, g, low=low)
    scores = attention.head_scores(model, toks, span)
    ids = torch.arange(low, V)
    scores["copying"] = attention.copying_scores(model, ids)
    ind = scores["induction"]
    best = np.unravel_index(int(np.argmax(ind)), ind.shape)
    out: dict[str, Any] = {
        "span": span,
        **scores,
        "max_induction": float(ind.max()),
        "max_induction_head": [int(best[0]), int(best[1])],
        "n_induction_heads": int((ind > cfg.induction_threshold).sum()),
        "max_previous_token": float(scores["previous_token"].max()),
        "repeated_tokens_icl": attention.in_context_learning_score(model, toks, 0.25, 0.95),
        "icl": (
            attention.example_icl_score(model, icl_examples.tokens, icl_examples.valid.sum(1))
            if icl_examples is not None
            else attention.in_context_learning_score(model, streams)
        ),
        "logit_lens_loss": attention.logit_lens_losses(model, streams),
        "attention_entropy": attention.entropy_per_head(attention.attention_patterns(model, toks)),
    }
    return out


def measure_criticality(
    mlp_calib: list[np.ndarray], mlp: list[np.ndarray], shape: tuple[int, int], cfg: MechanismsConfig
) -> dict[str, Any]:
    """Avalanches of MLP events (token position = time) against subsample size, null, components, m."""
    S, T = shape
    rng = np.random.default_rng(cfg.seed)
    per_layer = []
    thresholds = []
    for calib, acts in zip(mlp_calib, mlp, strict=True):
        mean, std = criticality.zscore_params(calib)
        z = (acts.reshape(S, T, -1) - mean) / std  # (S, T, d_mlp)
        thr = criticality.rate_matched_threshold(z, cfg.event_rate) if cfg.event_rate else cfg.event_threshold
        thresholds.append(thr)
        per_layer.append(z > thr)
    events = np.concatenate(per_layer, axis=-1)  # (S, T, L·d_mlp): every neuron of every layer
    sizes = [n for n in cfg.subsample if n <= events.shape[-1]]
    scan = criticality.neuron_avalanche_scan(events, sizes, rng, cfg.n_draws, cfg.bin_size)
    null = criticality.neuron_avalanche_scan(
        criticality.circular_shift_null(events, rng), sizes, rng, cfg.n_draws, cfg.bin_size
    )
    # Token × layer connected components with a few neurons per layer (else every cell is active).
    L = len(per_layer)
    k = max(1, cfg.component_neurons // L)
    grid = np.stack([criticality.subsampled_counts(ev, k, rng) for ev in per_layer], axis=-1)  # (S, T, L)
    cs, cd = criticality.component_avalanches(grid)
    comp = criticality.avalanche_fits(cs, cd, None) | {
        "neurons_per_layer": k,
        "occupancy": float((grid > 0).mean()),
    }
    # Branching ratio of the population of the middle subsample size.
    n_br = sizes[len(sizes) // 2] if sizes else events.shape[-1]
    counts = criticality.subsampled_counts(events, n_br, rng)
    br = criticality.branching_ratio(counts, numboot=cfg.branching_numboot) | {"n_neurons": n_br}
    return {
        "event_rate": float(events.mean()),
        "thresholds": thresholds,
        "subsample": scan,
        "null": null,
        "components": comp,
        "branching": br,
        "consistent_any_n": any(r.get("consistent") for r in scan),
    }


def measure_jacobian(model: Any, streams: torch.Tensor, cfg: MechanismsConfig) -> dict[str, Any]:
    """χ, Lyapunov exponent and APJN of the blocks along depth, at the embeddings of a few streams."""
    x_tok = streams[: cfg.jacobian_streams]
    with torch.no_grad():
        _, cache = model.run_with_cache(x_tok, names_filter="blocks.0.hook_resid_pre")
    x0 = cache["blocks.0.hook_resid_pre"]  # (B, T, D)
    g = torch.Generator().manual_seed(cfg.seed)
    # Forward-mode AD has no rule for the fused CPU attention kernel; a listener on hook_pattern switches the
    # blocks to their explicit softmax path (same function, same causal mask) without changing any weights.
    with model.hooks([(lambda n: n.endswith("attn.hook_pattern"), lambda x, hook: None)]):
        res = criticality.jacobian_spectrum(
            list(model.blocks), x0, cfg.jacobian_probes, residual=True, generator=g
        )
    chi = res.chi
    return {
        "chi": chi,
        "chi_branch": res.chi_branch,
        "chi_layer0": chi[0],
        "chi_mean_rest": float(np.mean(chi[1:])) if len(chi) > 1 else None,
        "chi_branch_layer0": res.chi_branch[0] if res.chi_branch else None,
        "chi_branch_mean_rest": float(np.mean(res.chi_branch[1:]))
        if res.chi_branch and len(chi) > 1
        else None,
        "lyapunov": res.lyapunov,
        "log_growth": res.log_growth,
        "log_apjn": res.log_apjn,
        "apjn_growth": criticality.apjn_growth(res.log_apjn),
    }


def measure_ablation(model: Any, tokenizer: Any, task: Any, cfg: MechanismsConfig) -> dict[str, Any]:
    """Per-head and per-MLP drops of the task metric, and head/neuron pruning curves."""
    exs = _examples(task, "test", cfg.n_examples, cfg.seed)
    batch = ablation.encode_examples(tokenizer, exs, model.cfg.n_ctx)
    score = (
        ablation.answer_logprob(batch)
        if cfg.ablation_metric == "answer_logprob"
        else ablation.exact_match(batch)
    )
    kind = cfg.ablation_kind
    res = ablation.ablate_components(model, batch.tokens, score, kind, batch.valid)
    res["metric"] = cfg.ablation_metric
    res["n_examples"] = int(batch.tokens.shape[0])
    if cfg.pruning:
        res["head_pruning"] = ablation.head_pruning_curve(
            model, batch.tokens, score, res["heads"], cfg.pruning_fractions, kind, batch.valid
        )
        # Neuron importance needs a differentiable score: answer log-probability stands in for exact match.
        imp = ablation.neuron_importance(
            model, batch.tokens, ablation.answer_logprob(batch), kind, batch.valid
        )
        res["neuron_pruning"] = ablation.neuron_pruning_curve(
            model, batch.tokens, score, imp, cfg.pruning_fractions, kind, batch.valid
        )
    return res


class _Timer:
    """Wall time of each named measurement (the result's `timing_s`)."""

    def __init__(self) -> None:
        self.timing: dict[str, float] = {}

    def __call__(self, name: str, fn: Any, *args: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.timing[name] = time.perf_counter() - t


def _model_info(mc: Any) -> dict[str, Any]:
    return {
        "n_layer": mc.n_layer,
        "n_head": mc.n_head,
        "d_model": mc.d_model,
        "d_mlp": None if mc.attn_only else mc.mlp_width,
        "vocab_size": mc.vocab_size,
        "n_ctx": mc.n_ctx,
        "attn_only": mc.attn_only,
    }


def _measure_streams(
    model: Any, tokenizer: Any, tasks: Sequence[Any], cfg: MechanismsConfig, streams: Any, timed: _Timer
) -> dict[str, Any]:
    """Head scores, neuron statistics, criticality and the Jacobian: the measurements on token streams."""
    mc = model.cfg
    out: dict[str, Any] = {}
    if cfg.heads:
        icl_batch = None
        if cfg.icl_data == "examples" and tasks:
            exs = [e for t in tasks for e in _examples(t, "test", cfg.n_streams, cfg.seed)]
            icl_batch = ablation.encode_examples(tokenizer, exs, mc.n_ctx)
        out["heads"] = timed("heads", measure_heads, model, cfg, streams, tokenizer.bos_id, icl_batch)
    if cfg.neurons or cfg.criticality:
        mlp, resid, ids = neurons.record(model, streams)
        if cfg.neurons:
            out["neurons"] = timed("neurons", neurons.neuron_statistics, mlp, resid, ids)
        if cfg.criticality and mlp:
            low = cfg.n_special if mc.vocab_size > cfg.n_special + 1 else 0
            T = min(cfg.stream_len, mc.n_ctx)
            calib = task_streams(
                tokenizer, tasks, cfg.n_calibration, T, "train", cfg.seed + 1, mc.vocab_size, low
            )
            mlp_calib, _, _ = neurons.record(model, calib)
            out["criticality"] = timed(
                "criticality", measure_criticality, mlp_calib, mlp, tuple(streams.shape), cfg
            )
    if cfg.jacobian:
        out["jacobian"] = timed("jacobian", measure_jacobian, model, streams, cfg)
    return out


def _measure_tasks(
    model: Any, tokenizer: Any, tasks: Sequence[Any], cfg: MechanismsConfig, timed: _Timer
) -> dict[str, Any]:
    """Ablation and attribution: the measurements on task examples."""
    out: dict[str, Any] = {}
    if cfg.ablation and tasks:
        out["ablation"] = {
            t.name: timed(f"ablation.{t.name}", measure_ablation, model, tokenizer, t, cfg) for t in tasks
        }
    if cfg.attribution_examples > 0 and tasks:
        attr = {}
        for t in tasks:
            exs = _examples(t, "test", cfg.attribution_examples, cfg.seed)
            attr[t.name] = [
                {"prompt": e.prompt, "target": e.target}
                | timed(
                    f"attribution.{t.name}",
                    attribution.attribute_example,
                    model,
                    tokenizer,
                    e.prompt,
                    e.target,
                    "integrated_gradients",
                    cfg.attribution_steps,
                )
                for e in exs
            ]
        out["attribution"] = attr
    return out


def measure_checkpoint(
    model: Any, tokenizer: Any, tasks: Sequence[Any], cfg: MechanismsConfig | None = None
) -> dict[str, Any]:
    """All mechanism measurements of one model as a JSON-serialisable dict (schema: docs/mechanisms.md)."""
    cfg = cfg or MechanismsConfig()
    if not hasattr(model, "blocks"):
        return measure_recurrent(model, tokenizer, tasks, cfg)
    was_training = model.training
    model.eval()
    torch.manual_seed(cfg.seed)
    mc = model.cfg
    low = cfg.n_special if mc.vocab_size > cfg.n_special + 1 else 0
    T = min(cfg.stream_len, mc.n_ctx)
    timed = _Timer()
    out: dict[str, Any] = {
        "config": to_dict(cfg),
        "model": _model_info(mc),
        "tasks": [getattr(t, "name", str(t)) for t in tasks],
    }
    try:
        t0 = time.perf_counter()
        streams = task_streams(tokenizer, tasks, cfg.n_streams, T, "test", cfg.seed, mc.vocab_size, low)
        timed.timing["streams"] = time.perf_counter() - t0
        out.update(_measure_streams(model, tokenizer, tasks, cfg, streams, timed))
        out.update(_measure_tasks(model, tokenizer, tasks, cfg, timed))
    finally:
        model.train(was_training)
    out["summary"] = summarise(out)
    out["timing_s"] = timed.timing
    return _jsonable(out)


# Why a recurrent model has no entry for a part (written into its result's `skipped`).
RECURRENT_SKIPS = {
    "heads": "no attention heads: head scores, copying, ICL by heads and the logit lens need a transformer",
    "jacobian": "χ / Lyapunov / APJN are measured along the depth of residual blocks; an LSTM has none",
    "ablation": "ablation removes attention heads and MLPs; an LSTM has neither",
    "attribution": "integrated gradients are implemented for the GPT's embedding hook only",
}


def measure_recurrent(
    model: Any, tokenizer: Any, tasks: Sequence[Any], cfg: MechanismsConfig
) -> dict[str, Any]:
    """Neuron statistics and criticality of an LSTM's (or LSTM-VAE decoder's) hidden states; the
    attention-based parts are skipped with the reason (`RECURRENT_SKIPS`)."""
    from emergence.models.build import arch_of

    was_training = model.training
    model.eval()
    torch.manual_seed(cfg.seed)
    mc = model.cfg
    low = cfg.n_special if mc.vocab_size > cfg.n_special + 1 else 0
    T = min(cfg.stream_len, mc.n_ctx)
    wanted = {"heads": cfg.heads, "jacobian": cfg.jacobian, "ablation": cfg.ablation and bool(tasks)}
    wanted["attribution"] = cfg.attribution_examples > 0 and bool(tasks)
    out: dict[str, Any] = {
        "config": to_dict(cfg),
        "model": {
            "arch": arch_of(model),
            "n_layer": mc.n_layer,
            "d_hidden": mc.d_hidden,
            "d_embed": mc.d_embed,
            "vocab_size": mc.vocab_size,
            "n_ctx": mc.n_ctx,
        },
        "tasks": [getattr(t, "name", str(t)) for t in tasks],
        "skipped": {k: v for k, v in RECURRENT_SKIPS.items() if wanted[k]},
    }
    timing: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        streams = task_streams(tokenizer, tasks, cfg.n_streams, T, "test", cfg.seed, mc.vocab_size, low)
        timing["streams"] = time.perf_counter() - t0
        if cfg.neurons or cfg.criticality:
            hidden, _, ids = neurons.record(model, streams)
            if cfg.neurons:
                t0 = time.perf_counter()
                out["neurons"] = neurons.neuron_statistics(hidden, hidden, ids)
                timing["neurons"] = time.perf_counter() - t0
            if cfg.criticality:
                t0 = time.perf_counter()
                calib = task_streams(
                    tokenizer, tasks, cfg.n_calibration, T, "train", cfg.seed + 1, mc.vocab_size, low
                )
                hidden_calib, _, _ = neurons.record(model, calib)
                out["criticality"] = measure_criticality(hidden_calib, hidden, tuple(streams.shape), cfg)
                timing["criticality"] = time.perf_counter() - t0
    finally:
        model.train(was_training)
    out["summary"] = summarise(out)
    out["timing_s"] = timing
    return _jsonable(out)


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """Headline numbers of a measurement, for plots against scale and training step (null when not measured).

    Avalanche numbers are those of the middle subsample size (`n_ref`), beside the same fit on the null.
    """
    heads, crit, jac = result.get("heads", {}), result.get("criticality", {}), result.get("jacobian", {})
    scan, null = crit.get("subsample", []), crit.get("null", [])
    ref = scan[len(scan) // 2] if scan else {}
    ref_null = next((r for r in null if r["n_neurons"] == ref.get("n_neurons")), {})
    br = crit.get("branching", {})
    return {
        "max_induction": heads.get("max_induction"),
        "max_previous_token": heads.get("max_previous_token"),
        "n_induction_heads": heads.get("n_induction_heads"),
        "icl_score": heads.get("icl", {}).get("score"),
        "n_ref": ref.get("n_neurons"),
        "tau_s": ref.get("size", {}).get("alpha"),
        "tau_t": ref.get("duration", {}).get("alpha"),
        "size_verdict": ref.get("size", {}).get("verdict"),
        "crackling_error": ref.get("crackling", {}).get("relative_error"),
        "null_tau_s": ref_null.get("size", {}).get("alpha"),
        "branching_m": br.get("m"),
        "branching_m_stderr": br.get("m_stderr"),
        "chi_mean_rest": jac.get("chi_mean_rest"),
        "chi_branch_mean_rest": jac.get("chi_branch_mean_rest"),
        "lyapunov": jac.get("lyapunov"),
        "apjn_shape": jac.get("apjn_growth", {}).get("shape"),
    }
