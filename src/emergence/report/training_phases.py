"""Renderer for `analysis.json["mechanisms"]["training_phases"]` (`emergence.analysis.training_phases`).

Drawn whenever a study measured its runs at every checkpoint: per model (member), the induction score, the
ICL score and the training loss over training with each curve's main change point marked, the head-score
maps of the final checkpoints, and one sentence per run with its max induction score, ICL score and the lag
between the phase changes (Olsson et al. 2022, REFERENCES §7).
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from emergence.report.components import FigureSink, esc, figure_html, fmt_num, table
from emergence.report.mechanisms import MECHANISM_RENDERERS
from emergence.report.plots import _style, save_figure

# curve → (panel title, y label, colour of its change-point marker)
PANELS: dict[str, tuple[str, str, str]] = {
    "max_induction": ("induction score (best head)", "score", "#1b7837"),
    "icl_score": ("in-context learning score", "late − early token loss (nats)", "#2166ac"),
    "loss": ("training loss", "nats per token", "#b2182b"),
}
SEED_STYLES = ("-", "--", ":", "-.")


def _members(entries: list[dict[str, Any]]) -> list[str]:
    """Members in order of depth (then name): the 1-layer model first."""
    order = {e["member"]: (e.get("n_layer") or 0, e["member"]) for e in entries}
    return sorted(order, key=lambda m: order[m])


def _curves_figure(entries: list[dict[str, Any]], sink: FigureSink) -> str:
    members = _members(entries)
    seeds = sorted({e["seed"] for e in entries})
    with _style():
        fig, axes = plt.subplots(
            len(members), len(PANELS), figsize=(4.0 * len(PANELS), 2.5 * len(members) + 0.6), squeeze=False
        )
        for row, member in zip(axes, members, strict=True):
            runs = [e for e in entries if e["member"] == member]
            for ax, (name, (title, ylabel, color)) in zip(row, PANELS.items(), strict=True):
                for e in runs:
                    ls = SEED_STYLES[seeds.index(e["seed"]) % len(SEED_STYLES)]
                    pts = [
                        (s, v) for s, v in zip(e["steps"], e["curves"][name], strict=True) if v is not None
                    ]
                    if pts:
                        ax.plot(*zip(*pts, strict=True), ls, color="#333", lw=1.1)
                    main = e["main"].get(name)
                    if main is not None:
                        ax.axvline(main["step"], color=color, ls=ls, lw=1.2, alpha=0.8)
                ax.set_title(f"{member}: {title}", loc="left", fontsize=9.5)
                ax.set_ylabel(ylabel, fontsize=8)
                ax.set_xlabel("training step")
        handles = [
            Line2D([], [], color="#333", ls=SEED_STYLES[i % 4], label=f"seed {s}")
            for i, s in enumerate(seeds)
        ]
        handles += [
            Line2D([], [], color=c, lw=1.2, label=f"main change point: {PANELS[n][0].split(' (')[0]}")
            for n, (_, _, c) in PANELS.items()
        ]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), frameon=False, fontsize=8)
        fig.tight_layout(rect=(0, 0.06 if len(members) > 1 else 0.12, 1, 1))
        f = sink.add(
            save_figure(
                fig,
                sink.out_dir,
                "induction-phases",
                "induction score, ICL score and loss over training",
                sink.svg,
            )
        )
    return figure_html(
        f,
        "Per model (rows, by depth): the best head's induction score, the ICL score (loss at a late token "
        "minus at an early token) and the training loss at each checkpoint; vertical lines: each curve's "
        "main change point (ruptures), line style = seed. Olsson et al. (2022) see the three change together "
        "in models with ≥ 2 layers and not at all in 1-layer models.",
    )


def _head_maps(entries: list[dict[str, Any]], sink: FigureSink) -> str:
    first = {}
    for e in sorted(entries, key=lambda e: e["seed"]):
        if e.get("head_scores", {}).get("induction"):
            first.setdefault(e["member"], e)
    members = [m for m in _members(entries) if m in first]
    if not members:
        return ""
    kinds = ("previous_token", "induction")
    with _style():
        heights = [len(first[m]["head_scores"]["induction"]) for m in members]
        fig, axes = plt.subplots(
            len(members),
            len(kinds),
            figsize=(3.6 * len(kinds), 0.9 + 0.55 * sum(heights) + 0.5 * len(members)),
            squeeze=False,
            gridspec_kw={"height_ratios": heights},
        )
        im = None
        for row, member in zip(axes, members, strict=True):
            e = first[member]
            for ax, kind in zip(row, kinds, strict=True):
                arr = np.array(e["head_scores"].get(kind) or [[np.nan]], dtype=float)
                im = ax.imshow(arr, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
                ax.grid(False)
                for (i, j), v in np.ndenumerate(arr):
                    if np.isfinite(v):
                        ax.text(
                            j,
                            i,
                            f"{v:.2f}",
                            ha="center",
                            va="center",
                            fontsize=7,
                            color="w" if v < 0.6 else "k",
                        )
                ax.set_title(f"{member} (seed {e['seed']}): {kind.replace('_', '-')}", loc="left", fontsize=9)
                ax.set_xticks(range(arr.shape[1]))
                ax.set_yticks(range(arr.shape[0]))
                ax.set_xlabel("head", fontsize=8)
                ax.set_ylabel("layer", fontsize=8)
        fig.tight_layout(rect=(0, 0, 0.9, 1))
        if im is not None:  # one colour bar for every map, in the margin kept free above
            fig.colorbar(im, cax=fig.add_axes((0.92, 0.15, 0.02, 0.7)))
        f = sink.add(
            save_figure(
                fig, sink.out_dir, "induction-heads", "head scores of the final checkpoints", sink.svg
            )
        )
    return figure_html(
        f,
        "Previous-token and induction scores of every head (layer × head) at the final checkpoint, on "
        "[BOS, r, r] repeated random tokens (REFERENCES §7). An induction head in layer ≥ 1 needs a "
        "previous-token head in an earlier layer (K-composition).",
    )


def _step(v: Any) -> str:
    return f"step {v}" if isinstance(v, int | float) else "no change found"


def _lag(v: Any) -> str:
    return f"{v:+d}" if isinstance(v, int) else "–"


def sentence(e: dict[str, Any]) -> str:
    """One line per run: max induction score (and head), ICL score, and the lags between the phase changes."""
    f = e["final"]
    head = f.get("max_induction_head")
    where = f" (layer {head[0]}, head {head[1]})" if head else ""
    main = e["main"]
    rise = main.get("max_induction")
    lags = e["lags"]
    text = (
        f"{e['member']} (seed {e['seed']}): max induction score {fmt_num(f.get('max_induction'))}{where}, "
        f"ICL score {fmt_num(f.get('icl_score'))} nats, final loss {fmt_num(f.get('loss'))}. "
    )
    if rise is None:
        return text + "The induction score has no rising change point."
    loss, icl = main.get("loss"), main.get("icl_score")
    return text + (
        f"The induction score rises at step {rise['step']}; the loss falls at {_step(loss and loss['step'])} "
        f"(lag {_lag(lags.get('loss'))} steps) and the ICL score at {_step(icl and icl['step'])} "
        f"(lag {_lag(lags.get('icl_score'))} steps)."
    )


def _table(entries: list[dict[str, Any]]) -> str:
    rows = []
    for e in sorted(entries, key=lambda e: (e.get("n_layer") or 0, e["member"], e["seed"])):
        f, main = e["final"], e["main"]
        rise = main.get("max_induction")
        rows.append(
            [
                esc(e["member"]),
                esc(e.get("n_layer")),
                str(e["seed"]),
                fmt_num(f.get("max_induction")),
                fmt_num(f.get("max_previous_token")),
                fmt_num(f.get("icl_score")),
                fmt_num(f.get("loss")),
                str(rise["step"]) if rise else "–",
                _lag(e["lags"].get("loss")),
                _lag(e["lags"].get("icl_score")),
            ]
        )
    headers = [
        "member",
        "layers",
        "seed",
        "max induction",
        "max previous-token",
        "ICL score",
        "final loss",
        "induction rise (step)",
        "loss lag",
        "ICL lag",
    ]
    return table(headers, rows, numeric=range(1, 10))


@MECHANISM_RENDERERS.register("training_phases")
def render_training_phases(_key: str, entries: list[dict[str, Any]], sink: FigureSink) -> str:
    """Curves with change points per model, final head maps, a sentence and a table row per run."""
    if not entries:
        return (
            "<p class='muted'>No run was measured at enough checkpoints (<code>mechanisms.steps: all</code>) "
            "to find phase changes.</p>"
        )
    sentences = "".join(
        f"<li>{esc(sentence(e))}</li>"
        for e in sorted(entries, key=lambda e: (e.get("n_layer") or 0, e["member"], e["seed"]))
    )
    return (
        "<p>Phase changes within each run: change points (ruptures) of the best head's induction score, the "
        "ICL score and the training loss, on the checkpoints. Lag = step of the loss (ICL) change − step of "
        "the induction score's rise; its resolution is the checkpoint spacing.</p>"
        + _curves_figure(entries, sink)
        + f"<ul>{sentences}</ul>"
        + _table(entries)
        + _head_maps(entries, sink)
    )
