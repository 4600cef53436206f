"""The report's figures: scaling curves, training-step curves and training loss, drawn with matplotlib (Agg).

Conventions shared by every figure:
- one colour per model size, viridis by log parameter count (colour-blind safe, ordered light ↔ size), cut
  before viridis' pale yellow end so that the largest model stays visible on white;
- fits and thresholds in Okabe–Ito vermillion, which no viridis colour resembles;
- legends sit below the axes, so they never cover data;
- files are written atomically and byte-for-byte reproducibly (no timestamps in PNG/SVG metadata).
"""

from __future__ import annotations

import io as _io
import itertools
import math
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the report is rendered on servers and in CI

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    LogLocator,
    NullFormatter,
    NullLocator,
)

from emergence.io import write_bytes

FIT_COLOR = "#D55E00"  # Okabe–Ito vermillion
MEAN_COLOR = "#333333"
PNG_DPI = 130

# Fallback metric table for reports drawn without analysis.json (analysis.json's "metrics" table wins):
# all-or-nothing metrics are "discontinuous" (REFERENCES §2), the rest "continuous".
DISCONTINUOUS_METRICS = frozenset(
    {"exact_match", "accuracy", "accuracy_norm", "multiple_choice_grade", "pass_rate"}
)
# Metrics where smaller is better, so that axis labels can say so.
LOWER_IS_BETTER = frozenset({"edit_distance", "brier", "rank", "answer_rank", "choice_rank", "loss"})
# Axis labels with units, following the metric definitions in docs/evaluation.md.
_LABELS = {
    "exact_match": "exact match (fraction of items)",
    "accuracy": "accuracy (fraction of items)",
    "accuracy_norm": "length-normalised accuracy (fraction)",
    "multiple_choice_grade": "multiple-choice grade (fraction)",
    "pass_rate": "pass rate (fraction of items)",
    "token_accuracy": "token accuracy (fraction of tokens)",
    "edit_similarity": "edit similarity (1 − normalised distance)",
    "edit_distance": "edit distance (characters, normalised 0–1)",
    "answer_logprob": "answer log-probability (nats)",
    "answer_logprob_per_token": "answer log-prob per token (nats)",
    "prob_correct": "probability of the correct answer",
    "brier": "Brier score (0–2)",
    "rank": "rank of the correct answer (1 = best)",
    "loss": "loss (nats/token)",
}

_RC = {
    "font.size": 9.5,
    "axes.titlesize": 10.5,
    "axes.titleweight": "bold",
    "axes.labelsize": 9.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e4e4e4",
    "grid.linewidth": 0.6,
    "axes.edgecolor": "#888888",
    "legend.frameon": False,
    "legend.fontsize": 8.5,
    "svg.hashsalt": "emergence-report",  # stable element ids → reproducible SVG files
    "svg.fonttype": "none",
}


@dataclass(frozen=True)
class FitOverlay:
    """A fitted curve and its threshold, to draw over a scaling panel (x in the panel's own units)."""

    x: Sequence[float]
    y: Sequence[float]
    label: str = "fit"
    x0: float | None = None
    x0_lo: float | None = None
    x0_hi: float | None = None


@dataclass(frozen=True)
class FigureFile:
    """A figure written under figures/: PNG always, SVG when asked for, plus the alt text."""

    name: str
    png: Path
    svg: Path | None
    alt: str


def metric_kind(metric: str) -> str:
    """ "discontinuous" for all-or-nothing metrics (exact match, multiple-choice grade), else "continuous"."""
    return "discontinuous" if metric in DISCONTINUOUS_METRICS else "continuous"


def metric_label(metric: str, higher_is_better: bool | None = None) -> str:
    """Axis label with units for a metric name (unknown names are shown as they are)."""
    label = _LABELS.get(metric, metric.replace("_", " "))
    lower = (metric in LOWER_IS_BETTER) if higher_is_better is None else not higher_is_better
    label = f"{label}, lower is better" if lower else label
    # Two lines at most, so that a long label never runs into the neighbouring panel.
    return textwrap.fill(label, width=34, max_lines=2, placeholder="…")


