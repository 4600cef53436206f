"""A study on the Ray executor (a private local instance) gives the local executor's run ids and results."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("ray")

from emergence.cli import main
from emergence.io import read_json

from .test_run_cli import write_tiny_study


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("run_id", "step", "task", "shots", "metric", "answer_len", "trial") if c in df]
    return df.sort_values(keys, kind="stable").reset_index(drop=True)


def test_ray_study_matches_local(tmp_path: Path) -> None:
    study = write_tiny_study(tmp_path)
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert main(["run", str(study), "--out", str(local), "-q"]) == 0
    overrides = ["executor.kind=ray", "executor.options={num_cpus_total: 2, num_cpus: 1, max_retries: 1}"]
    assert main(["run", str(study), *overrides, "--out", str(remote), "-q"]) == 0
    assert [e["run_id"] for e in read_json(remote / "plan.json")] == [
        e["run_id"] for e in read_json(local / "plan.json")
    ]
    assert read_json(remote / "status.json")["counts"] == {"done": 2}
    pd.testing.assert_frame_equal(
        _sorted(pd.read_parquet(remote / "results.parquet")),
        _sorted(pd.read_parquet(local / "results.parquet")),
    )
    assert (remote / "report.html").is_file()


def test_ray_options_are_checked_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = write_tiny_study(tmp_path)
    assert (
        main(
            [
                "run",
                str(study),
                "executor.kind=ray",
                "executor.options={num_cpu: 1}",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "executor.options" in err and "num_cpu" in err and not (tmp_path / "x").exists()
