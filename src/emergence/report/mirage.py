"""The report's metric-choice ("mirage") views of one task (Schaeffer et al. 2023, REFERENCES §2).

- `metric_comparison_html`: from analysis.json's `mirage` block, every metric of the task side by side:
  breakthroughness B, the chosen law and its R², the R² of the smooth law (a line in log scale), the
  threshold with its CI and the verdict: a jump under exact match read against its continuous counterparts.
- `length_html`: from `length_prediction`, the p^L answer-length check: agreement numbers, a figure
  (predicted against measured per member × seed × length; exact match against parameters with p^L
  overlaid) and the table.

Both appear when their data is in analysis.json, for any task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from emergence.report.components import FigureSink, badge, esc, figure_html, fmt_num, table
from emergence.report.plots import MEAN_COLOR, FigureFile, _style, format_count, save_figure

# Answer lengths in Okabe–Ito colours (distinct from the viridis member colours and from each other).
# Answer lengths with fewer test items than this (per member) are left out of the "against scale" panel.
MIN_ITEMS_DRAWN = 10
LENGTH_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#F0E442", "#D55E00", "#000000")


def metric_comparison_html(mirage: Mapping[str, Any] | None) -> str:
    """Each metric's B, chosen law and R², smooth-law R², threshold [CI] and verdict, in one table."""
    metrics = (mirage or {}).get("metrics") or []
    # The table sets an all-or-nothing metric against its continuous counterparts: without one, nothing.
    if not any(m.get("kind") == "discontinuous" for m in metrics):
        return ""
    rows = []
    for m in metrics:
        thr = m.get("threshold") or {}
        thr_text = "–"
        # Only a threshold of the chosen law: a sigmoid/hinge that lost to the line has no x0 worth showing.
        if thr.get("x0") is not None and thr.get("from_best", True):
            thr_text = format_count(thr["x0"])
            ci = thr.get("ci")
            if ci and None not in ci:
                thr_text += f" [{format_count(ci[0])}, {format_count(ci[1])}]"
        b = fmt_num(m.get("breakthroughness"))
        if m.get("clipped"):
            b += " (clipped)"
        # A compounding metric (the whole answer's probability) is set aside by the check: say so.
        kind = f"{m.get('kind')}, compounds (not a control)" if m.get("compounds") else m.get("kind")
        rows.append(
            [esc(m.get("metric")), esc(kind), esc(b), esc(m.get("best_fit") or "–"),
             esc(fmt_num(m.get("r2"))), esc(fmt_num(m.get("r2_line"))), esc(thr_text),
             badge(str(m.get("verdict")))]
        )  # fmt: skip
    return (
        "<h3>Exact match against its continuous counterparts</h3><p class='muted'>Breakthroughness B of the "
        "normalised mean scores (equal steps give n − 1), the law the information criterion chose and its R² "
        "on the per-seed points, the R² of the smooth law (a straight line in log parameters), and the "
        "threshold x₀ [CI] of the chosen sigmoid or hinge. A mirage: B and a threshold for the discontinuous "
        "metric, a smooth law that fits the continuous ones.</p>"
        + table(
            ["metric", "kind", "B", "chosen law", "R² (chosen)", "R² (line)", "threshold x₀ [CI]", "verdict"],
            rows,
            numeric=(2, 4, 5),
        )
    )


def length_html(predictions: Sequence[Mapping[str, Any]], sink: FigureSink, slug: str, label: str) -> str:
    """Exact match against answer length: measured vs p^L from per-token accuracy (Schaeffer et al. 2023)."""
    parts = [
        "<h3>Exact match against answer length</h3><p>If per-token accuracy p is all a model has and its "
        "token errors are independent, an L-token answer is exactly right with probability p<sup>L</sup>: "
        "measured exact match close to the prediction means the jump in exact match is the metric's doing "
        "(REFERENCES §2). Measured above predicted means errors cluster in the same answers.</p>"
    ]
    for i, lp in enumerate(predictions):
        a, pooled = lp.get("agreement") or {}, lp.get("pooled") or {}
        tok, em = esc(lp.get("token_metric")), esc(lp.get("em_metric"))
        if a:
            parts.append(
                f"<p>{em} against {tok}<sup>L</sup> over {esc(fmt_num(a.get('n_points')))} member × seed × "
                f"length points (weighted by items): <b>R² = {esc(fmt_num(a.get('r2')))}</b>, mean absolute "
                f"error {esc(fmt_num(a.get('mae')))}, largest {esc(fmt_num(a.get('max_abs_error')))}, bias "
                f"(measured − predicted) {esc(fmt_num(a.get('bias')))}. With one p per member and seed "
                f"pooled over all lengths: R² = {esc(fmt_num(pooled.get('r2')))}, mean absolute error "
                f"{esc(fmt_num(pooled.get('mae')))}.</p>"
            )
        else:  # an analysis.json written before the per-seed check
            parts.append(
                f"<p class='muted'>{em} vs {tok}<sup>L</sup>: mean absolute error "
                f"{esc(fmt_num(lp.get('mae')))}, largest {esc(fmt_num(lp.get('max_abs_error')))}</p>"
            )
        if lp.get("points"):
            name = f"length-{slug}" + (f"-{i}" if i else "")
            fig = sink.add(_plot_length(lp, sink.colors, sink, name, label))
            parts.append(
                figure_html(
                    fig,
                    f"{esc(label)}. Left: predicted p<sup>L</sup> against measured exact match, one point "
                    "per member × seed × answer length (colour: member; marker: length; size: items); the "
                    "diagonal is perfect agreement. Right: exact match against parameters for each answer "
                    "length (solid: measured, dashed: p<sup>L</sup>; means over seeds) and over the whole "
                    f"test set (grey); lengths with fewer than {MIN_ITEMS_DRAWN} test items per member are "
                    "drawn on the left only.",
                )
            )
        rows = [
            [esc(r.get("member")), esc(fmt_num(r.get("length"))), esc(fmt_num(r.get("n"))),
             esc(fmt_num(r.get("p"))), esc(fmt_num(r.get("predicted"))), esc(fmt_num(r.get("measured")))]
            for r in sorted(lp.get("rows") or [], key=lambda r: (r.get("x") or 0, r.get("length") or 0))
        ]  # fmt: skip
        parts.append(
            "<details><summary>Per member and length (means over seeds)</summary>"
            + table(
                ["member", "length L", "items", "p", "p^L (predicted)", "measured"],
                rows,
                numeric=(1, 2, 3, 4, 5),
            )
            + "</details>"
        )
    return "".join(parts)


