"""Benchmark: few-shot evaluation throughput with and without the shared-prefix key/value cache.

    .venv/bin/python bench/eval_throughput.py                # k = 0, 4, 16 on 3-digit addition, CPU
    .venv/bin/python bench/eval_throughput.py --threads 2 --examples 256

For each k, one demonstration set is drawn from the task's train split and the same test queries are run
through `GPTLanguageModel` twice in the same process: `use_prefix_cache=True` (the k demonstrations are
encoded once and their K/V cache is expanded over every batch) and `use_prefix_cache=False` (every row carries
the whole prefix). Both teacher-forced scoring (`loglikelihood`, one request per query) and greedy generation
(`generate`, stop at the delimiter) are timed; the table gives examples/s and the cached/uncached ratio, and
checks that both paths agree (max |Δ log-prob|, identical generations).

The model is a small GPT of a trained shape (random weights: throughput does not depend on them).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from emergence.evaluate.fewshot import PromptFormat, build_trials
from emergence.evaluate.lm import GPTLanguageModel
from emergence.models.gpt import GPT, GPTConfig
from emergence.tasks import make_task
from emergence.tokenizers import CharTokenizer


def best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Minimum wall time over `repeats` runs after one warm-up (the least noisy on a shared machine)."""
    out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print a markdown table, return the measurements."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shots", type=int, nargs="+", default=[0, 4, 16])
    ap.add_argument("--examples", type=int, default=128, help="test queries per measurement")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-ctx", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    task = make_task("addition", digits=3)
    tok = CharTokenizer.for_tasks([task])
    cfg = GPTConfig(
        vocab_size=tok.vocab_size,
        n_layer=args.n_layer,
        n_head=args.n_head,
        d_model=args.d_model,
        n_ctx=args.n_ctx,
    )
    model = GPT(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    fmt = PromptFormat(delimiter=task.fewshot_separator)
    queries = task.examples("test", args.examples, 0)
    pool = task.examples("train", 512, 0)
    contexts = [fmt.render_query(q) for q in queries]
    requests = [(c, q.target) for c, q in zip(contexts, queries, strict=True)]
    max_new = task.max_answer_len + 2
    lms = {
        mode: GPTLanguageModel(
            model, tok, batch_size=args.batch_size, device=args.device, use_prefix_cache=mode
        )
        for mode in (True, False)
    }

    results = []
    for k in args.shots:
        trial = build_trials(task.name, pool, queries, k, 1, 0, fmt)[0]
        prefix_tokens = len(tok.encode(trial.prefix)) + 1  # + <bos>
        row: dict[str, Any] = {"k": k, "prefix_tokens": prefix_tokens}
        scored, generated = {}, {}
        for cached, lm in lms.items():
            name = "cached" if cached else "uncached"
            prefix = trial.prefix
            t_ll, scored[cached] = best_time(
                lambda lm=lm, prefix=prefix: lm.loglikelihood(requests, shared_prefix=prefix), args.repeats
            )
            t_gen, generated[cached] = best_time(
                lambda lm=lm, prefix=prefix: lm.generate(
                    contexts, stop=fmt.stop, max_new_tokens=max_new, shared_prefix=prefix
                ),
                args.repeats,
            )
            row[f"ll_{name}"] = len(requests) / t_ll
            row[f"gen_{name}"] = len(contexts) / t_gen
        row["ll_ratio"] = row["ll_cached"] / row["ll_uncached"]
        row["gen_ratio"] = row["gen_cached"] / row["gen_uncached"]
        row["max_abs_dlogprob"] = max(
            max(abs(a - b) for a, b in zip(x.token_logprobs, y.token_logprobs, strict=True))
            for x, y in zip(scored[True], scored[False], strict=True)
        )
        row["same_generations"] = generated[True] == generated[False]
        results.append(row)

    header = (
        f"eval throughput, examples/s — 3-digit addition, {args.examples} queries, GPT L={args.n_layer} "
        f"D={args.d_model} H={args.n_head} n_ctx={args.n_ctx} ({n_params / 1e6:.2f}M params), "
        f"batch {args.batch_size}, {args.threads} thread(s), torch {torch.__version__}, {platform.machine()}"
    )
    print(header)
    print()
    print(
        "| k | prefix tokens | loglikelihood cached | uncached | ratio | generate cached | uncached | ratio "
        "| max abs Δ log-prob | same generations |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['k']} | {r['prefix_tokens']} | {r['ll_cached']:.0f} | {r['ll_uncached']:.0f} "
            f"| {r['ll_ratio']:.2f}× | {r['gen_cached']:.0f} | {r['gen_uncached']:.0f} "
            f"| {r['gen_ratio']:.2f}× | {r['max_abs_dlogprob']:.1e} | {r['same_generations']} |"
        )
    out = {"header": header, "argv": sys.argv[1:] if argv is None else argv, "results": results}
    if args.json:
        from emergence.io import write_json

        write_json(args.json, out)
    ratios = [r["ll_ratio"] for r in results if r["k"] == max(args.shots)]
    if ratios:
        print(f"\nmedian loglikelihood ratio at k={max(args.shots)}: {statistics.median(ratios):.2f}×")
    return out


if __name__ == "__main__":
    main()
