"""An interrupted study resumes to the same results: a run killed mid-training, and a study process killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from emergence.cli import main
from emergence.io import read_json

from .test_run_cli import write_tiny_study

CRASH_ENV = (
    "EMERGENCE_CRASH_AFTER_STEP"  # the trainer exits abruptly after this step (emergence.train.trainer)
)


def _emergence(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("PYTEST_CURRENT_TEST", None)
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from emergence.cli import main; sys.exit(main(sys.argv[1:]))",
            *args,
        ],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _frame(study_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(study_dir / "results.parquet")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """The tiny study run without interruption: (study file, results)."""
    root = tmp_path_factory.mktemp("reference")
    study = write_tiny_study(root, budget={"kind": "steps", "steps": 6})
    assert main(["run", str(study), "--out", str(root / "out"), "-q"]) == 0
    return study, _frame(root / "out")


def test_crash_mid_training_resumes_to_identical_results(
    reference: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    study, expected = reference
    out = tmp_path / "out"
    proc = _emergence(["run", str(study), "--out", str(out), "-q"], env={CRASH_ENV: "3"})
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 75, err.decode()  # the trainer's crash exit, at step 3 of the first run
    first = read_json(next((out / "runs").glob("*/status.json")))
    assert first["state"] == "running"  # left as an interrupted run, not a failure
    assert (out / ".lock").exists()  # a stale lock, taken over below

    resumed = _emergence(["run", str(study), "--out", str(out), "-q"])
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()
    metrics = (out / "runs" / first["run_id"] / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) > 0
    pd.testing.assert_frame_equal(_frame(out), expected)


def test_killed_study_process_resumes(reference: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    study, expected = reference
    out = tmp_path / "out"
    proc = _emergence(["run", str(study), "--out", str(out), "-q"])
    # Kill the study (SIGKILL: no clean-up at all) once its first run has finished.
    deadline = time.monotonic() + 240
    done: list[Path] = []
    while time.monotonic() < deadline and proc.poll() is None:
        done = [p for p in (out / "runs").glob("*/status.json") if read_json(p).get("state") == "done"]
        if done:
            break
        time.sleep(0.2)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    done = done or [p for p in (out / "runs").glob("*/status.json") if read_json(p).get("state") == "done"]
    assert done, "the first run never finished"
    kept = done[0].parent
    weights = sorted(kept.glob("checkpoints/step_*/model.safetensors"))
    mtimes = [p.stat().st_mtime_ns for p in weights]

    resumed = _emergence(["run", str(study), "--out", str(out), "-q"])
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()
    assert [p.stat().st_mtime_ns for p in weights] == mtimes  # the finished run was not trained again
    assert read_json(out / "status.json")["counts"] == {"done": 2}
    pd.testing.assert_frame_equal(_frame(out), expected)