def member_colors(n_params: Mapping[str, float]) -> dict[str, str]:
    """One hex colour per member, viridis by log parameter count (stable across every figure)."""
    cmap = matplotlib.colormaps["viridis"]
    if not n_params:
        return {}
    logs = {m: math.log10(max(float(n), 1.0)) for m, n in n_params.items()}
    lo, hi = min(logs.values()), max(logs.values())
    span = hi - lo
    # 0.0–0.85 of viridis: dark purple (smallest) to green-yellow (largest), skipping the palest end.
    return {m: to_hex(cmap(0.85 * ((v - lo) / span if span > 0 else 0.5))) for m, v in logs.items()}


def order_members(df: pd.DataFrame) -> list[str]:
    """Members ordered by parameter count, then name."""
    sizes = df.groupby("member")["n_params"].max()
    return sorted(sizes.index, key=lambda m: (float(sizes[m]), m))


def seed_ci(values: np.ndarray, stderr: np.ndarray | None = None) -> tuple[float, float, float]:
    """Mean and 95 % interval: Student t over seeds; with one seed, ±1.96 of its recorded standard error."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if values.size >= 2:
        half = _T975.get(values.size - 1, 1.96) * float(values.std(ddof=1)) / math.sqrt(values.size)
    elif stderr is not None and np.isfinite(stderr).any():
        half = 1.96 * float(np.nanmean(stderr))
    else:
        half = 0.0
    return mean, mean - half, mean + half


# Two-sided 95 % Student t quantiles by degrees of freedom (few seeds: the normal 1.96 would be too narrow).
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


@contextmanager
def _style() -> Iterator[None]:
    with plt.rc_context(_RC):
        yield


def save_figure(fig: Figure, out_dir: Path, name: str, alt: str, svg: bool = False) -> FigureFile:
    """Write `fig` as out_dir/name.png (and .svg) atomically and close it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    svg_path = None
    # The style again: savefig reads svg.hashsalt and svg.fonttype when it writes, not when drawing.
    with _style():
        buf = _io.BytesIO()
        # No Software/Date metadata: re-rendering the same study gives the same bytes.
        fig.savefig(buf, format="png", dpi=PNG_DPI, metadata={"Software": None})
        png = out_dir / f"{name}.png"
        write_bytes(png, buf.getvalue())
        if svg:
            buf = _io.BytesIO()
            fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
            svg_path = out_dir / f"{name}.svg"
            write_bytes(svg_path, buf.getvalue())
    plt.close(fig)
    return FigureFile(name=name, png=png, svg=svg_path, alt=alt)


def _grid(
    n_panels: int, max_cols: int = 3, panel_w: float = 4.1, panel_h: float = 3.1
) -> tuple[Figure, list, list]:
    """Panels in rows of up to `max_cols` (four panels as 2 × 2); spare slots stay hidden for the legend."""
    cols = 2 if n_panels == 4 else min(n_panels, max_cols)
    rows = math.ceil(n_panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(panel_w * cols, panel_h * rows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    return fig, flat[:n_panels], flat[n_panels:]


def _legend_below(fig: Figure, handles: list, spare: Sequence = (), ncol: int | None = None) -> None:
    """Legend in a spare panel slot if there is one, else under all panels: it never covers data."""
    if not handles:
        fig.tight_layout()
        return
    if spare:
        host = spare[0]
        host.set_visible(True)
        host.axis("off")
        host.legend(handles=handles, loc="center left", ncol=1 if len(handles) <= 9 else 2, handlelength=1.8)
        fig.tight_layout()
        return
    ncol = ncol or min(len(handles), 6)
    rows = math.ceil(len(handles) / ncol)
    legend_in = 0.15 + 0.2 * rows  # inches the legend needs
    w, h = fig.get_size_inches()
    fig.set_size_inches(w, h + legend_in)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, bbox_to_anchor=(0.5, 0.0), handlelength=1.8)
    fig.tight_layout(rect=(0, legend_in / (h + legend_in), 1, 1))


def _member_handles(members: Sequence[str], colors: Mapping[str, str], sizes: Mapping[str, float]) -> list:
    return [
        Line2D([], [], color=colors[m], marker="o", lw=1.6, label=f"{m} ({format_count(sizes[m])})")
        for m in members
    ]


def format_count(n: float) -> str:
    """12_300_000 → "12.3M": parameter and FLOP counts in labels."""
    if n is None or not math.isfinite(n):
        return "–"
    for div, unit in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:.3g}"


