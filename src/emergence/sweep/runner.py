"""The study runner: plan → execute runs (train → evaluate every checkpoint) → collect → analyse → report.

    run_study(study, out_dir)
      ├─ plan_study: members × seeds → RunSpec (run id = hash of the resolved run config)
      ├─ skip runs whose status is done (and whose evaluation settings match), resume the rest
      ├─ executor.run(execute_run, jobs)           one job per run, failures isolated per run
      │     execute_run: running → work (train_run, evaluate checkpoints, results.parquet) → done|failed
      │                  (a family.hf entry: load the local model, evaluate it, results.parquet)
      ├─ collect: concatenate runs/*/results.parquet in plan order → STUDY_DIR/results.parquet (atomic)
      ├─ STUDY_DIR/status.json: every run's state and error (the report lists failures)
      └─ environment.json (at the start), analyze_study, measure_study (mechanisms.enabled), render_report

Re-running is idempotent: a finished study does no training and rewrites identical results. An interrupted
study (Ctrl-C, a killed process) leaves its running run as "running" on disk; the next run resumes it from
`checkpoints/latest`.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from emergence.config import to_dict
from emergence.errors import UserError
from emergence.io import atomic_path, read_json, read_jsonl, write_json, write_yaml
from emergence.sweep.config import StudyConfig
from emergence.sweep.corpus import prepare_study_corpus
from emergence.sweep.design import design_warning
from emergence.sweep.executors import ProgressFn, executor_kwargs, make_executor
from emergence.sweep.plan import RunSpec, arch_column, eval_key_of, plan_study
from emergence.sweep.store import (
    RESULTS_FILE,
    RunStatus,
    mark_done,
    mark_failed,
    mark_running,
    read_status,
    write_status,
)

log = logging.getLogger(__name__)

# Columns every result row carries (architecture.md, "Result row"); the runner fills the run-level ones.
RESULT_COLUMNS = (
    "study",
    "run_id",
    "member",
    "n_params",
    "n_params_non_embedding",
    "flops",
    "step",
    "tokens_seen",
    "seed",
    "task",
    "shots",
    "metric",
    "value",
    "stderr",
    "n",
)
LOCK_FILE = ".lock"
PLAN_FILE = "plan.json"
STUDY_STATUS_FILE = "status.json"
ENVIRONMENT_FILE = "environment.json"


@dataclass(frozen=True)
class RunJob:
    """Everything a worker needs to execute one run (picklable: plain data only)."""

    study: str
    study_dir: str
    spec: RunSpec
    eval: dict[str, Any]
    tasks: tuple[dict[str, Any], ...]  # TaskSpec as plain data
    eval_key: str
    eval_only: bool = False  # trained already; only the evaluation settings changed
    finetune: dict[str, Any] = field(default_factory=dict)  # the study's `finetune:` (sweep.adaptation)
    arch_column: bool = False  # rows carry `arch` (the study has non-GPT members; plan.arch_column)

    @property
    def run_dir(self) -> Path:
        """This run's directory."""
        return Path(self.study_dir) / "runs" / self.spec.run_id

    def started_marker(self) -> bool:
        """Whether a worker has picked this run up (status running): the executor's crash triage asks."""
        return read_status(self.run_dir, self.spec.run_id).state == "running"


# work(job, status, progress): train and/or evaluate one run and write its results.parquet; raises on failure.
RunWork = Callable[[RunJob, RunStatus, ProgressFn | None], None]


class RunFailed(RuntimeError):
    """A run that finished without an exception but cannot count (e.g. a NaN loss)."""


@dataclass
class StudyOutcome:
    """What `run_study` did."""

    study_dir: Path
    total: int
    done: int
    failed: int
    skipped: int  # done before this invocation
    ran: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # run_id → one-line error
    wall_s: float = 0.0
    report: Path | None = None
    # Seconds per phase: runs, collect, analysis, report.
    timings: dict[str, float] = field(default_factory=dict)


# -- one run -------------------------------------------------------------------------------------------------


