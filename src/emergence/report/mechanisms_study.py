"""Renderers for `analysis.json["mechanisms"]` as written by `emergence.analysis.study_mechanisms`.

Registered under its top-level keys (`runs`, `phases`, `config`, `steps`): mechanism measures against scale
beside the ability curves, the same over training, a criticality table that says in words whether the
likelihood ratio favours a power law, head-score maps and attributions of the largest model, and the lag
between an ability's jump and each mechanism's change.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from emergence.report.components import FigureSink, esc, figure_html, fmt_num, table
from emergence.report.mechanisms import MECHANISM_RENDERERS
from emergence.report.plots import _grid, _legend_below, _style, format_count, save_figure

# summary field → (panel title, y label); the same fields are aligned with the ability curves (phases).
FIELDS: dict[str, tuple[str, str]] = {
    "max_induction": ("induction score (best head)", "attention to the token after the earlier copy"),
    "max_previous_token": ("previous-token score (best head)", "attention to the previous token"),
    "icl_score": ("in-context learning score", "late-token loss − early-token loss (nats)"),
    "tau_s": ("avalanche size exponent τ_S", "τ_S (dashed: shuffled null)"),
    "branching_m": ("branching ratio m (MR estimator)", "m (1 = critical)"),
    "chi_mean_rest": ("Jacobian χ (layers ≥ 1)", "mean squared singular value"),
}


def _color(sink: FigureSink, member: str) -> str:
    return sink.colors.get(member, "#444444")


def _present(runs: list[dict[str, Any]], field: str) -> bool:
    return any(isinstance(p["summary"].get(field), int | float) for r in runs for p in r["points"])


def _final(run: dict[str, Any]) -> dict[str, Any]:
    return (run.get("final") or {}).get("summary", {}) or {}


def _arch(run: dict[str, Any]) -> str:
    """The run's architecture as its measurement records it (GPT measurements predate the key)."""
    return str(((run.get("final") or {}).get("model") or {}).get("arch", "gpt"))


# Marker and mean-line style per architecture, so that same-sized GPTs and LSTMs stay apart.
ARCH_STYLE = {"gpt": ("o", "-"), "lstm": ("s", "--"), "lstm_vae": ("^", ":")}


def _scale_figure(runs: list[dict[str, Any]], fields: list[str], sink: FigureSink) -> str:
    archs = sorted({_arch(r) for r in runs})
    with _style():
        fig, axes, spare = _grid(len(fields))
        for ax, field in zip(axes, fields, strict=True):
            by_member: dict[tuple[str, str], list[float]] = defaultdict(list)
            xs: dict[str, float] = {}
            for run in runs:
                v = _final(run).get(field)
                if not isinstance(v, int | float) or not run.get("n_params"):
                    continue
                marker = ARCH_STYLE.get(_arch(run), ("D", "-."))[0]
                by_member[_arch(run), run["member"]].append(float(v))
                xs[run["member"]] = float(run["n_params"])
                ax.plot(run["n_params"], v, marker, ms=3.5, color=_color(sink, run["member"]), alpha=0.6)
                if field == "tau_s":
                    nv = _final(run).get("null_tau_s")
                    if isinstance(nv, int | float):
                        ax.plot(run["n_params"], nv, "x", ms=4, color=_color(sink, run["member"]), alpha=0.6)
            for arch in archs:  # one mean line per architecture
                members = sorted((m for a, m in by_member if a == arch), key=lambda m: xs[m])
                if members:
                    ax.plot(
                        [xs[m] for m in members],
                        [np.mean(by_member[arch, m]) for m in members],
                        ARCH_STYLE.get(arch, ("D", "-."))[1],
                        color="#333",
                        lw=1.2,
                    )
            if field == "branching_m" or field == "chi_mean_rest":
                ax.axhline(1.0, color="#999", ls=":", lw=1)
            ax.set_xscale("log")
            ax.set_title(FIELDS[field][0], loc="left", fontsize=9.5)
            ax.set_ylabel(FIELDS[field][1], fontsize=8)
            ax.set_xlabel("parameters (log scale)")
        arch_of_member = {r["member"]: _arch(r) for r in runs}
        handles = [
            Line2D(
                [],
                [],
                color=_color(sink, m),
                marker=ARCH_STYLE.get(arch_of_member[m], ("D", "-."))[0],
                ls="",
                label=f"{m} ({format_count(sink.sizes.get(m, math.nan))})",
            )
            for m in sorted(arch_of_member, key=lambda m: sink.sizes.get(m, 0))
        ]
        if len(archs) > 1:
            handles += [
                Line2D(
                    [], [], color="#333", ls=ARCH_STYLE.get(a, ("D", "-."))[1], label=f"mean over seeds, {a}"
                )
                for a in archs
            ]
        else:
            handles.append(Line2D([], [], color="#333", label="mean over seeds"))
        if "tau_s" in fields:
            handles.append(Line2D([], [], color="#666", marker="x", ls="", label="τ_S of the shuffled null"))
        _legend_below(fig, handles, spare)
        f = sink.add(
            save_figure(fig, sink.out_dir, "mech-scale", "mechanism measures against scale", sink.svg)
        )
    return figure_html(
        f,
        "Mechanism measures of each run's final checkpoint against parameters (dots: seeds; line: mean, "
        "one per architecture, whose marker tells GPTs (circles) from LSTMs (squares)). "
        "Dotted lines mark the critical value 1 for m and χ.",
    )


