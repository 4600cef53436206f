"""The "Mechanisms" section: drawn only when analysis.json has a "mechanisms" key.

Extension point. `render_mechanisms(mechanisms, sink) -> Section` is the whole contract with the report. Each
top-level key of the mechanisms dict (e.g. "induction_heads", "criticality") becomes a subsection:

- if a renderer is registered under that key, it draws the subsection:

      from emergence.report.mechanisms import MECHANISM_RENDERERS

      @MECHANISM_RENDERERS.register("induction_heads")
      def _induction(key: str, value: Any, sink: FigureSink) -> str:
          fig = sink.add(my_plot(value, sink.out_dir, "mech-induction", svg=sink.svg))
          return figure_html(fig, "Induction score per head …")

  (the module holding it must be imported before rendering: list it in PLUGIN_MODULES, or import it yourself);
- otherwise a generic renderer shows it faithfully: scalars as a key/value table, lists of records as tables,
  `{"x": [...], "y": [...]}` series (or `{"x": [...], "series": {name: [...]}}`) as line plots, nested
  mappings as nested subsections.
"""

from __future__ import annotations

import importlib
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.ticker import FuncFormatter

from emergence.registry import Registry
from emergence.report.components import FigureSink, Section, esc, figure_html, fmt_num, table
from emergence.report.plots import (
    FIT_COLOR,
    MEAN_COLOR,
    _grid,
    _legend_below,
    _style,
    log_axis_with_zero,
    save_figure,
)

log = logging.getLogger(__name__)

MechanismRenderer = Callable[[str, Any, FigureSink], str]
MECHANISM_RENDERERS: Registry[MechanismRenderer] = Registry("mechanism renderer")

# Modules that register dedicated renderers, imported when a study has mechanisms (absent ones are skipped).
PLUGIN_MODULES: tuple[str, ...] = (
    "emergence.analysis.mechanisms",
    "emergence.analysis.study_mechanisms",
    "emergence.report.mechanisms_study",
    "emergence.report.grokking",
    "emergence.report.training_phases",
)

_MAX_ROWS = 60  # records shown per table; the rest are counted, and analysis.json has them all
_MAX_DEPTH = 3
_MAX_ITEMS = 4  # items of a nested list drawn before "… and N more"
_MAX_TEXT = 2000  # characters of a plain value shown
_MAX_FIGURES = 40  # generic figures per report, so that a huge mechanisms dict cannot bloat the page


def render_mechanisms(mechanisms: Mapping[str, Any], sink: FigureSink) -> Section:
    """The Mechanisms section: one subsection per key, by its registered renderer or the generic one."""
    _load_plugins()
    parts = [
        '<p class="muted">Mechanistic measurements recorded by the analysis (analysis.json, key '
        "<code>mechanisms</code>).</p>"
    ]
    for key, value in mechanisms.items():
        renderer = MECHANISM_RENDERERS.get(key) if key in MECHANISM_RENDERERS else None
        body = renderer(key, value, sink) if renderer else render_generic(key, value, sink)
        parts.append(f'<h3 id="mech-{esc(_slug(key))}">{esc(_title(key))}</h3>{body}')
    return Section(id="mechanisms", title="Mechanisms", html="".join(parts))


def _load_plugins() -> None:
    for name in PLUGIN_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as e:
            # A plugin that cannot load must not sink the report: its keys fall back to the generic view.
            log.warning("report: mechanism renderers in %s not loaded (%s); using the generic view", name, e)


def _title(key: str) -> str:
    return key.replace("_", " ").strip().capitalize()


def _slug(key: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-") or "x"


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool)