@dataclass(frozen=True)
class ScalingPanel:
    """One metric of one task against scale: per-seed points, mean with CI per member, optional fit."""

    metric: str
    kind: str  # "discontinuous" | "continuous"
    points_x: Sequence[float]
    points_y: Sequence[float]
    points_member: Sequence[str]
    x: Sequence[float]  # one entry per member, sorted by scale
    members: Sequence[str]
    mean: Sequence[float]
    ci_low: Sequence[float]
    ci_high: Sequence[float]
    fit: FitOverlay | None = None
    chance: float | None = None
    higher_is_better: bool | None = None  # None: the fallback metric table decides


def plot_scaling(
    panels: Sequence[ScalingPanel],
    task_title: str,
    colors: Mapping[str, str],
    sizes: Mapping[str, float],
    out_dir: Path,
    name: str,
    x: str = "n_params",
    ci_label: str = "95 % CI",
    svg: bool = False,
) -> FigureFile:
    """Metric vs scale for one task, a panel per metric: seeds, mean, CI band, fitted curve, x0 with CI."""
    xlabel = "parameters (log scale)" if x == "n_params" else "training FLOPs (log scale)"
    members = sorted({*(m for p in panels for m in p.members)}, key=lambda m: (float(sizes.get(m, 0.0)), m))
    with _style():
        fig, axes, spare = _grid(len(panels))
        drew_fit = drew_x0 = drew_chance = False
        for ax, p in zip(axes, panels, strict=True):
            px = np.asarray(p.points_x, float)
            py = np.asarray(p.points_y, float)
            pc = [colors.get(m, MEAN_COLOR) for m in p.points_member]
            ax.scatter(px, py, s=16, c=pc, alpha=0.55, lw=0, zorder=3)
            mx = np.asarray(p.x, float)
            lo = np.asarray(p.ci_low, float)
            hi = np.asarray(p.ci_high, float)
            ok = np.isfinite(lo) & np.isfinite(hi)
            if ok.any():
                ax.fill_between(mx[ok], lo[ok], hi[ok], color=MEAN_COLOR, alpha=0.12, lw=0, zorder=1)
            ax.plot(mx, np.asarray(p.mean, float), color=MEAN_COLOR, lw=1.3, zorder=2)
            ax.scatter(
                mx,
                np.asarray(p.mean, float),
                s=46,
                c=[colors.get(m, MEAN_COLOR) for m in p.members],
                edgecolors=MEAN_COLOR,
                linewidths=0.8,
                zorder=4,
            )
            fit = p.fit
            if fit is not None:
                if len(fit.x):
                    ax.plot(fit.x, fit.y, color=FIT_COLOR, lw=1.6, ls="--", zorder=5)
                    drew_fit = True
                if fit.x0 is not None and math.isfinite(fit.x0):
                    ax.axvline(fit.x0, color=FIT_COLOR, lw=1.1, ls=":", zorder=2)
                    if fit.x0_lo is not None and fit.x0_hi is not None:
                        ax.axvspan(fit.x0_lo, fit.x0_hi, color=FIT_COLOR, alpha=0.10, lw=0, zorder=0)
                    drew_x0 = True
            if p.chance is not None and math.isfinite(p.chance):
                ax.axhline(p.chance, color="#777777", lw=0.9, ls=(0, (4, 3)), zorder=1)
                drew_chance = True
            ax.set_xscale("log")
            # Keep the view on the data: a wide threshold CI is clipped rather than squashing the points.
            data_x = np.concatenate([px, mx])
            data_x = data_x[np.isfinite(data_x) & (data_x > 0)]
            if data_x.size:
                ax.set_xlim(data_x.min() / 1.6, data_x.max() * 1.6)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(metric_label(p.metric, p.higher_is_better))
            ax.set_title(f"{p.metric} · {p.kind}", loc="left")
        handles = _member_handles(members, colors, sizes)
        handles += [
            Line2D([], [], color=MEAN_COLOR, lw=1.3, label="mean over seeds"),
            Patch(color=MEAN_COLOR, alpha=0.15, label=ci_label),
        ]
        if drew_fit:
            handles.append(Line2D([], [], color=FIT_COLOR, lw=1.6, ls="--", label="fitted curve"))
        if drew_x0:
            handles.append(Line2D([], [], color=FIT_COLOR, lw=1.1, ls=":", label="threshold x₀ (shaded: CI)"))
        if drew_chance:
            handles.append(Line2D([], [], color="#777777", lw=0.9, ls=(0, (4, 3)), label="chance"))
        _legend_below(fig, handles, spare, ncol=min(len(handles), 5))
    metrics = ", ".join(p.metric for p in panels)
    alt = f"{task_title}: {metrics} against {xlabel.split(' (')[0]}, one point per seed"
    return save_figure(fig, out_dir, name, alt, svg=svg)


