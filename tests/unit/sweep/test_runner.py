"""The runner with a fake run function: skipping, idempotence, failure isolation, re-evaluation, workers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from emergence.errors import UserError
from emergence.io import read_json, sha256_file
from emergence.sweep.config import parse_study
from emergence.sweep.plan import plan_study
from emergence.sweep.runner import (
    RESULT_COLUMNS,
    _longest_first,
    make_jobs,
    run_study,
    select_jobs,
    study_lock,
)

from .conftest import tiny_study_dict
from .fakes import calls, fake_work


def _run(data: dict[str, Any], out: Path, overrides: list[str] | None = None, **kw: Any) -> Any:
    study = parse_study(data, overrides or [])
    return run_study(study, out, work=fake_work, analyze=False, progress=False, **kw)


def test_runs_every_run_and_collects(tmp_path: Path, study_dict: dict[str, Any]) -> None:
    out = _run(study_dict, tmp_path)
    assert (out.total, out.done, out.failed, out.skipped) == (4, 4, 0, 0)
    df = pd.read_parquet(tmp_path / "results.parquet")
    assert list(df.columns[: len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    assert len(df) == 4 * 3 * 2
    assert sorted(df["member"].unique()) == ["large", "small"]
    summary = read_json(tmp_path / "status.json")
    assert summary["counts"] == {"done": 4}
    assert (tmp_path / "study.yaml").exists() and (tmp_path / "plan.json").exists()
    assert not (tmp_path / ".lock").exists()
    for spec in plan_study(parse_study(study_dict)):
        status = read_json(tmp_path / "runs" / spec.run_id / "status.json")
        assert status["state"] == "done" and status["trained"] and status["wall_s"] is not None


def test_rerun_is_idempotent(tmp_path: Path, study_dict: dict[str, Any]) -> None:
    _run(study_dict, tmp_path)
    first = sha256_file(tmp_path / "results.parquet")
    n_calls = len(calls(tmp_path))
    out = _run(study_dict, tmp_path)
    assert out.skipped == 4 and out.ran == []
    assert len(calls(tmp_path)) == n_calls  # no training, no evaluation
    assert sha256_file(tmp_path / "results.parquet") == first


def test_adding_a_seed_runs_only_the_new_runs(tmp_path: Path, study_dict: dict[str, Any]) -> None:
    _run(study_dict, tmp_path)
    out = _run(study_dict, tmp_path, ["seeds=[0, 1, 2]"])
    assert out.skipped == 4 and len(out.ran) == 2 and out.done == 6


def test_failures_are_isolated_and_recorded(tmp_path: Path) -> None:
    data = tiny_study_dict()
    data["family"]["members"] += [
        {"name": "boom", "n_layer": 1, "n_head": 1, "d_model": 12},
        {"name": "nan", "n_layer": 2, "n_head": 1, "d_model": 8},
    ]
    out = _run(data, tmp_path)
    assert (out.done, out.failed) == (4, 4)
    summary = read_json(tmp_path / "status.json")
    by_member: dict[str, list[dict[str, Any]]] = {}
    for r in summary["runs"]:
        by_member.setdefault(r["member"], []).append(r)
    for r in by_member["boom"]:
        assert r["state"] == "failed"
        assert r["error"] == "RuntimeError: the model exploded"  # one line
        tb = (tmp_path / r["traceback_file"]).read_text()
        assert "Traceback" in tb and "second line of detail" in tb
    for r in by_member["nan"]:
        assert r["state"] == "failed" and "non-finite loss" in r["error"]
    df = pd.read_parquet(tmp_path / "results.parquet")
    assert set(df["member"]) == {"small", "large"}
    # Failed runs are kept as failed on a plain re-run (a NaN would come back) and retried on request.
    n_calls = len(calls(tmp_path))
    again = _run(data, tmp_path)
    assert again.ran == [] and len(calls(tmp_path)) == n_calls
    retried = _run(data, tmp_path, retry_failed=True)
    assert retried.failed == 4 and len(retried.failures) == 4
    assert len(retried.ran) == 4


def test_eval_change_reevaluates_without_training(tmp_path: Path, study_dict: dict[str, Any]) -> None:
    _run(study_dict, tmp_path)
    before = calls(tmp_path)
    out = _run(study_dict, tmp_path, ["eval.n_examples=7"])
    new = calls(tmp_path)[len(before) :]
    assert len(out.ran) == 4
    assert sorted(c[1] for c in new) == ["eval"] * 4


def test_interrupted_run_is_resumed(tmp_path: Path, study_dict: dict[str, Any]) -> None:
    _run(study_dict, tmp_path)
    study = parse_study(study_dict)
    jobs = make_jobs(study, tmp_path, plan_study(study))
    # Simulate a kill mid-run: status left "running" by a process that no longer exists.
    status_file = jobs[1].run_dir / "status.json"
    status = json.loads(status_file.read_text())
    status.update(state="running", trained=False, pid=999999)
    status_file.write_text(json.dumps(status))
    todo, skipped = select_jobs(jobs)
    assert [j.spec.run_id for j in todo] == [jobs[1].spec.run_id] and len(skipped) == 3
    out = _run(study_dict, tmp_path)
    assert out.ran == [jobs[1].spec.run_id] and out.done == 4


def test_stale_lock_is_taken_over_and_live_lock_refused(tmp_path: Path, study_dict: dict[str, Any]) -> None:
    (tmp_path / ".lock").write_text("999999\n")  # a killed study's lock
    assert _run(study_dict, tmp_path).done == 4
    with study_lock(tmp_path), pytest.raises(UserError, match="being run by process"):
        _run(study_dict, tmp_path)


def test_progress_events_reach_the_caller(tmp_path: Path, study_dict: dict[str, Any]) -> None:
    events: list[dict[str, Any]] = []
    study = parse_study(study_dict)
    run_study(study, tmp_path, work=fake_work, analyze=False, progress=False, on_event=events.append)
    steps = [e for e in events if "step" in e]
    states = [e for e in events if "state" in e]
    assert len(states) == 4 and all(e["state"] == "done" for e in states)
    assert steps and steps[-1]["step"] == 4 and steps[-1]["loss"] == pytest.approx(0.2)


def test_report_lists_planned_runs_with_member_and_seed_of_failed_ones(tmp_path: Path) -> None:
    from emergence.report.data import load_study as load_report_data

    data = tiny_study_dict(seeds=[3])
    data["family"]["members"].append({"name": "boom", "n_layer": 1, "n_head": 1, "d_model": 12})
    _run(data, tmp_path)
    # A run directory of an earlier plan (e.g. a member since edited) is not part of this study.
    stray = tmp_path / "runs" / "0123456789ab"
    stray.mkdir()
    (stray / "status.json").write_text(json.dumps({"state": "done", "member": "old", "seed": 0}))
    report = load_report_data(tmp_path)
    plan = read_json(tmp_path / "plan.json")
    assert sorted(r.run_id for r in report.runs) == sorted(e["run_id"] for e in plan)
    failed = [r for r in report.runs if r.status == "failed"]
    assert [(r.member, r.seed) for r in failed] == [("boom", 3)]
    assert read_json(tmp_path / "environment.json")["python"]


def test_parallel_workers_start_with_the_longest_runs(tmp_path: Path) -> None:
    """A compute-optimal budget trains the largest member longest: it goes first."""
    d = tiny_study_dict()
    d["budget"] = {"kind": "tokens_per_param", "tokens_per_param": 2}
    study = parse_study(d)
    jobs = make_jobs(study, tmp_path, plan_study(study))
    ordered = _longest_first(jobs)
    tokens = [j.spec.run_config["train"]["tokens"] for j in ordered]
    assert tokens == sorted(tokens, reverse=True) and tokens[0] > tokens[-1]
    assert sorted(j.spec.run_id for j in ordered) == sorted(j.spec.run_id for j in jobs)
