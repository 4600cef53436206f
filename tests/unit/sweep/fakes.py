"""Fake run work for the runner tests: no training, deterministic rows, failures on demand.

Importable by worker processes (the process-pool tests pickle these functions by reference). A member
named `boom*` raises, `nan*` logs a NaN loss; every call appends the run id to `STUDY_DIR/calls.log` so that
tests can tell which runs did work.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from emergence.io import append_jsonl
from emergence.sweep.executors import ProgressFn
from emergence.sweep.runner import RunJob, check_finite_loss, results_frame, write_results
from emergence.sweep.store import RunStatus, write_status


def log_call(job: RunJob, what: str) -> None:
    """Record that a run did `what` (appends are line-atomic)."""
    with open(Path(job.study_dir) / "calls.log", "a", encoding="utf-8") as f:
        f.write(f"{job.spec.run_id} {what} {os.getpid()}\n")


def calls(study_dir: Path) -> list[list[str]]:
    """The calls logged so far."""
    p = Path(study_dir) / "calls.log"
    return [line.split() for line in p.read_text().splitlines()] if p.exists() else []


def fake_work(job: RunJob, status: RunStatus, progress: ProgressFn | None = None) -> None:
    """Pretend to train (a metrics log) and evaluate (three checkpoints' rows)."""
    steps = int(job.spec.run_config["train"]["steps"])
    if not (job.eval_only and status.trained):
        log_call(job, "train")
        if job.spec.member.startswith("boom"):
            raise RuntimeError("the model exploded\nsecond line of detail")
        delay = float(os.environ.get("FAKE_STEP_DELAY", "0"))
        for step in range(steps + 1):
            loss: float = (
                float("nan") if job.spec.member.startswith("nan") and step == steps else 1.0 / (1 + step)
            )
            append_jsonl(job.run_dir / "metrics.jsonl", {"step": step, "loss": loss})
            if progress is not None:
                progress({"run_id": job.spec.run_id, "step": step, "steps": steps, "loss": loss})
            if delay:
                time.sleep(delay)
        check_finite_loss(job.run_dir)
        status.trained = True
        write_status(job.run_dir, status)
    log_call(job, "eval")
    width = int(job.spec.run_config["model"]["d_model"])
    rows: list[dict[str, Any]] = []
    for step in (0, steps // 2, steps):
        for metric in ("exact_match", "token_accuracy"):
            rows.append(
                {
                    "study": job.study,
                    "run_id": job.spec.run_id,
                    "member": job.spec.member,
                    "n_params": width * 100,
                    "n_params_non_embedding": width * 90,
                    "flops": float(step * width),
                    "step": step,
                    "tokens_seen": step * 10,
                    "seed": job.spec.seed,
                    "task": job.tasks[0]["name"],
                    "shots": 0,
                    "metric": metric,
                    "value": min(1.0, width * (step + 1) / 1000.0),
                    "stderr": 0.01,
                    "n": 10,
                }
            )
    write_results(job.run_dir / "results.parquet", results_frame(rows).to_dict("records"))


def crashing_work(job: RunJob, status: RunStatus, progress: ProgressFn | None = None) -> None:
    """Like `fake_work`, but a member named `crash*` takes its whole worker process down (as an OOM kill)."""
    if job.spec.member.startswith("crash"):
        time.sleep(0.3)  # long enough for the other worker to be mid-run when this one dies
        os._exit(137)
    if job.spec.member.startswith("slow"):
        time.sleep(1.0)
    fake_work(job, status, progress)
