"""The evaluator: zero- and few-shot evaluation of one language model on tasks, as long-format result rows.

    for each task:   test items (seeded) ─┐
      for each k:      trials (demonstration sets) ─► shared prefix
        for each trial:  lm.generate(queries, shared_prefix)        ─► exact match, edit distance
                         lm.loglikelihood(query, target | choices)  ─► token accuracy, log-prob, rank, Brier…
      per metric: a (trials × items) matrix ─► mean, bootstrap stderr over items, stderr over trials

One row per (task, shots, metric) with `trial = -1` (the aggregate over trials); `trial_rows=True` adds one
row per trial (`trial = 0, 1, …`); `length_rows=True` adds, for generate tasks, one aggregate row per answer
length in tokens (column `answer_len`; rows without it are the whole-test-set numbers). Choice tasks carry
`n_choices` and, for accuracy-like metrics, `chance` (read by the analysis' normalised score). The study
runner completes rows with study, run_id, member, n_params, step… (DESIGN.md "Result row"). The same test
items are used for every k and trial, so differences between shot counts are paired, not confounded by item
sampling.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from emergence import metric_table
from emergence.errors import UserError
from emergence.evaluate.fewshot import FewShotTrial, PromptFormat, build_trials, context_trials
from emergence.evaluate.lm import LanguageModel, LLResult
from emergence.evaluate.metrics import METRICS, ItemResult, Metric, aggregate

if TYPE_CHECKING:
    import pandas as pd

    from emergence.tasks import Example, Task

log = logging.getLogger(__name__)

AGGREGATE_TRIAL = -1  # `trial` value of the row that aggregates all trials of a (task, shots, metric)


@dataclass(frozen=True)
class EvalConfig:
    """How to evaluate: shot counts, items, trials, prompt format, metrics and statistics."""

    shots: tuple[int, ...] = (0,)  # demonstrations per prompt; each k is evaluated and reported separately
    n_examples: int = 200  # test items per task, the same items for every k and trial
    trials: int = 3  # independent demonstration sets per k > 0 (k = 0 has exactly one)
    seed: int = 0  # test items, demonstration pool, trial streams and bootstrap all derive from it
    template: str = "{prompt}{target}"  # one demonstration; the query is the part before {target}
    delimiter: str | None = None  # after each demonstration; None: the task's own few-shot separator
    metrics: tuple[str, ...] | None = None  # None: the task's own list; else these, where the task kind fits
    bootstrap: int = 1000  # bootstrap resamples for standard errors; 0: analytic s/√n
    batch_size: int = 32  # requests per forward pass (used when this module builds the model adapter)
    max_new_tokens: int | None = None  # generation budget; None: task.max_answer_len + answer_margin
    answer_margin: int = 2  # extra generated tokens beyond the longest answer, so over-long answers show
    demo_pool: int = 512  # train examples the demonstrations are drawn from (whole split if it is smaller)
    overflow: Literal["truncate", "error"] = (
        "truncate"  # prompt too long: drop oldest demonstrations, or raise
    )
    trial_rows: bool = False  # also one row per trial besides the aggregate row
    length_rows: bool = True  # generate tasks: also rows per answer length in tokens (column answer_len)

    def __post_init__(self) -> None:
        if not self.shots:
            raise ValueError("shots: need at least one shot count")
        if any(isinstance(k, bool) or not isinstance(k, int) or k < 0 for k in self.shots):
            raise ValueError(f"shots: must be non-negative integers, got {list(self.shots)}")
        if len(set(self.shots)) != len(self.shots):
            raise ValueError(f"shots: duplicates in {list(self.shots)}")
        for name in ("n_examples", "trials", "batch_size", "demo_pool"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1, got {getattr(self, name)}")
        for name in ("bootstrap", "answer_margin"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be non-negative, got {getattr(self, name)}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens: must be at least 1 or null, got {self.max_new_tokens}")
        if self.overflow not in ("truncate", "error"):
            raise ValueError(f"overflow: must be 'truncate' or 'error', got {self.overflow!r}")
        if self.metrics is not None:
            for name in self.metrics:
                METRICS.get(name)  # unknown name → UserError with did-you-mean
        PromptFormat(self.template, self.delimiter or "\n")  # validates the template


def resolve_metrics(task: Task, names: Sequence[str] | None) -> list[Metric]:
    """The metrics to compute for a task: its own list, or the names given that fit its kind."""
    if names is None:
        chosen = [METRICS.get(n) for n in task.metrics]
        unfit = [m.name for m in chosen if task.kind not in m.kinds]
        if unfit:
            raise UserError(f"task {task.name!r} lists metrics that do not fit a {task.kind} task: {unfit}")
        return chosen
    return [m for m in (METRICS.get(n) for n in names) if task.kind in m.kinds]


def prompt_format(task: Task, cfg: EvalConfig) -> PromptFormat:
    """The prompt format for a task: the config's template, its delimiter (or the task's), the task prefix."""
    delimiter = cfg.delimiter if cfg.delimiter is not None else getattr(task, "fewshot_separator", "\n")
    return PromptFormat(cfg.template, delimiter, getattr(task, "task_prefix", ""))


def score_trial(
    lm: LanguageModel,
    queries: Sequence[Example],
    trial: FewShotTrial,
    fmt: PromptFormat,
    metrics: Sequence[Metric],
    max_new_tokens: int,
) -> dict[str, np.ndarray]:
    """Per-item values (n,) of every metric for one trial: one batched generate and one loglikelihood call."""
    needs = set().union(*(m.needs for m in metrics)) if metrics else set()
    contexts = [fmt.render_query(q) for q in queries]
    generations: list[str | None] = [None] * len(queries)
    if "generation" in needs:
        generations = list(
            lm.generate(contexts, stop=fmt.stop, max_new_tokens=max_new_tokens, shared_prefix=trial.prefix)
        )
    target_lls: list[LLResult | None] = [None] * len(queries)
    choice_lls: list[tuple[LLResult, ...] | None] = [None] * len(queries)
    if "scores" in needs:
        requests: list[tuple[str, str]] = []
        for ctx, q in zip(contexts, queries, strict=True):
            requests.extend((ctx, c) for c in (q.choices if q.choices is not None else (q.target,)))
        results = lm.loglikelihood(requests, shared_prefix=trial.prefix)
        pos = 0
        for i, q in enumerate(queries):
            if q.choices is None:
                target_lls[i] = results[pos]
                pos += 1
            else:
                choice_lls[i] = tuple(results[pos : pos + len(q.choices)])
                target_lls[i] = choice_lls[i][q.choices.index(q.target)]  # type: ignore[index]
                pos += len(q.choices)
    items = [
        ItemResult(q.target, q.choices, generations[i], target_lls[i], choice_lls[i])
        for i, q in enumerate(queries)
    ]
    return {m.name: np.array([m(it) for it in items], dtype=np.float64) for m in metrics}


def _answer_tokens(lm: LanguageModel, queries: Sequence[Example], needs: set[str], max_new: int) -> int:
    """Most tokens any query plus its answer (scored choice or generated budget) can take."""
    worst = 0
    for q in queries:
        answers = q.choices if q.choices is not None else (q.target,)
        answer = max(lm.n_tokens(a) for a in answers) if "scores" in needs else 0
        if "generation" in needs:
            answer = max(answer, max_new)
        worst = max(worst, answer)
    return worst


def _test_items(task: Task, cfg: EvalConfig) -> list[Example]:
    try:
        return task.examples("test", cfg.n_examples, cfg.seed)
    except UserError as too_many:
        # A small task holds fewer test items than asked for: use them all (and say so).
        try:
            items = task.examples("test", None, cfg.seed)
        except UserError:
            raise too_many from None
        log.warning(
            "task %s: the test split holds %d items (< n_examples=%d); using all",
            task.name,
            len(items),
            cfg.n_examples,
        )
        return items


def _train_pool(task: Task, cfg: EvalConfig) -> list[Example]:
    if max(cfg.shots) == 0:
        return []
    try:
        return task.examples("train", cfg.demo_pool, cfg.seed)
    except UserError:
        # The split holds fewer than demo_pool items: take it whole (still a deterministic shuffle).
        return task.examples("train", None, cfg.seed)


def evaluate_task(lm: LanguageModel, task: Task, cfg: EvalConfig) -> list[dict[str, Any]]:
    """Result rows for one task over every shot count in the config."""
    metrics = resolve_metrics(task, cfg.metrics)
    if not metrics:
        log.warning("task %s: none of the requested metrics fits a %s task; skipped", task.name, task.kind)
        return []
    needs: set[str] = set().union(*(m.needs for m in metrics))
    fmt = prompt_format(task, cfg)
    queries = _test_items(task, cfg)
    # A task that writes its own k-shot context (demonstrations from the query's own problem) needs no pool.
    own_context = getattr(task, "in_context_query", None)
    pool = [] if own_context is not None else _train_pool(task, cfg)
    max_new = cfg.max_new_tokens or task.max_answer_len + cfg.answer_margin
    longest_query = max(lm.n_tokens(fmt.render_query(q)) for q in queries)
    need = longest_query + _answer_tokens(lm, queries, needs, max_new)
    lengths = (
        np.array([lm.n_tokens(q.target) for q in queries])
        if cfg.length_rows and task.kind == "generate"
        else None
    )

    rows: list[dict[str, Any]] = []
    for k in cfg.shots:
        if own_context is not None:
            answer = _answer_tokens(lm, queries, needs, max_new)
            pairs = context_trials(task.name, own_context, queries, k, cfg.trials, cfg.seed, lm, answer)
            trials, trial_queries = [p[0] for p in pairs], [p[1] for p in pairs]
        else:
            trials = build_trials(
                task.name, pool, queries, k, cfg.trials, cfg.seed, fmt, lm, need, cfg.overflow
            )
            trial_queries = [list(queries)] * len(trials)
        n_demos = float(np.mean([t.n_demos for t in trials]))
        if n_demos < k:
            log.warning(
                "task %s, %d-shot: prompts truncated to %.1f demonstrations on average", task.name, k, n_demos
            )
        per_trial = [
            score_trial(lm, tq, t, fmt, metrics, max_new) for t, tq in zip(trials, trial_queries, strict=True)
        ]
        for m in metrics:
            matrix = np.stack([values[m.name] for values in per_trial])  # (trials, items)
            base = {"task": task.name, "shots": k, "metric": m.name, **_chance_columns(queries, m.name)}
            rows.extend(_rows(base, matrix, trials, cfg, cfg.trial_rows))
            if lengths is not None:
                # Per-answer-length rows (Schaeffer et al. 2023: exact match ≈ p^L), marked by answer_len.
                for length in sorted(set(lengths.tolist())):
                    sub = matrix[:, lengths == length]  # (trials, items of this length)
                    rows.extend(_rows({**base, "answer_len": int(length)}, sub, trials, cfg, False))
        log.info(
            "task %s, %d-shot: %s",
            task.name,
            k,
            ", ".join(
                f"{r['metric']}={r['value']:.3g}"
                for r in rows
                if r["shots"] == k and r["task"] == task.name and r["trial"] < 0 and "answer_len" not in r
            ),
        )
    return rows


def _rows(
    base: dict[str, Any], matrix: np.ndarray, trials: Sequence[FewShotTrial], cfg: EvalConfig, per_trial: bool
) -> list[dict[str, Any]]:
    """The aggregate row of a (trials, items) matrix, and optionally one row per trial."""
    agg = aggregate(matrix, cfg.bootstrap, cfg.seed)
    out = [
        {
            **base,
            "trial": AGGREGATE_TRIAL,
            "value": agg.value,
            "stderr": agg.stderr,
            "n": agg.n,
            "n_trials": agg.n_trials,
            "stderr_items": agg.stderr_items,
            "stderr_trials": agg.stderr_trials,
            "n_demos": float(np.mean([t.n_demos for t in trials])),
        }
    ]
    if per_trial:
        for t, value, se in zip(trials, agg.trial_values, agg.trial_stderrs, strict=True):
            out.append(
                {
                    **base,
                    "trial": t.trial,
                    "value": value,
                    "stderr": se,
                    "n": agg.n,
                    "n_trials": 1,
                    "stderr_items": se,
                    "stderr_trials": math.nan,
                    "n_demos": float(t.n_demos),
                }
            )
    return out


def _chance_columns(queries: Sequence[Example], metric: str) -> dict[str, Any]:
    """`n_choices` (when constant) and `chance` for choice tasks, read by the analysis' normalised score."""
    counts = [len(q.choices) for q in queries if q.choices is not None]
    if not counts:
        return {}
    out: dict[str, Any] = {}
    if len(set(counts)) == 1:
        out["n_choices"] = counts[0]
    spec = metric_table.spec_of(metric)
    if spec is not None and spec.uniform_choice:  # chance = the mean of 1/#choices (metric_table.py)
        out["chance"] = float(np.mean([1.0 / c for c in counts]))
    return out


