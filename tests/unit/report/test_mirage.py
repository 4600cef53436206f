"""The report's metric-choice views: the metric comparison table and the p^L answer-length figure."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.answer_length import check, length_rows

from emergence.report.components import FigureSink
from emergence.report.mirage import length_html, metric_comparison_html


def test_length_html_draws_the_figure_and_states_the_agreement(tmp_path: Path) -> None:
    lp = {"task": "addition", "shots": 0, "group": {}} | check(length_rows(correlated=True))
    sink = FigureSink(out_dir=tmp_path, colors={"s": "#440154", "m": "#21918c", "l": "#b5de2b"})
    html = length_html([lp], sink, "addition-0shot", "addition")
    assert "Exact match against answer length" in html
    assert (tmp_path / "length-addition-0shot.png").is_file() and len(sink.written) == 1
    assert f"R² = {lp['agreement']['r2']:.3g}"[:8] in html
    # An analysis.json from before the per-seed check (rows only) still renders, without a figure.
    old = {k: lp[k] for k in ("task", "shots", "group", "token_metric", "em_metric", "rows", "mae")}
    html = length_html([old], FigureSink(out_dir=tmp_path / "old"), "x", "x")
    assert "mean absolute error" in html and not (tmp_path / "old").exists()


def test_metric_comparison_table_lists_every_metric() -> None:
    mirage = {
        "outcome": "mirage",
        "metrics": [
            {"metric": "exact_match", "kind": "discontinuous", "verdict": "emergent", "best_fit": "sigmoid",
             "breakthroughness": 7.4, "clipped": False, "r2": 0.93, "r2_line": 0.8,
             "threshold": {"x0": 2.3e4, "ci": [1.7e4, 3.5e4]}},
            {"metric": "answer_logprob", "kind": "continuous", "verdict": "smooth", "best_fit": "line",
             "breakthroughness": 3.1, "clipped": False, "r2": 0.97, "r2_line": 0.97,
             "threshold": {"x0": 1.2e3, "ci": None, "from_best": False}},
            {"metric": "prob_correct", "kind": "continuous", "compounds": True, "verdict": "emergent",
             "best_fit": "sigmoid", "breakthroughness": 9.0, "clipped": False, "r2": 0.9, "r2_line": 0.6,
             "threshold": {"x0": 2.4e4, "ci": [1.8e4, 3.3e4]}},
        ],
    }  # fmt: skip
    html = metric_comparison_html(mirage)
    assert "23k [17k, 35k]" in html and "0.97" in html and "sigmoid" in html
    assert "1.2k" not in html  # the line won: its runner-up's x0 is not a threshold
    assert html.index("exact_match") < html.index("answer_logprob")
    assert html.count("compounds (not a control)") == 1  # prob_correct only
    assert metric_comparison_html(None) == "" and metric_comparison_html({"metrics": []}) == ""
    # Only continuous metrics (a task scored without exact match): there is nothing to compare.
    continuous_only = {"metrics": [m for m in mirage["metrics"] if m["kind"] == "continuous"]}
    assert metric_comparison_html(continuous_only) == ""