def _is_numbers(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(x is None or isinstance(x, int | float) for x in v)


def _is_series(v: Any) -> bool:
    """{"x": [...], "y": [...]} or {"x": [...], "series": {name: [...]}} with matching lengths."""
    if not isinstance(v, dict) or not _is_numbers(v.get("x")):
        return False
    n = len(v["x"])
    if _is_numbers(v.get("y")):
        return len(v["y"]) == n
    series = v.get("series")
    return (
        isinstance(series, dict)
        and bool(series)
        and all(_is_numbers(s) and len(s) == n for s in series.values())
    )


def _is_matrix(v: Any) -> bool:
    """A rectangular list of number lists (e.g. a layer × head score table)."""
    return (
        isinstance(v, list)
        and len(v) >= 2
        and all(_is_numbers(r) for r in v)
        and len({len(r) for r in v}) == 1
        and len(v[0]) >= 2
    )


def render_generic(key: str, value: Any, sink: FigureSink, depth: int = 0) -> str:
    """Show any JSON value: tables for scalars and records, plots for series and matrices, else nesting."""
    if _is_series(value):
        return _series_figure(key, value, sink)
    if _is_matrix(value):
        return _matrix_figure(key, value, sink)
    if isinstance(value, dict):
        scalars = {k: v for k, v in value.items() if _is_scalar(v) or (_is_numbers(v) and len(v) <= 8)}
        parts = []
        if scalars:
            rows = [(esc(k), esc(_cell(v))) for k, v in scalars.items()]
            parts.append(table(["quantity", "value"], rows, numeric=(1,)))
        for k, v in value.items():
            if k in scalars:
                continue
            if depth >= _MAX_DEPTH:
                parts.append(f"<p class='muted'>{esc(k)}: nested data (see analysis.json)</p>")
                continue
            parts.append(f"<h4>{esc(_title(k))}</h4>{render_generic(f'{key}-{k}', v, sink, depth + 1)}")
        return "".join(parts) or "<p class='muted'>(empty)</p>"
    if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
        return _records_view(key, value, sink, depth)
    if _is_numbers(value):
        if len(value) > 8:
            return _series_figure(key, {"x": list(range(len(value))), "y": value}, sink)
        return f"<p>{esc(', '.join(fmt_num(v) for v in value))}</p>"
    if isinstance(value, list) and any(isinstance(v, list | dict) for v in value):
        # Mixed or nested lists: the first few items, each in its own right.
        if depth >= _MAX_DEPTH:
            return f"<p class='muted'>a list of {len(value)} nested items (see analysis.json)</p>"
        parts = [
            f"<h4>item {i}</h4>{render_generic(f'{key}-{i}', v, sink, depth + 1)}"
            for i, v in enumerate(value[:_MAX_ITEMS])
        ]
        if len(value) > _MAX_ITEMS:
            parts.append(f"<p class='muted'>… and {len(value) - _MAX_ITEMS} more items in analysis.json.</p>")
        return "".join(parts)
    if isinstance(value, list | dict) and not value:
        return "<p class='muted'>(none)</p>"
    text = ", ".join(_cell(v) for v in value) if isinstance(value, list) else _cell(value)
    if len(text) > _MAX_TEXT:
        text = text[:_MAX_TEXT] + " … (truncated; see analysis.json)"
    return f"<p>{esc(text)}</p>"


def _cell(v: Any) -> str:
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return "–" if v is None else str(v)
    if isinstance(v, int | float):
        return fmt_num(v)
    if isinstance(v, list):
        return ", ".join(_cell(x) for x in v)
    return str(v)


# Keys that can serve as the x of a per-record series (in order of preference).
_X_KEYS = ("step", "x", "tokens_seen", "n_params", "fraction", "n_neurons", "layer")


def _record_label(record: dict[str, Any], i: int) -> str:
    """A short name for a record: its member and seed, else its run id or name, else its index."""
    if "member" in record:
        seed = record.get("seed")
        return f"{record['member']}" + (f" (seed {seed})" if seed is not None else "")
    for k in ("run_id", "name", "task", "id"):
        if isinstance(record.get(k), str | int):
            return str(record[k])
    return f"#{i}"


def _series_of(items: Any) -> tuple[str, list[float], dict[str, list[float]]] | None:
    """Records sharing a numeric x key → (x key, xs, {field: ys}), one level of nesting flattened."""
    if not (isinstance(items, list) and len(items) >= 2 and all(isinstance(r, dict) for r in items)):
        return None
    xkey = next((k for k in _X_KEYS if all(isinstance(r.get(k), int | float) for r in items)), None)
    if xkey is None:
        return None
    fields: dict[str, list[float]] = {}
    for i, r in enumerate(items):
        flat = {k: v for k, v in r.items() if k not in _X_KEYS}
        for k, v in list(flat.items()):
            if isinstance(v, dict):  # {"summary": {"max_induction": …}} → "max_induction"
                flat.pop(k)
                flat.update({sub: sv for sub, sv in v.items() if sub not in flat})
        for k, v in flat.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                fields.setdefault(k, [math.nan] * len(items))[i] = float(v)
    fields = {k: ys for k, ys in fields.items() if sum(math.isfinite(y) for y in ys) >= 2}
    return (xkey, [float(r[xkey]) for r in items], fields) if fields else None


def _records_view(key: str, records: Sequence[dict[str, Any]], sink: FigureSink, depth: int) -> str:
    """A list of records: scalars as a table, series as line plots, nested parts in folds."""
    parts = [_records_table(records)]
    nested_keys = list(dict.fromkeys(k for r in records for k, v in r.items() if not _is_scalar(v)))
    for field in nested_keys:
        series = [(_record_label(r, i), r, _series_of(r.get(field))) for i, r in enumerate(records)]
        if any(s is not None for _, _, s in series):
            parts.append(
                f"<h4>{esc(_title(field))}</h4>" + _records_series_figure(f"{key}-{field}", series, sink)
            )
            continue
        if depth >= _MAX_DEPTH:
            continue
        for i, (label, r, _) in enumerate(series[:_MAX_ITEMS]):
            if field in r:
                body = render_generic(f"{key}-{field}-{i}", r[field], sink, depth + 1)
                parts.append(
                    f"<details><summary>{esc(_title(field))}: {esc(label)}</summary>{body}</details>"
                )
        if len(records) > _MAX_ITEMS:
            parts.append(f"<p class='muted'>{esc(field)} of {len(records) - _MAX_ITEMS} more records: see "
                         "analysis.json.</p>")  # fmt: skip
    return "".join(parts)


Series = tuple[str, list[float], dict[str, list[float]]]  # (x key, xs, {field: ys})


def _records_series_figure(
    key: str, series: list[tuple[str, dict[str, Any], Series | None]], sink: FigureSink
) -> str:
    """One panel per measured field, one line per record (coloured by member where the record names one)."""
    if not _figure_budget_left(sink):
        return "<p class='muted'>series (see analysis.json)</p>"
    fields = list(dict.fromkeys(f for _, _, s in series if s for f in s[2]))[:9]
    xkey = next(s[0] for _, _, s in series if s)
    palette = [MEAN_COLOR, FIT_COLOR, "#3b528b", "#21918c", "#5ec962"]
    with _style():
        fig, axes, spare = _grid(len(fields), panel_w=3.9, panel_h=2.8)
        handles = {}
        for j, (label, record, s) in enumerate(series):
            if s is None:
                continue
            color = sink.colors.get(str(record.get("member")), palette[j % len(palette)])
            for ax, field in zip(axes, fields, strict=False):
                if field in s[2]:
                    (line,) = ax.plot(s[1], s[2][field], color=color, lw=1.4, marker="o", ms=2.5, label=label)
                    handles.setdefault(label, line)
        xs = [x for _, _, s in series if s for x in s[1]]
        positive = [x for x in xs if x > 0]
        for ax, field in zip(axes, fields, strict=False):
            if positive and max(positive) / min(positive) >= 10:  # log-spaced checkpoints, sizes
                log_axis_with_zero(ax, xs)
            ax.set_xlabel(xkey.replace("_", " "))
            ax.set_title(field.replace("_", " "), loc="left")
        _legend_below(fig, list(handles.values())[:12], spare)
    fig_file = sink.add(
        save_figure(fig, sink.out_dir, f"mech-{_slug(key)}", f"{_title(key)} per record", svg=sink.svg)
    )
    return figure_html(fig_file)


def _records_table(records: Sequence[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for r in records for k, v in r.items() if _is_scalar(v)))
    numeric = [
        i
        for i, c in enumerate(columns)
        if all(
            isinstance(r.get(c), int | float) and not isinstance(r.get(c), bool) for r in records if c in r
        )
    ]
    rows = [[esc(_cell(r.get(c))) for c in columns] for r in records[:_MAX_ROWS]]
    more = len(records) - _MAX_ROWS
    note = f"<p class='muted'>… and {more} more rows in analysis.json.</p>" if more > 0 else ""
    return table([esc(c) for c in columns], rows, numeric=numeric) + note


def _series_figure(key: str, value: dict[str, Any], sink: FigureSink) -> str:
    if not _figure_budget_left(sink):
        return f"<p class='muted'>a series of {len(value['x'])} points (see analysis.json)</p>"
    x = [math.nan if v is None else float(v) for v in value["x"]]
    series = value.get("series") or {value.get("label", key): value["y"]}
    positive = [v for v in x if math.isfinite(v) and v > 0]
    log_x = len(positive) == len(x) and max(positive) / min(positive) >= 100
    with _style():
        fig, (ax,), _ = _grid(1, panel_w=6.4, panel_h=3.2)
        colors = [MEAN_COLOR, FIT_COLOR, "#3b528b", "#21918c", "#5ec962"]
        handles = []
        for i, (name, ys) in enumerate(series.items()):
            y = [math.nan if v is None else float(v) for v in ys]
            (line,) = ax.plot(x, y, color=colors[i % len(colors)], lw=1.5, marker="o", ms=3, label=str(name))
            handles.append(line)
        if log_x:
            ax.set_xscale("log")
        ax.set_xlabel(str(value.get("xlabel", "x")))
        ax.set_ylabel(str(value.get("ylabel", _title(key.split("-")[-1]))))
        _legend_below(fig, handles if len(handles) > 1 else [])
    fig_file = sink.add(save_figure(fig, sink.out_dir, f"mech-{_slug(key)}", f"{_title(key)}", svg=sink.svg))
    return figure_html(fig_file, esc(str(value.get("caption", ""))))


def _figure_budget_left(sink: FigureSink) -> bool:
    return sum(f.name.startswith("mech-") for f in sink.written) < _MAX_FIGURES


def _matrix_figure(key: str, value: list[list[float | None]], sink: FigureSink) -> str:
    if not _figure_budget_left(sink):
        return f"<p class='muted'>a {len(value)} × {len(value[0])} matrix (see analysis.json)</p>"
    data = np.array([[np.nan if v is None else float(v) for v in row] for row in value])
    with _style():
        rows, cols = data.shape
        fig, (ax,), _ = _grid(1, panel_w=min(7.0, 2.0 + 0.35 * cols), panel_h=min(5.0, 1.4 + 0.3 * rows))
        im = ax.imshow(data, cmap="viridis", aspect="auto", interpolation="nearest")
        ax.grid(False)
        # Plain tick labels: the offset notation ("1e-6+9.9999e-1") is unreadable on near-constant maps.
        finite = data[np.isfinite(data)]
        digits = _digits(finite)
        fig.colorbar(im, ax=ax, shrink=0.85, format=FuncFormatter(lambda v, _: f"{v:.{digits + 1}g}"))
        if rows * cols <= 64:  # small maps: write each value in its cell
            mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
            for (r, c), v in np.ndenumerate(data):
                if np.isfinite(v):
                    color = "white" if v < mid else "black"  # dark viridis cells get light text
                    ax.text(c, r, f"{v:.{digits}g}", ha="center", va="center", fontsize=7.5, color=color)
        ax.set_xlabel("column (e.g. head)")
        ax.set_ylabel("row (e.g. layer)")
        if cols <= 16:
            ax.set_xticks(range(cols))
        if rows <= 16:
            ax.set_yticks(range(rows))
        fig.tight_layout()
    name = f"mech-{_slug(key)}"
    fig_file = sink.add(
        save_figure(fig, sink.out_dir, name, f"{_title(key)}: {rows} × {cols} matrix", svg=sink.svg)
    )
    return figure_html(fig_file)


def _digits(values: np.ndarray) -> int:
    """Significant digits that tell the values apart: 2, more when they differ only far after the point."""
    if values.size < 2:
        return 2
    spread = float(values.max() - values.min())
    scale = float(np.abs(values).max())
    if spread <= 0 or scale <= 0:
        return 2
    return int(min(6, 2 + max(0, math.ceil(math.log10(scale / spread)) - 1)))
