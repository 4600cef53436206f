"""`emergence run` and `emergence eval` end to end on a tiny study: outputs, idempotence, exit codes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from emergence.cli import main
from emergence.io import read_json, sha256_file

TINY_STUDY = {
    "name": "tiny",
    "family": {
        "base": {"n_ctx": 12, "n_head": 1},
        "members": [{"name": "s", "n_layer": 1, "d_model": 8}, {"name": "l", "n_layer": 1, "d_model": 16}],
    },
    "seeds": [0],
    "tasks": [{"name": "addition", "options": {"digits": 1}}],
    "budget": {"kind": "steps", "steps": 4},
    "train": {"batch_size": 8, "warmup_steps": 1, "eval_every": 0, "latest_every": 2},
    "data": {"n_eval": 8, "n_eval_generate": 4},
    "eval": {"n_examples": 8, "bootstrap": 0},
    "executor": {"kind": "local", "workers": 1},
}


def write_tiny_study(tmp_path: Path, **changes: object) -> Path:
    """The tiny study as a YAML file."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY_STUDY, **changes}))
    return path


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """The tiny study run once for this module: (study file, study dir, stdout of the run)."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("study")
    study, out = write_tiny_study(root), root / "out"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["run", str(study), "--out", str(out), "-q"]) == 0
    return study, out, buf.getvalue()


def _copy(out: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "copy"
    shutil.copytree(out, dest)
    return dest


def test_run_writes_everything_and_rerun_is_idempotent(finished_study: tuple[Path, Path, str]) -> None:
    study, out, stdout = finished_study
    assert "report:" in stdout
    report = Path(stdout.split("report:")[1].strip())
    assert report.is_file()
    for name in ("study.yaml", "plan.json", "status.json", "results.parquet", "analysis.json"):
        assert (out / name).is_file(), name
    df = pd.read_parquet(out / "results.parquet")
    assert set(df["member"]) == {"s", "l"}
    assert df["step"].max() == 4 and df["step"].min() == 0  # every checkpoint is evaluated
    assert (df["n_params_non_embedding"] > 0).all() and (df["flops"] >= 0).all()
    first = sha256_file(out / "results.parquet")
    ckpts = sorted((out / "runs").glob("*/checkpoints/step_*/model.safetensors"))
    mtimes = [p.stat().st_mtime_ns for p in ckpts]

    assert main(["run", str(study), "--out", str(out), "-q"]) == 0
    assert sha256_file(out / "results.parquet") == first
    assert [p.stat().st_mtime_ns for p in ckpts] == mtimes  # no training happened


def test_worker_processes_give_the_same_results(
    finished_study: tuple[Path, Path, str], tmp_path: Path
) -> None:
    study, out = finished_study[0], tmp_path / "two"
    assert main(["run", str(study), "--out", str(out), "-q", "--workers", "2"]) == 0
    expected = pd.read_parquet(finished_study[1] / "results.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), expected)


def test_eval_reevaluates_without_training(
    finished_study: tuple[Path, Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _copy(finished_study[1], tmp_path)
    ckpts = sorted((out / "runs").glob("*/checkpoints/step_*/model.safetensors"))
    mtimes = [p.stat().st_mtime_ns for p in ckpts]
    assert main(["eval", str(out), "eval.n_examples=5", "-q"]) == 0
    df = pd.read_parquet(out / "results.parquet")
    whole = df[df["answer_len"].isna()] if "answer_len" in df else df  # not the per-answer-length rows
    assert set(whole["n"]) == {5}
    assert [p.stat().st_mtime_ns for p in ckpts] == mtimes
    assert read_json(out / "status.json")["counts"] == {"done": 2}
    capsys.readouterr()
    assert main(["eval", str(out), "train.lr=0.1"]) == 2
    assert "only changes" in capsys.readouterr().err


def test_overrides_run_only_new_runs(finished_study: tuple[Path, Path, str], tmp_path: Path) -> None:
    study, out = finished_study[0], _copy(finished_study[1], tmp_path)
    before = set(pd.read_parquet(out / "results.parquet")["run_id"])
    # A new width for one member: only its run is new; the other member's run is reused.
    assert (
        main(
            [
                "run",
                str(study),
                "family.members=[{name: s, n_layer: 1, d_model: 8}, {name: w, n_layer: 1, d_model: 24}]",
                "--out",
                str(out),
                "-q",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    saved = yaml.safe_load((out / "study.yaml").read_text())
    assert saved["family"]["members"][1]["name"] == "w"
    df = pd.read_parquet(out / "results.parquet")
    assert set(df["member"]) == {"s", "w"}
    assert len(set(df["run_id"]) & before) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "defualt"], "did you mean 'default'"),
        (["run", "no/such.yaml"], "not found"),
        (["run", "{bad}", "--workers", "0"], "--workers"),
        (["eval", "nowhere"], "not a study directory"),
    ],
)
def test_user_errors_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_bad_yaml_and_bad_field_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nfamily: [unclosed\n")
    assert main(["run", str(bad)]) == 2
    assert "malformed YAML" in capsys.readouterr().err
    study = write_tiny_study(tmp_path)
    assert main(["run", str(study), "budget.stpes=3"]) == 2
    assert "did you mean 'steps'" in capsys.readouterr().err
    assert main(["run", str(study), "eval.shots=[-1]"]) == 2
    assert "eval" in capsys.readouterr().err and not (Path(os.getcwd()) / "runs" / "tiny").exists()


def test_tracking_toggle_does_not_retrain(finished_study: tuple[Path, Path, str], tmp_path: Path) -> None:
    study, out = finished_study[0], _copy(finished_study[1], tmp_path)
    ckpts = sorted((out / "runs").glob("*/checkpoints/step_*/model.safetensors"))
    mtimes = [p.stat().st_mtime_ns for p in ckpts]
    assert main(["run", str(study), "tracking.tensorboard=true", "--out", str(out), "-q"]) == 0
    assert [p.stat().st_mtime_ns for p in ckpts] == mtimes
    assert yaml.safe_load((out / "study.yaml").read_text())["tracking"] == {"tensorboard": True}


def test_environment_and_mechanisms(finished_study: tuple[Path, Path, str], tmp_path: Path) -> None:
    study, out = finished_study[0], _copy(finished_study[1], tmp_path)
    (out / "environment.json").unlink()
    mech = (
        "mechanisms={enabled: true, n_streams: 2, n_calibration: 2, head_batch: 2, n_examples: 4,"
        " pruning: false, attribution_examples: 0, jacobian: false}"
    )
    assert main(["run", str(study), mech, "--out", str(out), "-q"]) == 0
    env = read_json(out / "environment.json")
    assert "python" in env and "torch" in env
    section = read_json(out / "analysis.json")["mechanisms"]
    assert section["steps"] == "final"
    assert {r["member"] for r in section["runs"]} == {"s", "l"}
    assert all(len(r["points"]) == 1 for r in section["runs"])  # steps: final → the last checkpoint only
    assert read_json(out / "analysis.json")["entries"]  # the emergence analysis is kept beside it