def execute_run(
    job: RunJob, progress: ProgressFn | None = None, work: RunWork | None = None
) -> dict[str, Any]:
    """Run one job with failure isolation: any exception becomes a failed status, never a crashed study."""
    work = work or train_and_evaluate
    run_dir = job.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    status = read_status(run_dir, job.spec.run_id)
    status.member, status.seed = job.spec.member, job.spec.seed
    status = mark_running(run_dir, status)
    cpu0 = time.process_time()
    try:
        work(job, status, progress)
        if not (run_dir / RESULTS_FILE).exists():
            raise RunFailed(f"the run wrote no {RESULTS_FILE}")
    except KeyboardInterrupt:
        raise  # leave the run "running" on disk: the next invocation resumes it
    except Exception as e:
        status = read_status(run_dir, job.spec.run_id) if status_path_exists(run_dir) else status
        status.cpu_s = round(time.process_time() - cpu0, 3)
        mark_failed(run_dir, status, e)
        return {"run_id": job.spec.run_id, "state": "failed", "error": status.error}
    status = read_status(run_dir, job.spec.run_id)
    status.trained = True
    status.eval_key = job.eval_key
    status.cpu_s = round(time.process_time() - cpu0, 3)
    mark_done(run_dir, status)
    return {"run_id": job.spec.run_id, "state": "done", "error": None}


def status_path_exists(run_dir: Path) -> bool:
    """Whether a run has a status file yet."""
    return (Path(run_dir) / "status.json").exists()


def train_and_evaluate(job: RunJob, status: RunStatus, progress: ProgressFn | None = None) -> None:
    """The real work of a run: train (resuming from `latest`), evaluate every checkpoint, write results."""
    from emergence.train import train_run
    from emergence.train.config import run_config_from_dict

    run_dir = job.run_dir
    if job.spec.is_hf:  # a local Hugging Face model: evaluation only, nothing to train
        if progress is not None:
            progress({"run_id": job.spec.run_id, "phase": "evaluating"})
        write_results(run_dir / RESULTS_FILE, evaluate_hf_run(job))
        return
    if not (job.eval_only and status.trained):
        from emergence.sweep.corpus import study_corpus_dir

        cfg = run_config_from_dict(job.spec.run_config)
        # The study's display polls metrics.jsonl; a second live display from the trainer would fight it.
        train_run(cfg, run_dir, progress=False, corpus_dir=study_corpus_dir(job.study_dir))
        check_finite_loss(run_dir)
        status.trained = True
        write_status(run_dir, status)
    if progress is not None:
        progress({"run_id": job.spec.run_id, "phase": "evaluating"})
    from emergence.sweep.adaptation import adaptation_rows

    rows = adaptation_rows(job, evaluate_run(job))
    write_results(run_dir / RESULTS_FILE, rows)


def check_finite_loss(run_dir: Path) -> None:
    """Raise RunFailed if the training log holds a NaN or infinite loss (a diverged run must not count)."""
    for rec in read_jsonl(Path(run_dir) / "metrics.jsonl"):
        for key in ("loss", "train_loss"):
            value = rec.get(key)
            if key in rec and (value is None or (isinstance(value, float) and not math.isfinite(value))):
                raise RunFailed(f"non-finite {key} at step {rec.get('step')}")