def _plot_length(
    lp: Mapping[str, Any], colors: Mapping[str, str], sink: FigureSink, name: str, label: str
) -> FigureFile:
    """Two panels: predicted vs measured (per seed), and exact match vs parameters with p^L overlaid."""
    points = lp.get("points") or []
    lengths = sorted({int(p["length"]) for p in points})
    lcolor = {L: LENGTH_COLORS[i % len(LENGTH_COLORS)] for i, L in enumerate(lengths)}
    markers = dict(zip(lengths, "osD^vP*X", strict=False))
    n_max = max(float(p.get("n") or 1.0) for p in points)
    with _style():
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(9.6, 3.9))
        for p in points:
            ax.scatter(
                p["predicted"], p["measured"], s=12 + 60 * float(p.get("n") or 1.0) / n_max,
                color=colors.get(p["member"], MEAN_COLOR), marker=markers.get(int(p["length"]), "o"),
                alpha=0.8, edgecolor="white", linewidth=0.4,
            )  # fmt: skip
        ax.plot([0, 1], [0, 1], color=MEAN_COLOR, lw=0.8, ls=":")
        ax.set(
            xlim=(-0.03, 1.03), ylim=(-0.03, 1.03), xlabel="predicted $p^L$", ylabel="measured exact match"
        )
        r2 = (lp.get("agreement") or {}).get("r2")
        ax.set_title(f"per member × seed × length (R² = {fmt_num(r2)})", fontsize=9)

        rows = lp.get("rows") or []
        for L in lengths:
            rs = sorted((r for r in rows if int(r["length"]) == L), key=lambda r: r["x"])
            if np.mean([float(r.get("n") or 0.0) for r in rs]) < MIN_ITEMS_DRAWN:
                continue  # a handful of items: a line would be noise (still in the left panel and the table)
            x = [r["x"] for r in rs]
            bx.plot(x, [r["measured"] for r in rs], color=lcolor[L], marker=markers[L], lw=1.5, ms=4)
            bx.plot(x, [r["predicted"] for r in rs], color=lcolor[L], ls="--", lw=1.2)
        overall = sorted(lp.get("overall") or [], key=lambda r: r["x"])
        if overall:
            x = [r["x"] for r in overall]
            bx.plot(x, [r["measured"] for r in overall], color="#888888", lw=2.4, alpha=0.6)
            bx.plot(x, [r["predicted"] for r in overall], color="#888888", lw=1.6, ls="--", alpha=0.8)
        bx.set_xscale("log")
        bx.set(ylim=(-0.03, 1.03), xlabel="parameters", ylabel="exact match")
        bx.set_title("exact match and $p^L$ against scale", fontsize=9)
        handles = [
            Line2D([], [], color=lcolor[L], marker=markers[L], lw=1.5, label=f"L = {L}") for L in lengths
        ]
        handles += [
            Line2D([], [], color="#888888", lw=2.4, alpha=0.6, label="whole test set"),
            Line2D([], [], color=MEAN_COLOR, lw=1.5, label="measured"),
            Line2D([], [], color=MEAN_COLOR, lw=1.2, ls="--", label="predicted $p^L$"),
        ]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 7), bbox_to_anchor=(0.5, 0.0))
        fig.tight_layout(rect=(0, 0.09, 1, 1))
        alt = f"{label}: exact match against p^L per answer length"
    return save_figure(fig, sink.out_dir, name, alt, svg=sink.svg)