def _training_figure(runs: list[dict[str, Any]], fields: list[str], sink: FigureSink) -> str:
    with _style():
        fig, axes, spare = _grid(len(fields))
        for ax, field in zip(axes, fields, strict=True):
            for run in runs:
                pts = [(p["step"], p["summary"].get(field)) for p in run["points"]]
                pts = [(s, v) for s, v in pts if isinstance(v, int | float)]
                if len(pts) < 2:
                    continue
                s, v = zip(*pts, strict=True)
                ax.plot([x + 1 for x in s], v, "-", lw=1.1, color=_color(sink, run["member"]), alpha=0.85)
            ax.set_xscale("log")
            ax.set_title(FIELDS[field][0], loc="left", fontsize=9.5)
            ax.set_xlabel("training step + 1 (log scale)")
        handles = [
            Line2D([], [], color=_color(sink, m), label=m)
            for m in sorted({r["member"] for r in runs}, key=lambda m: sink.sizes.get(m, 0))
        ]
        _legend_below(fig, handles, spare)
        f = sink.add(
            save_figure(fig, sink.out_dir, "mech-training", "mechanism measures over training", sink.svg)
        )
    return figure_html(
        f, "The same measures at every saved checkpoint, one line per run (colour: model size)."
    )


def _head_maps(run: dict[str, Any], sink: FigureSink) -> str:
    heads = (run.get("final") or {}).get("heads") or {}
    maps = [
        (k, heads[k]) for k in ("previous_token", "induction", "duplicate_token", "copying") if heads.get(k)
    ]
    if not maps:
        return ""
    with _style():
        fig, axes = plt.subplots(1, len(maps), figsize=(3.2 * len(maps), 2.8), squeeze=False)
        for ax, (name, m) in zip(axes[0], maps, strict=True):
            arr = np.array(m, dtype=float)
            lo, hi = (-1.0, 1.0) if name == "copying" else (0.0, 1.0)
            im = ax.imshow(
                arr, vmin=lo, vmax=hi, cmap="RdBu_r" if name == "copying" else "viridis", aspect="auto"
            )
            ax.set_title(name.replace("_", " "), fontsize=9.5, loc="left")
            ax.set_xlabel("head")
            ax.set_ylabel("layer")
            ax.set_xticks(range(arr.shape[1]))
            ax.set_yticks(range(arr.shape[0]))
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        fig.tight_layout()
        f = sink.add(
            save_figure(fig, sink.out_dir, "mech-heads", "head scores of the largest model", sink.svg)
        )
    return figure_html(
        f,
        f"Head scores of {esc(run['member'])} (seed {run['seed']}), final checkpoint, on [BOS, r, r] random "
        "tokens (REFERENCES §7); copying is the eigenvalue positivity of W_U W_O W_V W_E (−1 to 1).",
    )


# Summary fields of the criticality measurements; a study that turned them off has none of them.
CRITICALITY_KEYS = (
    "tau_s",
    "null_tau_s",
    "size_verdict",
    "crackling_error",
    "branching_m",
    "chi_mean_rest",
    "apjn_shape",
)


def _criticality_table(runs: list[dict[str, Any]]) -> str:
    rows, favoured, judged = [], 0, 0
    for run in sorted(runs, key=lambda r: (r.get("n_params") or 0, r["seed"])):
        s = _final(run)
        verdict = s.get("size_verdict")
        if verdict in ("power_law", "rejected", "undecided"):
            judged += 1
            favoured += verdict == "power_law"
        m, se = s.get("branching_m"), s.get("branching_m_stderr")
        rows.append(
            [
                esc(run["member"]),
                str(run["seed"]),
                fmt_num(s.get("tau_s")),
                fmt_num(s.get("null_tau_s")),
                esc(verdict or "–"),
                fmt_num(s.get("crackling_error")),
                f"{fmt_num(m)} ± {fmt_num(se)}" if isinstance(m, int | float) else "–",
                fmt_num(s.get("chi_mean_rest")),
                esc(s.get("apjn_shape") or "–"),
            ]
        )
    if not judged:
        words = "No avalanche distribution could be fitted (too few events or no MLPs)."
    elif favoured == 0:
        words = (
            f"The likelihood ratio favours a power law in none of the {judged} runs: no evidence of critical "
            "avalanches here (power laws also arise without criticality; the shuffled null is shown beside)."
        )
    else:
        words = (
            f"The likelihood ratio favours a power law over the alternatives in {favoured} of {judged} runs."
        )
    headers = ["member", "seed", "τ_S", "τ_S null", "size law", "crackling error", "m", "χ", "APJN growth"]
    return f"<p>{esc(words)}</p>" + table(headers, rows, numeric=(2, 3, 5, 6, 7))


