"""Executors: the registry, in-process errors, and a worker process that dies mid-run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from emergence.errors import UserError
from emergence.io import read_json
from emergence.sweep.config import parse_study
from emergence.sweep.executors import EXECUTORS, LocalExecutor, make_executor, resolve_threads
from emergence.sweep.runner import run_study

from .conftest import tiny_study_dict
from .fakes import crashing_work


def _square_or_fail(job: int, progress: Any) -> int:
    if job == 3:
        raise ValueError("three")
    return job * job


def test_registry_and_did_you_mean() -> None:
    assert "local" in EXECUTORS
    assert isinstance(make_executor("local", workers=1), LocalExecutor)
    with pytest.raises(UserError, match="did you mean 'local'"):
        make_executor("locl")


def test_unknown_executor_in_study_names_the_field() -> None:
    from emergence.sweep.config import validate_study

    with pytest.raises(UserError, match=r"executor\.kind"):
        validate_study(parse_study(tiny_study_dict(), ["executor.kind=ray_cluster"]))


def test_in_process_reports_results_and_errors_in_order() -> None:
    seen: list[tuple[int, Any, str | None]] = []
    LocalExecutor(workers=1).run(
        _square_or_fail, [1, 2, 3, 4], lambda j, r, e: seen.append((j, r, None if e is None else str(e)))
    )
    assert seen == [(1, 1, None), (2, 4, None), (3, None, "three"), (4, 16, None)]


def test_threads_auto_shares_cores() -> None:
    assert resolve_threads(4, 3) == 3
    assert resolve_threads(1, 0) >= 1


def test_dead_worker_fails_its_run_and_the_rest_complete(tmp_path: Path) -> None:
    data = tiny_study_dict(seeds=[0])
    data["family"]["members"].insert(1, {"name": "crash", "n_layer": 1, "n_head": 1, "d_model": 12})
    study = parse_study(data, ["executor.workers=2"])
    out = run_study(study, tmp_path, work=crashing_work, analyze=False, progress=False)
    assert (out.done, out.failed) == (2, 1)
    runs = {r["member"]: r for r in read_json(tmp_path / "status.json")["runs"]}
    assert runs["crash"]["state"] == "failed" and "worker process died" in runs["crash"]["error"]
    assert set(pd.read_parquet(tmp_path / "results.parquet")["member"]) == {"small", "large"}


def test_a_run_sharing_the_pool_with_a_crash_is_not_blamed(tmp_path: Path) -> None:
    data = tiny_study_dict(seeds=[0])
    data["family"]["members"] = [
        {"name": "slow", "n_layer": 1, "n_head": 1, "d_model": 8},
        {"name": "crash", "n_layer": 1, "n_head": 1, "d_model": 12},
        {"name": "large", "n_layer": 1, "n_head": 2, "d_model": 16},
    ]
    study = parse_study(data, ["executor.workers=2"])
    out = run_study(study, tmp_path, work=crashing_work, analyze=False, progress=False)
    runs = {r["member"]: r for r in read_json(tmp_path / "status.json")["runs"]}
    assert {m: r["state"] for m, r in runs.items()} == {"slow": "done", "crash": "failed", "large": "done"}
    assert (out.done, out.failed) == (2, 1)


def test_ray_kind_resolves_without_importing_ray() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from emergence.sweep.executors import executor_kwargs\n"
        "kw = executor_kwargs('ray', 3, 1, {'num_cpus': 1, 'address': None})\n"
        "assert kw == {'num_cpus': 1, 'address': None}, kw\n"
        "assert 'ray' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_executor_options_are_checked_by_signature() -> None:
    from emergence.errors import UserError
    from emergence.sweep.executors import executor_kwargs

    assert executor_kwargs("local", 2, 1, {}) == {"workers": 2, "threads_per_worker": 1}
    with pytest.raises(UserError, match=r"executor\.options.*num_cpu"):
        executor_kwargs("ray", 1, 1, {"num_cpu": 1})
    with pytest.raises(UserError, match="did you mean 'ray'"):
        executor_kwargs("rya", 1, 1, {})