def log_axis_with_zero(ax: plt.Axes, values: Sequence[float]) -> bool:
    """Log x for positive values; a 0 among them gets a short linear stretch (symlog), with clear ticks.

    Returns whether a zero was placed on the linear stretch.
    """
    vals = np.asarray([v for v in values if math.isfinite(v)], float)
    positive = vals[vals > 0]
    if positive.size == 0:
        return False
    if not (vals <= 0).any():
        ax.set_xscale("log")
        return False
    first, last = float(positive.min()), float(positive.max())
    ax.set_xscale("symlog", linthresh=first, linscale=0.4)
    # Ticks at 0, the first positive value and powers of ten at least 2× beyond it: labels never collide.
    decades = range(math.ceil(math.log10(first * 2)), math.floor(math.log10(last)) + 1)
    ticks = [0.0, first, *(t for t in (10.0**k for k in decades) if t <= last)]
    if last >= 3 * ticks[-1]:
        # The last value, when no power of ten sits near it: at 2× (1000 and 2000 steps) the two labels
        # are 0.3 decades apart and run together in a report panel.
        ticks.append(last)
    distinct = sorted(set(positive.tolist()))
    if len(distinct) <= 8 and all(b >= 1.8 * a for a, b in itertools.pairwise(distinct)):
        ticks = [0.0, *distinct]  # few, well-spread values (checkpoints): label each one
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0f}" if v < 1e4 else format_count(v)))
    return True


def _step_axis(ax: plt.Axes, steps: pd.Series) -> None:
    """Log-spaced checkpoints on a log axis; step 0 (untrained) on a short linear stretch before them."""
    if log_axis_with_zero(ax, steps.tolist()):
        ax.set_xlabel("training step (log scale after the first checkpoint)")
    else:
        ax.set_xlabel("training step (log scale)")


