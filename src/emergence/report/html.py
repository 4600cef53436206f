"""`render_report(study_dir) -> Path`: a self-contained report.html and figures/*.png from saved results.

Layout (one function per section; Summary and Emergence table live in their own modules):

    header + table of contents
    Summary           (summary.py) name, members and sizes, seeds, tasks, budget, runtime, run states, errors
    Emergence table   (emergence_table.py) every task × metric: threshold [CI], L, B, fit, verdict,
                      prediction error
    one section per task
                      verdict text, scaling curves (parameters; FLOPs in a fold), training-step curves
    Training          training loss of every run (metrics.jsonl)
    Mechanisms        only when analysis.json has "mechanisms" (emergence.report.mechanisms)
    Configuration     the resolved study.yaml
    Environment       versions at render time and as recorded by the study

The page has no external resources (inline CSS, images as data URIs, no scripts) and no timestamp, so that
rendering the same study twice gives the same bytes.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import pandas as pd

from emergence import __version__
from emergence.io import write_text
from emergence.report import environment
from emergence.report.components import (
    FigureSink,
    Section,
    badge,
    esc,
    figure_html,
    fmt_num,
    table,
)
from emergence.report.data import StudyData, load_study
from emergence.report.emergence_table import emergence_table_section
from emergence.report.generalisation import generalisation_section
from emergence.report.mechanisms import render_mechanisms
from emergence.report.mirage import length_html, metric_comparison_html
from emergence.report.plots import (
    member_colors,
    plot_loss_curves,
    plot_scaling,
    plot_training_curves,
)
from emergence.report.sections import extra_sections
from emergence.report.shots import shots_section
from emergence.report.summary import summary_section
from emergence.report.views import AXIS_WORDS, TaskView, build_task_views, curve_rows, flops_per_token

log = logging.getLogger(__name__)


def render_report(study_dir: str | Path, svg: bool = False) -> Path:
    """Render STUDY_DIR/report.html and figures/*.png (and .svg) from saved results; return the page."""
    study = load_study(study_dir)
    out = study.study_dir / "report.html"
    page = build_page(study, study.study_dir / "figures", svg=svg)
    write_text(out, page)
    log.debug("report written to %s", out)
    return out


def build_page(study: StudyData, figures_dir: Path, svg: bool = False) -> str:
    """The whole HTML page for a loaded study (writes the figures as a side effect)."""
    sizes = study.members().set_index("member")["n_params"].astype(float).to_dict()
    sink = FigureSink(out_dir=figures_dir, svg=svg, colors=member_colors(sizes), sizes=sizes)
    views = build_task_views(study)
    sections = [summary_section(study, sink), emergence_table_section(study, views)]
    from emergence.report.adaptation import adaptation_section

    adaptation = adaptation_section(study, sink)
    if adaptation is not None:
        sections.append(adaptation)
    generalisation = generalisation_section((study.analysis or {}).get("held_out"), sink)
    if generalisation is not None:
        sections.append(generalisation)
    sections += [task_section(study, v, sink) for v in views]
    sections += extra_sections(study, sink)  # registered in emergence.report.sections (e.g. scaling law)
    sections += [s for s in (shots_section(study, sink),) if s is not None]
    training = training_section(study, sink)
    if training is not None:
        sections.append(training)
    mechanisms = (study.analysis or {}).get("mechanisms")
    if isinstance(mechanisms, dict) and mechanisms:
        sections.append(render_mechanisms(mechanisms, sink))
    sections += [config_section(study), environment_section(study)]

    toc = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    description = study.config.get("description") or ""
    header = (
        f'<header class="page"><h1>Emergence report: {esc(study.name)}</h1>'
        f'<p class="sub">{esc(description)}</p></header><nav class="toc">{toc}</nav>'
    )
    body = header + "".join(
        f'<section id="{esc(s.id)}" class="{"task" if s.id.startswith("task-") else ""}">'
        f"<h2>{esc(s.title)}</h2>{s.html}</section>"
        for s in sections
    )
    body += (
        f"<footer>Rendered by emergence-lab {esc(__version__)} from "
        f"{esc(study.study_dir.name)}/results.parquet "
        f"(sha256 {esc(study.results_sha256[:16])}…). Re-render with <code>emergence report "
        "STUDY_DIR</code>.</footer>"
    )
    template = Template(_template("page.html"))
    return template.substitute(
        title=esc(f"Emergence report: {study.name}"),
        css=_template("report.css"),
        body=body,
        version=__version__,
    )


def _template(name: str) -> str:
    return resources.files("emergence.report").joinpath("templates", name).read_text(encoding="utf-8")


# --- one task ----------------------------------------------------------------------------------------------


def task_section(study: StudyData, view: TaskView, sink: FigureSink) -> Section:
    """Verdict text, scaling curves (parameters, FLOPs in a fold) and training-step curves of one task."""
    parts = [_verdict_html(view, study.analysis is not None), metric_comparison_html(view.mirage)]
    for axis in ("n_params", "flops"):
        panels = view.panels.get(axis)
        if not panels:
            continue
        fig = sink.add(
            plot_scaling(
                panels,
                view.label,
                sink.colors,
                sink.sizes,
                sink.out_dir,
                f"scaling-{view.key.slug}-{axis}",
                x=axis,
                ci_label=view.ci_labels[axis],
                svg=sink.svg,
            )
        )
        caption = (
            f"{esc(view.label)}: each metric at the final step of every run against {AXIS_WORDS[axis]}. "
            "Small "
            f"dots: one seed; large dots and line: mean over seeds; grey band: {esc(view.ci_labels[axis])}. "
            "Discontinuous metrics (all-or-nothing per item) come before continuous ones, so that a jump "
            "can be checked against a smooth counterpart."
        )
        if any(p.fit is not None for p in panels):
            caption += (
                " Dashed: the fitted curve chosen by the analysis; dotted vertical: threshold x₀, "
                "shaded: its CI."
            )
        if axis == "n_params":
            parts.append("<h3>Scaling curves</h3>" + figure_html(fig, caption))
        else:
            parts.append(
                "<details><summary>The same curves against training FLOPs</summary>"
                + figure_html(fig, caption)
                + "</details>"
            )
    steps = view.rows
    if not steps.empty and steps["step"].nunique() > 1:
        fig = sink.add(
            plot_training_curves(
                steps,
                view.label,
                view.metrics,
                sink.colors,
                sink.out_dir,
                f"steps-{view.key.slug}",
                kinds=view.kinds,
                higher_is_better=view.higher_is_better,
                svg=sink.svg,
            )
        )
        parts.append(
            "<h3>Over training</h3>"
            + figure_html(
                fig,
                f"{esc(view.label)}: each metric at every evaluated checkpoint, one colour per model size "
                "(mean over seeds; thin lines: single seeds). The step axis is logarithmic from the first "
                "checkpoint on; step 0, the untrained model, sits on a short linear stretch before it.",
            )
        )
        step_table = _step_thresholds_html(view, sink.sizes)
        if step_table:
            parts.append(step_table)
    if view.length_predictions:
        parts.append(length_html(view.length_predictions, sink, view.key.slug, view.label))
    return Section(id=f"task-{view.key.slug}", title=f"Task: {view.label}", html="".join(parts))


def _step_thresholds_html(view: TaskView, sizes: dict[str, float]) -> str:
    """When each member's metric jumps in training: step x₀ of its best sigmoid/hinge fit over checkpoints."""
    members = sorted(
        {m for e in view.entries for m in (e.get("fits_step") or {})}, key=lambda m: (sizes.get(m, 0.0), m)
    )
    rows, any_threshold = [], False
    for e in view.entries:
        fits = e.get("fits_step") or {}
        if not fits:
            continue
        cells = []
        for m in members:
            fit = fits.get(m) or {}
            thr = fit.get("threshold") or {}
            if fit.get("status") != "ok":
                cells.append("<span class='muted'>–</span>")
            elif fit.get("best") in ("sigmoid", "hinge") and thr.get("x0") is not None:
                any_threshold = True
                ci = thr.get("ci")
                ci_text = f" [{fmt_num(ci[0])}, {fmt_num(ci[1])}]" if ci and None not in ci else ""
                cells.append(f"{esc(fmt_num(thr['x0'], 3))}{esc(ci_text)}")
            else:
                cells.append(f"<span class='muted'>{esc(fit.get('best') or '–')}</span>")
        rows.append([esc(e["metric"]), *cells])
    if not any_threshold:
        return ""
    return (
        "<details><summary>When each size jumps during training (step x₀ of the fit over checkpoints)"
        "</summary><p class='muted'>Step x₀ [CI] where a sigmoid or hinge over training steps beats a "
        "straight line in log steps; otherwise the chosen model (a line: no jump).</p>"
        + table(["metric", *(esc(m) for m in members)], rows, numeric=range(1, len(members) + 1))
        + "</details>"
    )


def _passuntil_text(pu: dict[str, Any] | None) -> str:
    """PassUntil (Hu et al. 2023): is log(−log PU) linear in log N, or concave ("accelerated")?"""
    if not pu or pu.get("status") != "ok":
        return ""
    shape = "concave: accelerated emergence" if pu.get("accelerated") else "no significant acceleration"
    return (
        f"PassUntil fit log(−log PU) = log c − α·log N: α = {esc(fmt_num(pu.get('alpha')))}, "
        f"R² = {esc(fmt_num(pu.get('r2')))}, curvature {esc(fmt_num(pu.get('curvature')))} ({shape})"
    )


def _verdict_html(view: TaskView, has_analysis: bool) -> str:
    if view.verdict is None:
        if has_analysis:
            return "<p class='muted'>The analysis has no verdict for this task.</p>"
        return "<p class='muted'>No verdict (no analysis.json).</p>"
    v = str(view.verdict.get("verdict", "inconclusive"))
    parts = [f"<p class='verdict'>{badge(v)} {esc(view.verdict.get('summary', ''))}</p>"]
    if view.mirage:
        outcome = view.mirage.get("outcome")
        explain = {
            "mirage": "the jump under the discontinuous metric does not survive a continuous metric — a "
            "metric-choice artefact (Schaeffer et al. 2023)",
            "robust": "the jump survives under a continuous metric",
            "no_jump": "no discontinuous metric jumps",
            "untested": "a discontinuous metric jumps but the task has no continuous metric to check it with",
        }.get(str(outcome), str(outcome))
        parts.append(
            f"<p><b>Metric-choice check</b>: {esc(explain)}. "
            f"<span class='muted'>{esc(view.mirage.get('reason', ''))}"
            "</span></p>"
        )
    reasons = []
    for e in view.entries:
        rs = [esc(r) for r in (e.get("verdict") or {}).get("reasons") or []]
        pu = _passuntil_text(e.get("passuntil"))
        if pu:
            rs.append(pu)
        if rs:
            items = "".join(f"<li>{r}</li>" for r in rs)
            reasons.append(
                f"<h4>{esc(e['metric'])}: {badge(str(e['verdict'].get('verdict')))}</h4>"
                f"<ul class='reasons'>{items}</ul>"
            )
    if reasons:
        parts.append(
            "<details><summary>Why: the criteria per metric</summary>" + "".join(reasons) + "</details>"
        )
    return "".join(parts)


# --- training ----------------------------------------------------------------------------------------------


def training_section(study: StudyData, sink: FigureSink) -> Section | None:
    """Training loss of every run from metrics.jsonl (None when no run logged a loss)."""
    curves: dict[str, list[pd.DataFrame]] = {}
    for r in study.runs:
        if {"step", "loss"} <= set(r.metrics.columns) and r.metrics["loss"].notna().any():
            curves.setdefault(r.member or r.run_id, []).append(r.metrics)
    if not curves:
        return None
    sizes = dict(sink.sizes)
    colors = dict(sink.colors)
    for m in curves:  # runs without results (e.g. failed early) still get a curve, in grey
        sizes.setdefault(m, 0.0)
        colors.setdefault(m, "#999999")
    fig = sink.add(
        plot_loss_curves(
            curves,
            colors,
            sizes,
            sink.out_dir,
            "training-loss",
            flops_per_token=flops_per_token(curve_rows(study.results)),
            svg=sink.svg,
        )
    )
    caption = (
        "Training loss logged in each run's metrics.jsonl (lightly smoothed), one colour per model size; the "
        "first seed of each size is drawn thicker. Right: the same against training FLOPs (flops per token "
        "from the result rows × tokens seen), where curves of different sizes can be compared at equal "
        "compute."
    )
    return Section(id="training", title="Training loss", html=figure_html(fig, caption))


# --- configuration and environment -------------------------------------------------------------------------


def config_section(study: StudyData) -> Section:
    """The resolved study config, verbatim."""
    if not study.config_text:
        return Section(
            id="config", title="Configuration", html="<p class='muted'>No study.yaml in this study.</p>"
        )
    return Section(
        id="config",
        title="Configuration",
        html=f"<p class='muted'>Resolved study config (study.yaml).</p><pre>{esc(study.config_text)}</pre>",
    )


def environment_section(study: StudyData) -> Section:
    """Environment now (render time) beside the one the study recorded when it ran."""
    now = environment.collect_environment()
    recorded = environment.normalize(study.recorded_environment)
    keys = list(dict.fromkeys([*now, *recorded]))
    rows = []
    for k in keys:
        rec = recorded.get(k)
        rec_text = esc(rec) if rec is not None else "<span class='muted'>–</span>"
        differs = rec is not None and k in now and str(rec) != now[k]
        rows.append(
            [
                esc(k),
                esc(now.get(k, "–")),
                rec_text + (" <span class='flag'>differs</span>" if differs else ""),
            ]
        )
    note = (
        ""
        if recorded
        else (
            "<p class='muted'>The study recorded no environment (environment.json); only render-time values "
            "are shown.</p>"
        )
    )
    return Section(
        id="environment",
        title="Environment",
        html=note + table(["", "when rendering (now)", "recorded by the study"], rows),
    )
