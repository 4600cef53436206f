"""The report's Emergence table: one row per task × metric with the analysis' numbers on the primary axis.

Threshold x0 with its CI, BIG-bench linearity and breakthroughness (clipped flag), the chosen fit and its
margin over a line, the verdict, and the error of predicting the largest model(s) from the smaller ones.
"""

from __future__ import annotations

from typing import Any

from emergence.report.components import Section, badge, esc, fmt_num, table
from emergence.report.data import StudyData
from emergence.report.plots import format_count
from emergence.report.views import AXIS_WORDS, TaskView


def emergence_table_section(study: StudyData, views: list[TaskView]) -> Section:
    """One row per task × metric with the analysis' numbers on the primary scale axis."""
    analysis = study.analysis
    if analysis is None:
        return Section(
            id="emergence",
            title="Emergence table",
            html="<p class='muted'>No analysis.json: thresholds, linearity, breakthroughness and verdicts "
            "appear "
            "after <code>emergence analyze</code>.</p>",
        )
    axis = str((analysis.get("axes") or {}).get("primary", "n_params"))
    rows = []
    for view in views:
        for e in view.entries:
            rows.append(_entry_row(view, e, axis))
    parts = [
        f"<p>Measured on the primary scale axis (<b>{esc(AXIS_WORDS.get(axis, axis))}</b>) at each run's "
        "final step. <i>Threshold</i>: x₀ of the sigmoid or hinge fit, with its bootstrap CI over seeds. "
        "<i>L</i> and "
        "<i>B</i>: BIG-bench linearity and breakthroughness of the normalised mean scores (equal steps give "
        "L = B = n − 1; B is clipped for a single jump). <i>Fit</i>: the model chosen by the information "
        "criterion and its margin over a straight line. <i>Prediction error</i>: the largest member(s) "
        "predicted from a fit "
        "to the smaller ones.</p>"
    ]
    if rows:
        parts.append(
            table(
                [
                    "task",
                    "metric",
                    "kind",
                    f"threshold x₀ [CI] ({esc(AXIS_WORDS.get(axis, axis))})",
                    "L",
                    "B",
                    "fit (Δ vs line)",
                    "verdict",
                    "prediction error",
                ],
                rows,
                numeric=(3, 4, 5),
                cls="emergence",
            )
        )
    else:
        parts.append("<p class='muted'>analysis.json has no entries.</p>")
    warnings = analysis.get("warnings") or []
    if warnings:
        parts.append("<h3>Analysis warnings</h3><ul class='reasons'>")
        parts += [f"<li>{esc(w)}</li>" for w in warnings]
        parts.append("</ul>")
    return Section(id="emergence", title="Emergence table", html="".join(parts))


def _threshold_text(thr: dict[str, Any] | None) -> str:
    if not thr or thr.get("x0") is None:
        return "–"
    ci = thr.get("ci")
    # Scale values as counts ("310k", "4.2G"): a threshold and its CI read alike whatever their size.
    text = format_count(thr["x0"])
    if ci and ci[0] is not None and ci[1] is not None:
        text += f" [{format_count(ci[0])}, {format_count(ci[1])}]"
    text = esc(text)
    text += f" <span class='muted'>({esc(thr.get('model', ''))}"
    text += ", not the best fit)" if thr.get("from_best") is False else ")"
    return text + "</span>"


def _entry_row(view: TaskView, e: dict[str, Any], axis: str) -> list[str]:
    fit = (e.get("fits") or {}).get(axis) or {}
    bb = (e.get("bigbench") or {}).get(axis) or {}
    verdict = e.get("verdict") or {}
    thr = verdict.get("threshold") or fit.get("threshold")
    if fit.get("status") == "ok" and fit.get("best"):
        delta = fit.get("delta_vs_line")
        crit = str(fit.get("criterion", "aic")).upper()
        fit_text = esc(fit["best"]) + (
            f" <span class='muted'>(Δ{esc(crit)} {esc(fmt_num(delta, 3))})</span>"
            if fit["best"] != "line"
            else ""
        )
    else:
        fit_text = f"<span class='muted'>{esc(fit.get('status', '–'))}</span>"
    b_text = esc(fmt_num(bb.get("breakthroughness")))
    if bb.get("clipped"):
        b_text += "<span class='flag' title='a single jump: B is infinite and clipped'>clipped</span>"
    v = str(verdict.get("verdict", "–"))
    return [
        esc(view.label),
        esc(e["metric"]),
        esc(e.get("kind", "")),
        _threshold_text(thr),
        esc(fmt_num(bb.get("linearity"))),
        b_text,
        fit_text,
        badge(v) if v != "–" else "–",
        _prediction_text((e.get("prediction") or {}).get(axis)),
    ]


def _prediction_text(pred: dict[str, Any] | None) -> str:
    if not pred:
        return "–"
    if pred.get("status") != "ok":
        status = str(pred.get("status", "")).replace("_", " ")
        return f"<span class='muted' title='{esc(pred.get('reason') or status)}'>{esc(status)}</span>"
    xs = pred.get("x") or []
    members = pred.get("members") or []
    parts = []
    for i, err in enumerate(pred.get("abs_error") or []):
        # Name the held-out point by its member, else by its scale.
        who = members[i] if i < len(members) else (format_count(xs[i]) if i < len(xs) else f"#{i + 1}")
        measured = (pred.get("measured") or [None] * (i + 1))[i]
        predicted = (pred.get("predicted") or [None] * (i + 1))[i]
        inside = (pred.get("in_interval") or [None] * (i + 1))[i]
        mark = "" if inside is None else (" ✓" if inside else " ✗")
        where = "inside" if inside else "outside"
        parts.append(
            f"<span title='predicted {esc(fmt_num(predicted))}, measured {esc(fmt_num(measured))}; "
            f"{where} the prediction interval'>{esc(who)}: {esc(fmt_num(err))}{mark}</span>"
        )
    return "<br>".join(parts) or "–"
