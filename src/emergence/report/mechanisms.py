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
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from emergence.registry import Registry
from emergence.report.components import FigureSink, Section, esc, figure_html, fmt_num, table
from emergence.report.plots import FIT_COLOR, MEAN_COLOR, _grid, _legend_below, _style, save_figure

MechanismRenderer = Callable[[str, Any, FigureSink], str]
MECHANISM_RENDERERS: Registry[MechanismRenderer] = Registry("mechanism renderer")

# Modules that register dedicated renderers, imported when a study has mechanisms (absent ones are skipped).
PLUGIN_MODULES: tuple[str, ...] = ("emergence.analysis.mechanisms",)

_MAX_ROWS = 60  # records shown per table; the rest are counted, and analysis.json has them all
_MAX_DEPTH = 3


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
        except ModuleNotFoundError as e:
            if e.name is None or not name.startswith(e.name):
                raise  # the plugin exists but one of its imports is missing: that is a real error


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


def render_generic(key: str, value: Any, sink: FigureSink, depth: int = 0) -> str:
    """Show any JSON value: tables for scalars and records, plots for series, nesting for the rest."""
    if _is_series(value):
        return _series_figure(key, value, sink)
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
        return _records_table(value)
    if _is_numbers(value):
        if len(value) > 8:
            return _series_figure(key, {"x": list(range(len(value))), "y": value}, sink)
        return f"<p>{esc(', '.join(fmt_num(v) for v in value))}</p>"
    if isinstance(value, list):
        return f"<p>{esc(', '.join(_cell(v) for v in value))}</p>"
    return f"<p>{esc(_cell(value))}</p>"


def _cell(v: Any) -> str:
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return "–" if v is None else str(v)
    if isinstance(v, int | float):
        return fmt_num(v)
    if isinstance(v, list):
        return ", ".join(_cell(x) for x in v)
    return str(v)


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
