"""The rendered report: every section present, images embedded, nothing external, idempotent, clear errors."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from tests.fixtures.study_factory import FAILED, MEMBERS, make_study

from emergence.cli import main
from emergence.errors import UserError
from emergence.report import MECHANISM_RENDERERS, environment, render_report
from emergence.report.components import FigureSink, esc, figure_html, fmt_num, table
from emergence.report.data import load_study
from emergence.report.plots import format_count

SECTIONS = (
    "summary",
    "emergence",
    "task-addition-0shot",
    "task-sentiment-0shot",
    "training",
    "config",
    "environment",
)


# The page records the code's git revision, which moves whenever anybody commits: pin it so that renders
# minutes apart are comparable.
PINNED_REVISION = "0123456789ab"


MECHANISMS: dict[str, Any] = {
    "induction_heads": {
        "best_head": "blocks.1.attn.h3",
        "score": 0.83,
        "heads": [{"layer": 1, "head": h, "induction_score": 0.1 * h} for h in range(4)],
        "scores": [[0.1, 0.2, 0.05, 0.0], [0.3, 0.9, 0.1, 0.2]],  # layer × head
    },
    "criticality": {"x": [1e4, 1e5, 1e6], "y": [1.2, 1.0, 0.97], "xlabel": "parameters", "ylabel": "χ"},
    "custom_probe": {"accuracy": 0.9},
}
SEEN_BY_CUSTOM_RENDERER: list[Any] = []


def _custom_renderer(key: str, value: Any, sink: FigureSink) -> str:
    SEEN_BY_CUSTOM_RENDERER.append((key, value))
    return "<p>custom probe renderer</p>"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    study = make_study(tmp_path_factory.mktemp("report") / "study", mechanisms=MECHANISMS)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("emergence.report.environment.git_revision", lambda path: PINNED_REVISION)
        mp.setitem(MECHANISM_RENDERERS._items, "custom_probe", _custom_renderer)
        page = render_report(study)
    return study, page.read_text(encoding="utf-8")


def test_report_has_every_section(rendered: tuple[Path, str]) -> None:
    _, html = rendered
    for section in SECTIONS:
        assert f'<section id="{section}"' in html
        assert f'href="#{section}"' in html  # listed in the table of contents


def test_report_embeds_every_figure_and_nothing_external(rendered: tuple[Path, str]) -> None:
    study, html = rendered
    pngs = sorted((study / "figures").glob("*.png"))
    names = {p.stem for p in pngs}
    assert {"training-loss", "scaling-addition-0shot-n_params", "scaling-addition-0shot-flops"} <= names
    assert {"steps-addition-0shot", "scaling-sentiment-0shot-n_params", "steps-sentiment-0shot"} <= names
    uris = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(uris) == len(pngs) == html.count("<img ")
    embedded = {base64.b64decode(u) for u in uris}
    assert embedded == {p.read_bytes() for p in pngs}
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert re.search(r"<style>.*font-family", html, re.S)


def test_report_summary_content(rendered: tuple[Path, str]) -> None:
    _, html = rendered
    for member, (n_params, _) in MEMBERS.items():
        assert f">{member}</td>" in html
        assert f"{n_params:,}" in html
    assert "14 done, 1 failed" in html
    assert "loss is NaN at step 412" in html  # the failed run's error
    assert "<summary>traceback</summary><pre>Traceback (most recent call last):" in html
    assert f"<td>{FAILED[0]}</td><td>{FAILED[1]}</td>" in html
    assert "0, 1, 2" in html  # seeds
    assert "addition, sentiment" in html  # tasks
    assert "1,000 steps per member" in html  # budget


def test_report_emergence_table_and_verdicts(rendered: tuple[Path, str]) -> None:
    study, html = rendered
    analysis = load_study(study).analysis
    assert analysis is not None
    table_html = html.split('<section id="emergence"', 1)[1].split("</section>", 1)[0]
    # One row per analysis entry, each with its verdict badge.
    assert table_html.count("<tr>") == len(analysis["entries"]) + 1
    for entry in analysis["entries"]:
        assert f"<td>{entry['metric']}</td>" in table_html
        thr = entry["fits"]["n_params"]["threshold"]
        if thr:
            assert format_count(thr["x0"]) in table_html
    for task in analysis["tasks"]:
        assert esc(task["summary"]) in html
    assert "Metric-choice check" in html
    assert "Exact match against answer length" in html  # analysis["length_prediction"]
    assert "When each size jumps during training" in html  # analysis entries' fits_step
    assert "synthetic data: thresholds are illustrative" in html  # analysis warnings


def test_report_config_and_environment(rendered: tuple[Path, str]) -> None:
    _, html = rendered
    config = html.split('<section id="config"', 1)[1]
    assert "<pre>" in config and "budget:" in config and "kind: steps" in config
    env = html.split('<section id="environment"', 1)[1]
    for key in ("python", "torch", "numpy", "platform"):
        assert f"<td>{key}</td>" in env
    assert "2.13.0+cpu" in env  # recorded by the study (environment.json)
    assert PINNED_REVISION in env
    assert "differs" in env  # the recorded numpy version is not the one rendering


def test_rerender_is_idempotent(
    rendered: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study, html = rendered
    copy = tmp_path / study.name
    shutil.copytree(study, copy)
    before = {p.name: p.read_bytes() for p in (copy / "figures").iterdir()}
    monkeypatch.setattr("emergence.report.environment.git_revision", lambda path: PINNED_REVISION)
    monkeypatch.setitem(MECHANISM_RENDERERS._items, "custom_probe", _custom_renderer)
    render_report(copy)
    after = {p.name: p.read_bytes() for p in (copy / "figures").iterdir()}
    assert before == after
    assert (copy / "report.html").read_text(encoding="utf-8") == html
    assert not [p for p in copy.rglob("*.tmp")]


def test_missing_results_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="study directory not found"):
        render_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"results\.parquet is missing"):
        render_report(tmp_path / "empty")
    assert not (tmp_path / "empty" / "report.html").exists()


def test_cli_reports_missing_results_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "s").mkdir()
    assert main(["report", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "results.parquet" in err and err.count("\n") == 1


def test_malformed_inputs_are_user_errors(tmp_path: Path) -> None:
    study = tmp_path / "s"
    study.mkdir()
    pd.DataFrame({"task": ["a"], "value": [1.0]}).to_parquet(study / "results.parquet")
    with pytest.raises(UserError, match="lack column"):
        load_study(study)
    (study / "results.parquet").write_bytes(b"not parquet")
    with pytest.raises(UserError, match="cannot read results"):
        load_study(study)


def test_report_without_analysis_draws_raw_curves(tmp_path: Path) -> None:
    study = make_study(tmp_path / "study", seeds=(0, 1), with_analysis=False, with_environment=False)
    html = render_report(study).read_text(encoding="utf-8")
    assert "No analysis.json in this study" in html
    assert "95% CI (Student t over seeds)" in html
    assert "recorded no environment" in html
    assert 'id="mechanisms"' not in html  # only with analysis["mechanisms"]
    for section in SECTIONS:
        assert f'<section id="{section}"' in html
    assert html.count("<img ") == len(list((study / "figures").glob("*.png"))) >= 5


def test_mechanisms_section_generic_and_registered(rendered: tuple[Path, str]) -> None:
    study, html = rendered
    assert 'href="#mechanisms"' in html
    section = html.split('<section id="mechanisms"', 1)[1].split("</section>", 1)[0]
    assert "Induction heads" in section and "blocks.1.attn.h3" in section
    assert section.count("<tr>") >= 4 + 2  # the heads table and the scalar table
    assert (study / "figures" / "mech-criticality.png").is_file()
    assert (study / "figures" / "mech-induction-heads-scores.png").is_file()  # the matrix as a heat map
    assert 'id="fig-mech-criticality"' in section
    # A registered renderer replaces the generic one for its key.
    assert SEEN_BY_CUSTOM_RENDERER and all(
        seen == ("custom_probe", {"accuracy": 0.9}) for seen in SEEN_BY_CUSTOM_RENDERER
    )
    assert "custom probe renderer" in section


def test_components_escape_and_format(tmp_path: Path) -> None:
    assert esc("<b>&</b>") == "&lt;b&gt;&amp;&lt;/b&gt;"
    assert fmt_num(None) == "–" and fmt_num(float("nan")) == "–"
    assert fmt_num(1000) == "1,000" and fmt_num(3.2e5) == "3.20e+05" and fmt_num(0.1234) == "0.123"
    html = table(["a", "b"], [["x", "1"]], numeric=(1,))
    assert '<td class="num">1</td>' in html and "<th>a</th>" in html
    png = tmp_path / "f.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nxyz")
    from emergence.report.plots import FigureFile

    fig = figure_html(FigureFile(name="f", png=png, svg=None, alt='a "quoted" alt'), "cap")
    assert 'alt="a &quot;quoted&quot; alt"' in fig and base64.b64encode(png.read_bytes()).decode() in fig


def test_git_revision_of_this_checkout_or_none(tmp_path: Path) -> None:
    rev = environment.git_revision(Path(__file__).parent)
    assert rev is None or re.fullmatch(r"[0-9a-f]{12}", rev)
    assert environment.git_revision(tmp_path) is None  # not a git checkout


def test_environment_keys_are_normalised() -> None:
    recorded = {"git_revision": "abc", "numpy_version": "2.1", "Python": "3.11", "torch": "2.13"}
    assert environment.normalize(recorded) == {
        "git revision": "abc",
        "numpy": "2.1",
        "python": "3.11",
        "torch": "2.13",
    }
    env = environment.collect_environment()
    assert {"python", "platform", "emergence-lab", "numpy", "torch"} <= set(env)
    assert all(isinstance(v, str) for v in env.values())


def test_importing_environment_does_not_load_matplotlib() -> None:
    code = "import sys, emergence.report.environment; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_report_of_a_study_without_results_rows_or_run_dirs(tmp_path: Path) -> None:
    # Every run failed before its first evaluation: the page still says what happened.
    study = tmp_path / "s"
    (study / "runs" / "r1").mkdir(parents=True)
    columns = ["run_id", "member", "n_params", "seed", "step", "task", "metric", "value"]
    pd.DataFrame(
        {c: pd.Series([], dtype=float if c in ("n_params", "value") else object) for c in columns}
    ).to_parquet(study / "results.parquet")
    (study / "runs" / "r1" / "status.json").write_text(
        '{"state": "failed", "member": "s", "seed": 0, "error": "ValueError: bad width", "wall_s": 1.5}'
    )
    html = render_report(study).read_text(encoding="utf-8")
    assert "results.parquet has no rows yet" in html
    assert "ValueError: bad width" in html and "1 failed" in html
    assert "No study.yaml in this study" in html
    assert "<img " not in html


def test_planned_runs_without_a_directory_count_as_pending(tmp_path: Path) -> None:
    study = make_study(tmp_path / "study", seeds=(0,), with_analysis=False)
    on_disk = sorted(p.name for p in (study / "runs").iterdir())
    plan = [{"run_id": r} for r in on_disk] + [{"run_id": "notstarted", "member": "xl", "seed": 7}]
    (study / "plan.json").write_text(json.dumps(plan))
    runs = {r.run_id: r for r in load_study(study).runs}
    assert len(runs) == len(on_disk) + 1
    assert (runs["notstarted"].status, runs["notstarted"].member, runs["notstarted"].seed) == (
        "pending",
        "xl",
        7,
    )
    # A run without result rows (the failed one) still knows its member from status.json.
    assert all(r.member in MEMBERS for r in runs.values())