def evaluate_run(job: RunJob) -> list[dict[str, Any]]:
    """Evaluate every saved checkpoint of a run (any architecture); rows completed with the run's columns.

    Rows get `arch` when the job asks for it (a study with non-GPT members) and `held_out` (whether the task
    was kept out of training) when any of the study's tasks is held out.
    """
    from emergence.evaluate import EvalConfig, evaluate_model, language_model_for
    from emergence.models.build import arch_of, count_params, flops_per_token
    from emergence.sweep.corpus import HeldOutCorpus, has_corpus, study_corpus_dir
    from emergence.tasks import make_task
    from emergence.train.checkpoint import list_checkpoints, load_checkpoint

    eval_cfg = _from_dict(EvalConfig, job.eval, "eval")
    on_corpus = has_corpus(job.spec.run_config["data"])
    corpus_eval: HeldOutCorpus | None = None
    tasks = [make_task(t["name"], **t.get("options", {})) for t in job.tasks]
    held_out = [bool(t.get("held_out", False)) for t in job.tasks]
    mark_held_out = any(held_out)
    checkpoints = list_checkpoints(job.run_dir)
    if not checkpoints:
        raise RunFailed("training saved no checkpoints")
    rows: list[dict[str, Any]] = []
    seq_len: int | None = None
    for step, path in checkpoints:
        model, tokenizer, manifest = load_checkpoint(path)
        cfg = model.cfg
        if not getattr(cfg, "causal", True):  # an encoder: evaluated by fine-tuning, not the LM evaluator
            continue
        if seq_len is None:
            # A corpus run trains on full windows of n_ctx tokens; a task run on its trained tasks' examples
            # (held-out tasks never reach the trainer).
            trained = [t for t, h in zip(tasks, held_out, strict=True) if not h]
            seq_len = cfg.n_ctx if on_corpus else mean_sequence_length(trained, tokenizer, cfg.n_ctx)
        if on_corpus and corpus_eval is None:
            corpus_eval = HeldOutCorpus(
                job.spec.run_config, tokenizer, cfg.n_ctx, study_corpus_dir(job.study_dir)
            )
        n_params = int(count_params(cfg))
        n_non_emb = int(count_params(cfg, non_embedding=True))
        tokens_seen = int(manifest.get("tokens_seen", 0))
        # FLOPs per token with the attention term at the sequences' real length, not the context size.
        per_token = float(flops_per_token(cfg, seq_len=seq_len))
        lm = language_model_for(model, tokenizer, batch_size=eval_cfg.batch_size)
        run_cols: dict[str, Any] = {
            "study": job.study,
            "run_id": job.spec.run_id,
            "member": job.spec.member,
            "n_params": n_params,
            "n_params_non_embedding": n_non_emb,
            "flops": per_token * tokens_seen,
            "step": int(manifest.get("step", step)),
            "tokens_seen": tokens_seen,
            "seed": job.spec.seed,
        }
        run_cols.update(_budget_column(job.spec))
        if corpus_eval is not None:  # held-out corpus loss (sweep/corpus.py)
            rows += [{**run_cols, **row} for row in corpus_eval.rows(model, eval_cfg.batch_size)]
        for task, out in zip(tasks, held_out, strict=True):
            extra: dict[str, Any] = {"arch": arch_of(model)} if job.arch_column else {}
            if mark_held_out:
                extra["held_out"] = out
            for row in evaluate_model(lm, [task], eval_cfg):
                rows.append({**run_cols, **row, **extra})
    return rows


def _budget_column(spec: RunSpec) -> dict[str, float]:
    """`budget_multiplier` when the study varies data size (the analysis splits curves by it)."""
    return {} if spec.budget_multiplier is None else {"budget_multiplier": spec.budget_multiplier}


