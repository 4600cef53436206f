"""The report renders what the real emergence analysis writes (guards against drift of analysis.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.fixtures.study_factory import make_study

from emergence.report import render_report
from emergence.report.components import esc

emergence_analysis = pytest.importorskip("emergence.analysis.emergence")


def test_report_renders_the_real_analysis_of_the_fixture(tmp_path: Path) -> None:
    study = make_study(tmp_path / "study", seeds=(0, 1), with_analysis=False)
    # Few bootstrap replicates: the test checks the plumbing, not the statistics.
    emergence_analysis.analyze_study(study, emergence_analysis.AnalysisConfig(n_boot=20))
    analysis = json.loads((study / "analysis.json").read_text())
    html = render_report(study).read_text(encoding="utf-8")

    assert "No analysis.json" not in html
    table = html.split('<section id="emergence"', 1)[1].split("</section>", 1)[0]
    assert table.count("<tr>") == len(analysis["entries"]) + 1
    for entry in analysis["entries"]:
        assert f"<td>{entry['metric']}</td>" in table
        verdict = entry["verdict"]["verdict"]
        assert f'class="badge {verdict}"' in table
    for task in analysis["tasks"]:
        assert esc(task["summary"]) in html
    # Fitted curves and thresholds are drawn, and the caption says how to read them.
    assert "Dashed: the fitted curve chosen by the analysis" in html
