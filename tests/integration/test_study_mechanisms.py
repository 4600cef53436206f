"""Mechanisms over a real tiny study: every checkpoint measured and cached, phases aligned, reported."""

from __future__ import annotations

import contextlib
import io

import pytest

from emergence.analysis.mechanisms import MechanismsConfig
from emergence.analysis.study_mechanisms import measure_study
from emergence.cli import main
from emergence.io import read_json
from tests.integration.test_run_cli import write_tiny_study

# A light measurement: the real pipeline on small inputs (criticality on 8 streams, few probes).
LIGHT = MechanismsConfig(
    head_span=4,
    head_batch=4,
    stream_len=12,
    n_streams=8,
    n_calibration=4,
    subsample=(8,),
    n_draws=1,
    component_neurons=8,
    branching_numboot=0,
    jacobian_streams=1,
    jacobian_probes=1,
    n_examples=8,
    pruning_fractions=(0.0, 0.5, 1.0),
    attribution_examples=1,
    attribution_steps=4,
)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("mech")
    path = write_tiny_study(root, budget={"kind": "steps", "steps": 8})
    out = root / "out"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["run", str(path), "--out", str(out), "-q"]) == 0
    return out


def test_every_checkpoint_measured_cached_and_reported(study) -> None:
    section = measure_study(study, LIGHT, steps="all", progress=False)
    assert {r["member"] for r in section["runs"]} == {"s", "l"}
    for run in section["runs"]:
        steps = [p["step"] for p in run["points"]]
        assert steps == [0, 1, 2, 4, 8]  # the trainer's log-spaced checkpoints
        assert run["n_params"] > 0 and run["final"]["step"] == 8
        assert isinstance(run["points"][-1]["summary"]["max_previous_token"], float)
        cached = list((study / "runs" / run["run_id"] / "mechanisms").glob("step_*.json"))
        assert len(cached) == len(steps)
    # phases: one entry per run and task, with the ability curve's change points and the alignments
    assert {p["member"] for p in section["phases"]} == {"s", "l"}
    assert all("max_induction" in p["alignments"] for p in section["phases"])
    assert read_json(study / "analysis.json")["mechanisms"]["steps"] == "all"

    # a second pass reads the cache (no checkpoint is loaded again)
    import emergence.train.checkpoint as ckpt

    calls = []
    real = ckpt.load_checkpoint
    ckpt.load_checkpoint = lambda p: calls.append(p) or real(p)  # type: ignore[assignment]
    try:
        again = measure_study(study, LIGHT, steps="all", progress=False)
    finally:
        ckpt.load_checkpoint = real  # type: ignore[assignment]
    assert calls == [] and again["runs"][0]["points"] == section["runs"][0]["points"]

    # the report draws the Mechanisms section with its figures
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["report", str(study)]) == 0
    html = (study / "report.html").read_text()
    assert 'id="mechanisms"' in html and "Criticality (final checkpoints)" in html
    assert (study / "figures" / "mech-scale.png").stat().st_size > 1000


def test_cli_flag_and_bad_steps(study, capsys) -> None:
    assert main(["analyze", str(study), "--mechanisms", "--mechanisms-steps", "sometimes"]) == 2
    assert "--mechanisms-steps" in capsys.readouterr().err
