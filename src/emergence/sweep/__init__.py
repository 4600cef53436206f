"""Studies: a family × seeds × tasks plan, executed run by run, collected, analysed and reported.

    study = load_study("studies/my.yaml", ["budget.steps=300"])
    outcome = run_study(study)                  # runs/<name>/: results.parquet, analysis.json, report.html

See docs/studies.md for the YAML reference, the run directory and the resume semantics.
"""

from __future__ import annotations

from emergence.sweep.config import StudyConfig, load_study, parse_study, validate_study
from emergence.sweep.executors import EXECUTORS, Executor, LocalExecutor, make_executor
from emergence.sweep.plan import RunSpec, plan_study, run_id_of
from emergence.sweep.runner import (
    RunJob,
    StudyOutcome,
    evaluate_study,
    execute_run,
    run_study,
    run_study_spec,
)
from emergence.sweep.store import RunStatus, read_status

__all__ = [
    "EXECUTORS",
    "Executor",
    "LocalExecutor",
    "RunJob",
    "RunSpec",
    "RunStatus",
    "StudyConfig",
    "StudyOutcome",
    "evaluate_study",
    "execute_run",
    "load_study",
    "make_executor",
    "parse_study",
    "plan_study",
    "read_status",
    "run_id_of",
    "run_study",
    "run_study_spec",
    "validate_study",
]