def evaluate_hf_run(job: RunJob) -> list[dict[str, Any]]:
    """Evaluate one local Hugging Face model (one `family.hf` entry) on the study's tasks, offline."""
    from emergence.evaluate import EvalConfig, evaluate_model
    from emergence.evaluate.hf_lm import HFLanguageModel
    from emergence.models.hf import load_hf_causal_lm
    from emergence.sweep.plan import HF_SECTION, hf_curve_id
    from emergence.tasks import make_task

    entry = job.spec.run_config[HF_SECTION]
    eval_cfg = _from_dict(EvalConfig, job.eval, "eval")
    tasks = [make_task(t["name"], **t.get("options", {})) for t in job.tasks]
    where = {"revision": entry.get("revision"), "subfolder": entry.get("subfolder")}
    if entry.get("cache_dir"):
        # A repository in a local cache is never one of our exports, so no <bos> is prepended.
        model, tokenizer = load_hf_causal_lm(entry["path"], cache_dir=entry["cache_dir"], **where)
        lm = HFLanguageModel(model, tokenizer, batch_size=eval_cfg.batch_size, add_bos=False)
    else:
        lm = HFLanguageModel.from_pretrained(entry["path"], batch_size=eval_cfg.batch_size, **where)
    n_params = int(entry.get("n_params") or lm.model.num_parameters())
    # Non-embedding: less the input embedding matrix (Kaplan et al. 2020 count N without embeddings).
    n_non_emb = n_params - int(lm.model.get_input_embeddings().weight.numel())
    tokens_seen = entry.get("tokens_seen")
    # C ≈ 6·N·D (Kaplan et al. 2020) with N non-embedding, as the 6N term of our own flops_per_token; the
    # attention term needs the pre-training sequence length, which a model directory does not record.
    flops = 6.0 * n_non_emb * float(tokens_seen) if tokens_seen is not None else math.nan
    rows = []
    held_out = {t["name"]: bool(t.get("held_out", False)) for t in job.tasks}
    for row in evaluate_model(lm, tasks, eval_cfg):
        if any(held_out.values()):
            row = {**row, "held_out": held_out[row["task"]]}
        if job.arch_column:  # beside trained GPTs and LSTMs, a local Hugging Face model is its own group
            row = {**row, "arch": "hf"}
        rows.append(
            {
                "study": job.study,
                # One id for all checkpoints of the member: the analysis reads a run_id as one trajectory.
                "run_id": hf_curve_id(job.spec.member),
                "member": job.spec.member,
                "n_params": n_params,
                "n_params_non_embedding": n_non_emb,
                "flops": flops,
                "step": int(entry.get("step") or 0),
                "tokens_seen": float(tokens_seen) if tokens_seen is not None else math.nan,
                "seed": job.spec.seed,
                **row,
            }
        )
    return rows


def mean_sequence_length(tasks: list[Any], tokenizer: Any, n_ctx: int, n: int = 256) -> int:
    """Mean training-sequence length in tokens (<bos> prompt target <eos>) over a sample of train examples."""
    lengths: list[int] = []
    for task in tasks:
        try:
            sample = task.examples("train", n, seed=0)
        except UserError:  # a split smaller than the sample: take all of it
            sample = task.examples("train", None, seed=0)[:n]
        lengths += [len(tokenizer.encode(ex.prompt + ex.target, add_bos=True, add_eos=True)) for ex in sample]
    return max(1, min(n_ctx, round(sum(lengths) / len(lengths)))) if lengths else n_ctx


def _from_dict(cls: type[Any], data: dict[str, Any], where: str) -> Any:
    from emergence.config import from_dict

    return from_dict(cls, data, where=where)