def _attributions(run: dict[str, Any]) -> str:
    attr = (run.get("final") or {}).get("attribution") or {}
    parts = []
    for task, items in attr.items():
        for item in items[:2]:
            if isinstance(item, dict) and item.get("html"):
                parts.append(f"<div><b>{esc(task)}</b> {item['html']}</div>")
    if not parts:
        return ""
    return (
        "<h4>Attribution (largest model)</h4><p class='muted'>Integrated gradients of the answer's "
        "log-probability with respect to each prompt token's embedding; red raises it, blue lowers it.</p>"
        + "".join(parts)
    )


@MECHANISM_RENDERERS.register("runs")
def render_runs(_key: str, runs: list[dict[str, Any]], sink: FigureSink) -> str:
    """Mechanism measures across scale and training, criticality, head maps, attribution."""
    if not runs:
        return "<p class='muted'>No run had checkpoints to measure.</p>"
    fields = [f for f in FIELDS if _present(runs, f)]
    parts = []
    if fields:
        parts.append(_scale_figure(runs, fields, sink))
        if any(len(r["points"]) > 1 for r in runs):
            parts.append(_training_figure(runs, fields, sink))
    if any(_final(r).get(k) is not None for r in runs for k in CRITICALITY_KEYS):
        parts.append("<h4>Criticality (final checkpoints)</h4>" + _criticality_table(runs))
    parts.append(_skipped_html(runs))
    # Head maps and attributions come from the largest model that has them (an LSTM has no heads).
    with_heads = [r for r in runs if "heads" in (r.get("final") or {})] or runs
    largest = max(with_heads, key=lambda r: (r.get("n_params") or 0, -r["seed"]))
    parts.append(_head_maps(largest, sink))
    parts.append(_attributions(largest))
    return "".join(parts)


def _skipped_html(runs: list[dict[str, Any]]) -> str:
    """Which parts were not measured on which members (recurrent runs), and why."""
    members: dict[tuple[str, str], list[str]] = defaultdict(list)
    for run in runs:
        for part, reason in ((run.get("final") or {}).get("skipped") or {}).items():
            if run["member"] not in members[part, reason]:
                members[part, reason].append(run["member"])
    if not members:
        return ""
    items = "".join(
        f"<li><b>{esc(part)}</b> on {esc(', '.join(ms))}: {esc(reason)}</li>"
        for (part, reason), ms in sorted(members.items())
    )
    return f"<h4>Not measured</h4><ul class='muted'>{items}</ul>"


@MECHANISM_RENDERERS.register("phases")
def render_phases(_key: str, phases: list[dict[str, Any]], sink: FigureSink) -> str:
    """The step of each ability jump beside the change points of the loss and each mechanism."""
    if not phases:
        return (
            "<p class='muted'>No phase alignment. It needs mechanisms measured at every checkpoint "
            "(<code>emergence analyze --mechanisms --mechanisms-steps all</code>) and a task scored by an "
            "all-or-nothing metric (exact match or choice accuracy) to align them with; the "
            "<i>training phases</i> view aligns mechanisms with the loss instead.</p>"
        )
    fields = sorted({f for p in phases for f in p["alignments"]})
    rows = []
    for p in phases:
        main = max(p["ability_change_points"], key=lambda c: abs(c["jump"]), default=None)
        loss = ", ".join(str(c["step"]) for c in p["loss_change_points"][:4]) or "–"
        lags = []
        for f in fields:
            a = (p["alignments"].get(f) or {}).get("main")
            lags.append(f"{fmt_num(a['mechanism_step'])} ({a['lag_steps']:+g})" if a else "–")
        rows.append(
            [
                esc(p["member"]),
                str(p["seed"]),
                esc(p["task"]),
                esc(p["metric"]),
                str(main["step"]) if main else "–",
                loss,
                *lags,
            ]
        )
    headers = ["member", "seed", "task", "ability", "ability jump at step", "loss change points", *fields]
    return (
        "<p>Change points (ruptures) on each run's checkpoint curves. Mechanism columns give the step of the "
        "mechanism's largest change and, in brackets, the lag: ability step − mechanism step (positive: the "
        "mechanism changed first).</p>" + table([esc(h) for h in headers], rows)
    )


@MECHANISM_RENDERERS.register("config")
def render_config(_key: str, cfg: dict[str, Any], _sink: FigureSink) -> str:
    """The measurement settings, folded."""
    items = ", ".join(f"{esc(k)}={esc(v)}" for k, v in cfg.items())
    return f"<details><summary>Measurement settings</summary><p class='muted'>{items}</p></details>"


@MECHANISM_RENDERERS.register("steps")
def render_steps(_key: str, steps: str, _sink: FigureSink) -> str:
    """Which checkpoints were measured."""
    what = "every saved checkpoint" if steps == "all" else "the final checkpoint of each run"
    return f"<p class='muted'>Measured on {what}.</p>"
