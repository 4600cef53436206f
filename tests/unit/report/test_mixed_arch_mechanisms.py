"""The mechanisms section of a study mixing GPTs and LSTMs: skipped parts named, head maps from a GPT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emergence.analysis.mechanisms import RECURRENT_SKIPS
from emergence.report.components import FigureSink
from emergence.report.mechanisms_study import render_runs


def _run(member: str, n: int, arch: str | None) -> dict[str, Any]:
    summary = {"tau_s": 2.0, "branching_m": 0.9, "size_verdict": "rejected"}
    final: dict[str, Any] = {"summary": summary, "model": {"arch": arch} if arch else {"n_head": 2}}
    if arch == "lstm":
        final["skipped"] = dict(RECURRENT_SKIPS)
    else:
        summary["max_induction"] = 0.3
        final["heads"] = {"induction": [[0.1, 0.3]], "previous_token": [[0.2, 0.1]]}
    return {
        "run_id": member,
        "member": member,
        "seed": 0,
        "n_params": n,
        "points": [{"step": 8, "summary": summary}],
        "final": final,
    }


def test_mixed_runs_render(tmp_path: Path) -> None:
    runs = [_run("gpt-a", 1000, None), _run("lstm-b", 5000, "lstm")]
    sink = FigureSink(out_dir=tmp_path, colors={"gpt-a": "#111111", "lstm-b": "#222222"})
    html = render_runs("runs", runs, sink)
    assert "Not measured" in html and "<b>heads</b> on lstm-b" in html and RECURRENT_SKIPS["heads"] in html
    # The head maps come from the GPT although the LSTM is larger.
    assert "Head scores of gpt-a" in html
    assert {f.png.name for f in sink.written} >= {"mech-scale.png", "mech-heads.png"}
    assert "<b>heads</b>" not in render_runs("runs", [_run("gpt-a", 1000, None)], sink)


def test_criticality_table_only_when_measured(tmp_path: Path) -> None:
    sink = FigureSink(out_dir=tmp_path, colors={"gpt-a": "#111111"})
    measured = _run("gpt-a", 1000, None)
    assert "Criticality (final checkpoints)" in render_runs("runs", [measured], sink)
    # A study with `mechanisms.criticality: false` has no criticality fields: no table of dashes.
    off = _run("gpt-a", 1000, None)
    for key in ("tau_s", "branching_m", "size_verdict"):
        del off["final"]["summary"][key]
    assert "Criticality (final checkpoints)" not in render_runs("runs", [off], sink)