def _as_task(task: Task | str) -> Task:
    if isinstance(task, str):
        from emergence.tasks import make_task

        return make_task(task)
    return task


def evaluate_model(lm: LanguageModel, tasks: Sequence[Task | str], cfg: EvalConfig) -> list[dict[str, Any]]:
    """Partial result rows (task, shots, trial, metric, value, stderr, n, …) for every task and shot count."""
    rows: list[dict[str, Any]] = []
    for task in tasks:
        rows.extend(evaluate_task(lm, _as_task(task), cfg))
    return rows


def language_model_for(
    model: Any, tokenizer: Any, *, batch_size: int = 32, device: str = "cpu"
) -> LanguageModel:
    """The `LanguageModel` adapter of one of our models: GPT → GPTLanguageModel, LSTM → LSTMLanguageModel,
    LSTM-VAE → LSTMLanguageModel over its decoder at z = 0 (`VAEDecoderLM`; docs/objectives.md says why)."""
    from emergence.evaluate.lm import GPTLanguageModel
    from emergence.evaluate.recurrent_lm import LSTMLanguageModel
    from emergence.models.gpt import GPT
    from emergence.models.recurrent import LSTMVAE, VAEDecoderLM

    if isinstance(model, GPT):
        return GPTLanguageModel(model, tokenizer, batch_size=batch_size, device=device)
    if isinstance(model, LSTMVAE):
        model = VAEDecoderLM(model)
    return LSTMLanguageModel(model, tokenizer, batch_size=batch_size, device=device)