def write_results(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write result rows as parquet atomically (required columns first, extras after)."""
    frame = results_frame(rows)
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def results_frame(rows: list[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Rows → a frame with the required columns first, in the contract's order."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    for col in RESULT_COLUMNS:
        if col not in frame.columns:
            frame[col] = pd.Series(dtype="float64")
    extras = [c for c in frame.columns if c not in RESULT_COLUMNS]
    return frame[list(RESULT_COLUMNS) + extras].reset_index(drop=True)


# -- the study -----------------------------------------------------------------------------------------------


def study_dir_for(study: StudyConfig, out: str | Path | None = None) -> Path:
    """Where a study writes: `out` if given, else runs/<study name>."""
    return Path(out) if out is not None else Path("runs") / study.name


def make_jobs(study: StudyConfig, study_dir: Path, specs: list[RunSpec]) -> list[RunJob]:
    """One job per planned run."""
    eval_key = eval_key_of(study)
    tasks = tuple(to_dict(t) for t in study.tasks)
    with_arch = arch_column(study)
    return [
        RunJob(
            study=study.name,
            # Absolute: a cluster worker (Ray) does not share this process's working directory.
            study_dir=str(Path(study_dir).resolve()),
            spec=spec,
            eval=dict(study.eval),
            tasks=tasks,
            eval_key=eval_key,
            finetune=dict(study.finetune),
            arch_column=with_arch,
        )
        for spec in specs
    ]


def run_study(
    study: StudyConfig,
    out: str | Path | None = None,
    *,
    work: RunWork | None = None,
    retry_failed: bool = False,
    analyze: bool = True,
    progress: bool = True,
    on_event: ProgressFn | None = None,
) -> StudyOutcome:
    """Run (or resume) a whole study and return what happened; see the module docstring."""
    t0 = time.perf_counter()
    study_dir = study_dir_for(study, out)
    specs = plan_study(study)
    warning = design_warning(study, specs)
    if warning:
        log.warning(warning)
    study_dir.mkdir(parents=True, exist_ok=True)
    with study_lock(study_dir):
        write_yaml(study_dir / "study.yaml", to_dict(study))
        write_environment(study_dir)
        write_json(study_dir / PLAN_FILE, [_plan_entry(s) for s in specs])
        prepare_study_corpus(study.data, study_dir)  # once, before workers read it
        jobs = make_jobs(study, study_dir, specs)
        todo, skipped = select_jobs(jobs, retry_failed=retry_failed)
        outcome = StudyOutcome(study_dir=study_dir, total=len(jobs), done=0, failed=0, skipped=len(skipped))
        _execute(study, todo, skipped, outcome, work=work, progress=progress, on_event=on_event)
        _finish_study(study, study_dir, jobs, outcome, analyze=analyze, progress=progress)
    outcome.wall_s = time.perf_counter() - t0
    return outcome


def _execute(
    study: StudyConfig,
    todo: list[RunJob],
    skipped: list[RunJob],
    outcome: StudyOutcome,
    *,
    work: RunWork | None,
    progress: bool,
    on_event: ProgressFn | None,
) -> None:
    """Run the jobs on the study's executor with a live display; fills `outcome.ran`/`failures`."""
    from emergence.sweep.progress import StudyProgress

    ex = study.executor
    executor = make_executor(
        ex.kind, **executor_kwargs(ex.kind, ex.workers, ex.threads_per_worker, ex.options)
    )
    fn = functools.partial(execute_run, work=work) if work is not None else execute_run
    if ex.workers > 1:
        todo = _longest_first(todo)
    t0 = time.perf_counter()
    with StudyProgress(study.name, [*skipped, *todo], skipped, enabled=progress, on_event=on_event) as bar:

        def on_result(job: RunJob, result: Any, error: BaseException | None) -> None:
            if error is not None:  # the worker died, or the run function itself is broken
                status = read_status(job.run_dir, job.spec.run_id)
                mark_failed(job.run_dir, status, error)
                result = {"state": "failed", "error": status.error}
            outcome.ran.append(job.spec.run_id)
            if result.get("state") == "failed":
                outcome.failures[job.spec.run_id] = str(result.get("error"))
            bar.finished(job, result)

        executor.run(fn, todo, on_result, progress=bar.on_progress)
    outcome.timings["runs"] = time.perf_counter() - t0


def _finish_study(
    study: StudyConfig,
    study_dir: Path,
    jobs: list[RunJob],
    outcome: StudyOutcome,
    *,
    analyze: bool,
    progress: bool = False,
) -> None:
    """Summarise statuses, collect results, analyse and render."""
    t0 = time.perf_counter()
    summary = write_study_status(study_dir, jobs)
    outcome.done = summary["counts"].get("done", 0)
    outcome.failed = summary["counts"].get("failed", 0)
    frame = collect_results(study_dir, jobs)
    outcome.timings["collect"] = time.perf_counter() - t0
    if analyze and frame.empty:
        log.warning("no run finished, so there is nothing to analyse; see %s", study_dir / STUDY_STATUS_FILE)
    elif analyze:
        outcome.report = analyze_and_report(study, study_dir, outcome.timings, progress=progress)


def _longest_first(jobs: list[RunJob]) -> list[RunJob]:
    """Jobs with the largest training budget first (then the largest model), so that parallel workers do not
    end on one long run while the other waits: a compute-optimal study's largest member trains ~50x longer
    than its smallest. Results are collected in plan order, so the order of execution changes nothing else.
    """

    def cost(job: RunJob) -> tuple[bool, float, int]:
        train = job.spec.run_config.get("train") or {}
        amount = train.get("steps") or train.get("tokens") or 0
        return (not job.eval_only, float(amount), job.spec.n_params_non_embedding or 0)

    return sorted(jobs, key=cost, reverse=True)


def run_study_spec(
    spec: str | None,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    out: str | Path | None = None,
    workers: int | None = None,
    retry_failed: bool = False,
    progress: bool = True,
) -> StudyOutcome:
    """`emergence run`: resolve a built-in name or YAML path, apply overrides, run the study."""
    from emergence.studies import resolve_study
    from emergence.sweep.config import load_study

    overrides = list(overrides)
    if workers is not None:
        overrides.append(f"executor.workers={workers}")
    study = load_study(resolve_study(spec), overrides)
    return run_study(study, out, retry_failed=retry_failed, progress=progress)


# Sections an `emergence eval` override may touch: anything else would change the runs' ids.
EVAL_OVERRIDABLE = ("eval.", "analysis.", "executor.")


def evaluate_study(
    study_dir: str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    workers: int | None = None,
    progress: bool = True,
) -> StudyOutcome:
    """`emergence eval`: re-evaluate every trained run's saved checkpoints (no training), then re-collect,
    re-analyse and re-render."""
    from emergence.sweep.config import load_study

    t0 = time.perf_counter()
    study_dir = Path(study_dir)
    if not (study_dir / "study.yaml").is_file():
        raise UserError(f"{study_dir}: not a study directory (no study.yaml); run `emergence run` first")
    overrides = list(overrides)
    for item in overrides:
        if not item.startswith(EVAL_OVERRIDABLE):
            raise UserError(
                f"override {item!r}: `emergence eval` only changes {', '.join(EVAL_OVERRIDABLE)} settings "
                "(other changes need new training: use `emergence run`)"
            )
    if workers is not None:
        overrides.append(f"executor.workers={workers}")
    study = load_study(study_dir / "study.yaml", overrides)
    specs = plan_study(study)
    with study_lock(study_dir):
        write_yaml(study_dir / "study.yaml", to_dict(study))
        write_environment(study_dir)
        jobs = make_jobs(study, study_dir, specs)
        todo: list[RunJob] = []
        untrained: list[RunJob] = []
        for job in jobs:
            status = read_status(job.run_dir, job.spec.run_id)
            (todo if status.trained else untrained).append(_replace(job, eval_only=True))
        if not todo:
            raise UserError(f"{study_dir}: no trained runs to evaluate; run `emergence run` first")
        outcome = StudyOutcome(study_dir=study_dir, total=len(jobs), done=0, failed=0, skipped=len(untrained))
        _execute(study, todo, untrained, outcome, work=None, progress=progress, on_event=None)
        _finish_study(study, study_dir, jobs, outcome, analyze=True, progress=progress)
    outcome.wall_s = time.perf_counter() - t0
    return outcome


def write_environment(study_dir: Path) -> None:
    """STUDY_DIR/environment.json: Python, packages and git revision of this invocation (for the report)."""
    from emergence.report.environment import collect_environment

    write_json(Path(study_dir) / ENVIRONMENT_FILE, collect_environment())


def _plan_entry(spec: RunSpec) -> dict[str, Any]:
    return {
        "run_id": spec.run_id,
        "member": spec.member,
        "member_index": spec.member_index,
        "seed": spec.seed,
        "n_params_non_embedding": spec.n_params_non_embedding,
        **_budget_column(spec),
    }


def select_jobs(jobs: list[RunJob], retry_failed: bool = False) -> tuple[list[RunJob], list[RunJob]]:
    """Split jobs into (to run, already done). A done run with other eval settings is re-evaluated only."""
    todo: list[RunJob] = []
    skipped: list[RunJob] = []
    for job in jobs:
        status = read_status(job.run_dir, job.spec.run_id)
        has_results = (job.run_dir / RESULTS_FILE).exists()
        if status.state == "done" and has_results and status.eval_key == job.eval_key:
            skipped.append(job)
        elif status.state == "done" and status.trained:
            todo.append(_replace(job, eval_only=True))
        elif status.state == "failed" and not retry_failed:
            skipped.append(job)
        else:
            # pending, running (interrupted: resumes from checkpoints/latest) or failed with retry_failed.
            todo.append(_replace(job, eval_only=status.trained))
    return todo, skipped


def _replace(job: RunJob, **changes: Any) -> RunJob:
    import dataclasses

    return dataclasses.replace(job, **changes)


def write_study_status(study_dir: Path, jobs: list[RunJob]) -> dict[str, Any]:
    """STUDY_DIR/status.json: each planned run's state and error, for the report and for humans."""
    runs = []
    counts: dict[str, int] = {}
    for job in jobs:
        st = read_status(job.run_dir, job.spec.run_id)
        counts[st.state] = counts.get(st.state, 0) + 1
        runs.append(
            {
                "run_id": job.spec.run_id,
                "member": job.spec.member,
                "seed": job.spec.seed,
                "state": st.state,
                "error": st.error,
                "traceback_file": (
                    f"runs/{job.spec.run_id}/{st.traceback_file}" if st.traceback_file else None
                ),
                "wall_s": st.wall_s,
                "cpu_s": st.cpu_s,
            }
        )
    summary = {"study": jobs[0].study if jobs else "", "counts": counts, "runs": runs}
    write_json(study_dir / STUDY_STATUS_FILE, summary)
    return summary


def collect_results(study_dir: Path, jobs: list[RunJob]) -> pd.DataFrame:
    """Concatenate the done runs' results (plan order) into STUDY_DIR/results.parquet, atomically."""
    frames = []
    for job in jobs:
        path = job.run_dir / RESULTS_FILE
        if read_status(job.run_dir, job.spec.run_id).state == "done" and path.exists():
            frames.append(pd.read_parquet(path))
    frame = results_frame(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame())
    with atomic_path(study_dir / RESULTS_FILE) as tmp:
        frame.to_parquet(tmp, index=False)
    return frame


def analyze_and_report(
    study: StudyConfig, study_dir: Path, timings: dict[str, float] | None = None, *, progress: bool = False
) -> Path | None:
    """Run the emergence analysis, the mechanisms (if enabled), and render the report; returns its path."""
    from emergence.analysis.emergence import AnalysisConfig, analyze_study
    from emergence.report import render_report
    from emergence.sweep.config import mechanisms_section

    timings = timings if timings is not None else {}
    t0 = time.perf_counter()
    analyze_study(study_dir, _from_dict(AnalysisConfig, study.analysis, "analysis"))
    timings["analysis"] = time.perf_counter() - t0
    mech = mechanisms_section(study)
    if mech.enabled:
        from emergence.analysis.study_mechanisms import measure_study

        t0 = time.perf_counter()
        # After the analysis (it rewrites analysis.json; this merges its section in), before the report.
        measure_study(study_dir, mech.config, steps=mech.steps, progress=progress)
        timings["mechanisms"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = render_report(study_dir)
    timings["report"] = time.perf_counter() - t0
    return Path(report) if report is not None else study_dir / "report.html"


# -- the study lock ------------------------------------------------------------------------------------------


class study_lock:
    """Refuse to run one study directory from two processes at once (they would train the same runs)."""

    def __init__(self, study_dir: Path) -> None:
        self.path = Path(study_dir) / LOCK_FILE

    def __enter__(self) -> study_lock:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            owner = _lock_owner(self.path)
            if owner is not None and _alive(owner):
                raise UserError(
                    f"{self.path.parent} is being run by process {owner}; wait or stop it"
                ) from None
            self.path.unlink(missing_ok=True)  # a stale lock from a killed run
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n")
        return self

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)


def _lock_owner(path: Path) -> int | None:
    try:
        return int(path.read_text().strip() or "0") or None
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_study_status(study_dir: Path) -> dict[str, Any]:
    """STUDY_DIR/status.json as written by the runner."""
    return read_json(Path(study_dir) / STUDY_STATUS_FILE)
