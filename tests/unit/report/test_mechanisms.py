"""The generic mechanisms view: every JSON shape shown readably, within size caps; plugins never sink it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from emergence.report import mechanisms
from emergence.report.components import FigureSink


def _sink(tmp_path: Path) -> FigureSink:
    return FigureSink(out_dir=tmp_path / "figures")


def test_shapes_become_tables_plots_and_heat_maps(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    value = {
        "n_heads": 4,
        "name": "<b>probe</b>",
        "layers": [{"layer": 0, "kurtosis": 1.05}, {"layer": 1, "kurtosis": 1.2}],
        "induction": [[0.1, 0.9], [0.2, 0.3]],
        "curve": {"x": [1, 10, 100], "series": {"a": [1, 2, 3], "b": [3, 2, 1]}},
        "outliers": [],
        "long": list(range(20)),
    }
    html = mechanisms.render_generic("heads", value, sink)
    assert "&lt;b&gt;probe&lt;/b&gt;" in html  # escaped, never injected
    assert '<td class="num">1.05</td>' in html  # records → table
    assert "(none)" in html  # empty list
    names = sorted(f.name for f in sink.written)
    assert names == ["mech-heads-curve", "mech-heads-induction", "mech-heads-long"]
    assert all(f.png.read_bytes()[:4] == b"\x89PNG" for f in sink.written)
    assert html.count("<img ") == 3


def test_size_caps(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    many = {f"m{i}": [[float(i), 1.0], [2.0, 3.0]] for i in range(mechanisms._MAX_FIGURES + 3)}
    html = mechanisms.render_generic("big", many, sink)
    assert len(sink.written) == mechanisms._MAX_FIGURES
    assert html.count("matrix (see analysis.json)") == 3
    records = [{"i": i} for i in range(mechanisms._MAX_ROWS + 5)]
    assert "… and 5 more rows" in mechanisms.render_generic("r", records, sink)
    assert "truncated" in mechanisms.render_generic("t", "x" * (mechanisms._MAX_TEXT + 1), sink)
    nested = [[{"a": 1}], [{"a": 2}]] * 5
    assert "more items in analysis.json" in mechanisms.render_generic("n", nested, sink)


def test_digits_tell_close_values_apart() -> None:
    assert mechanisms._digits(np.array([0.1, 0.9])) == 2
    close = np.array([0.999993, 0.999996])
    d = mechanisms._digits(close)
    assert f"{close[0]:.{d}g}" != f"{close[1]:.{d}g}"
    assert mechanisms._digits(np.array([1.0, 1.0])) == 2


def test_a_broken_plugin_falls_back_to_the_generic_view(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(mechanisms, "PLUGIN_MODULES", ("emergence.report.no_such_plugin",))
    with caplog.at_level(logging.WARNING):
        section = mechanisms.render_mechanisms({"probe": {"accuracy": 0.5}}, _sink(tmp_path))
    assert section.id == "mechanisms" and "accuracy" in section.html
    assert "no_such_plugin" in caplog.text


def test_records_with_series_become_one_panel_per_field(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    sink.colors = {"s": "#440154", "l": "#7ad151"}
    runs = [
        {
            "run_id": f"r{i}",
            "member": member,
            "seed": 0,
            "points": [
                {"step": st, "summary": {"max_induction": i + st / 1e3, "icl": -st / 1e4}}
                for st in (0, 8, 64)
            ],
            "final": {"score": 0.5 + i},
        }
        for i, member in enumerate(("s", "l"))
    ]
    html = mechanisms.render_generic("runs", runs, sink)
    assert [f.name for f in sink.written] == ["mech-runs-points"]
    assert "<h4>Points</h4>" in html and 'id="fig-mech-runs-points"' in html
    # Nested mappings of each record sit in folds, labelled by member and seed.
    assert "<summary>Final: s (seed 0)</summary>" in html and "<summary>Final: l (seed 0)</summary>" in html
    series = mechanisms._series_of(runs[0]["points"])
    assert series == (
        "step",
        [0.0, 8.0, 64.0],
        {"max_induction": [0.0, 0.008, 0.064], "icl": [0.0, -0.0008, -0.0064]},
    )