def evaluate_checkpoint(
    checkpoint_dir: str | Path, tasks: Sequence[Task | str], cfg: EvalConfig, device: str = "cpu"
) -> list[dict[str, Any]]:
    """Load a checkpoint (any architecture) and evaluate it; rows also carry its step and tokens_seen."""
    from emergence.train.checkpoint import load_checkpoint

    model, tokenizer, manifest = load_checkpoint(checkpoint_dir)
    lm = language_model_for(model, tokenizer, batch_size=cfg.batch_size, device=device)
    rows = evaluate_model(lm, tasks, cfg)
    meta = manifest if isinstance(manifest, dict) else getattr(manifest, "__dict__", {})
    for row in rows:
        for key in ("step", "tokens_seen"):
            if key in meta:
                row.setdefault(key, meta[key])
    return rows


def combine_seeds(
    rows: pd.DataFrame, by: Sequence[str] = ("member", "step", "task", "shots", "metric")
) -> pd.DataFrame:
    """Mean over training seeds per group, with stderr across seeds and the pooled within-seed stderr.

    Only aggregate rows (trial = -1) are combined when a `trial` column is present. Columns: the `by` keys,
    value (mean over seeds), stderr (s/√n_seeds over seed values; NaN for one seed), stderr_within
    (√(Σ stderr²)/n_seeds: the item/trial uncertainty of the mean), n_seeds.
    """
    df = rows
    if "trial" in df.columns:
        df = df[df["trial"] == AGGREGATE_TRIAL]
    keys = [k for k in by if k in df.columns]
    if not keys:
        raise UserError(f"combine_seeds: none of the grouping columns {list(by)} is in the rows")

    def _one(g: pd.DataFrame) -> pd.Series:
        import pandas as pd

        n = len(g)
        v = g["value"].to_numpy(dtype=np.float64)
        se = g["stderr"].to_numpy(dtype=np.float64) if "stderr" in g else np.full(n, np.nan)
        return pd.Series(
            {
                "value": float(v.mean()),
                "stderr": float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
                "stderr_within": float(math.sqrt(np.nansum(se**2)) / n),
                "n_seeds": n,
            }
        )

    return (
        df.groupby(keys, dropna=False)[[c for c in ("value", "stderr") if c in df.columns]]
        .apply(_one)
        .reset_index()
    )