def plot_training_curves(
    results: pd.DataFrame,
    task_title: str,
    metrics: Sequence[str],
    colors: Mapping[str, str],
    out_dir: Path,
    name: str,
    kinds: Mapping[str, str] | None = None,
    higher_is_better: Mapping[str, bool] | None = None,
    svg: bool = False,
) -> FigureFile:
    """Metric vs training step (checkpoints) for one task, a line per member (mean over seeds)."""
    kinds = kinds or {}
    higher_is_better = higher_is_better or {}
    members = order_members(results)
    sizes = results.groupby("member")["n_params"].max().to_dict()
    with _style():
        fig, axes, spare = _grid(len(metrics))
        for ax, metric in zip(axes, metrics, strict=True):
            df = results[results["metric"] == metric]
            for m in members:
                rows = df[df["member"] == m]
                if rows.empty:
                    continue
                for _, run in rows.groupby("run_id"):
                    run = run.sort_values("step")
                    ax.plot(run["step"], run["value"], color=colors[m], lw=0.7, alpha=0.35)
                mean = rows.groupby("step")["value"].mean()
                ax.plot(mean.index, mean.to_numpy(), color=colors[m], lw=1.8, marker="o", ms=3)
            _step_axis(ax, df["step"])
            ax.set_ylabel(metric_label(metric, higher_is_better.get(metric)))
            ax.set_title(f"{metric} · {kinds.get(metric, metric_kind(metric))}", loc="left")
        handles = _member_handles(members, colors, sizes)
        handles.append(Line2D([], [], color="#999999", lw=0.7, label="single seed"))
        _legend_below(fig, handles, spare)
    alt = f"{task_title}: {', '.join(metrics)} at each checkpoint, one line per model size"
    return save_figure(fig, out_dir, name, alt, svg=svg)


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average that keeps the length (edges use the points available)."""
    if window <= 1 or values.size < 3:
        return values
    kernel = np.ones(window)
    num = np.convolve(values, kernel, mode="same")
    den = np.convolve(np.ones_like(values), kernel, mode="same")
    return num / den


def plot_loss_curves(
    curves: Mapping[str, Sequence[pd.DataFrame]],
    colors: Mapping[str, str],
    sizes: Mapping[str, float],
    out_dir: Path,
    name: str,
    flops_per_token: Mapping[str, float] | None = None,
    svg: bool = False,
) -> FigureFile:
    """Training loss from metrics.jsonl against step and, where known, training FLOPs; a line per run."""
    flops_per_token = flops_per_token or {}
    members = sorted(curves, key=lambda m: (float(sizes.get(m, 0.0)), m))
    with_flops = any(m in flops_per_token for m in members)
    with _style():
        fig, axes, spare = _grid(2 if with_flops else 1, panel_w=5.4, panel_h=3.4)
        for m in members:
            for i, log in enumerate(curves[m]):
                log = log.dropna(subset=["step", "loss"]).sort_values("step")
                log = log[log["step"] > 0]
                if log.empty:
                    continue
                loss = smooth(log["loss"].to_numpy(float), max(1, len(log) // 40))
                kw = {"color": colors[m], "lw": 1.4 if i == 0 else 0.8, "alpha": 0.9 if i == 0 else 0.45}
                axes[0].plot(log["step"], loss, **kw)
                if with_flops and m in flops_per_token and "tokens_seen" in log:
                    axes[1].plot(log["tokens_seen"] * flops_per_token[m], loss, **kw)
        axes[0].set_xlabel("training step (log scale)")
        if with_flops:
            axes[1].set_xlabel("training FLOPs (log scale)")
        for ax in axes:
            ax.set_xscale("log")
            ax.set_yscale("log")
            # Plain numbers on the log loss axis ("2", "0.5"), not "2×10⁰".
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.set_ylabel("training loss (nats/token, log scale)")
        axes[0].set_title("loss vs step", loc="left")
        if with_flops:
            axes[1].set_title("loss vs compute", loc="left")
        _legend_below(fig, _member_handles(members, colors, sizes), spare)
    alt = "training loss of every run against step" + (" and training FLOPs" if with_flops else "")
    return save_figure(fig, out_dir, name, alt, svg=svg)
