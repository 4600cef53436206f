"""Small HTML building blocks shared by the report's sections: escaping, number formats, tables, figures.

Everything here returns HTML strings; every value from a study is escaped on the way in. Figures are embedded
as base64 PNG data URIs so that the page works offline, opened straight from disk.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emergence.report.plots import FigureFile


def esc(value: Any) -> str:
    """HTML-escape any value's string form."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt_num(value: Any, digits: int = 3) -> str:
    """A number for a table cell: 3 significant digits, scientific beyond 1e5; None/NaN → an en dash."""
    if value is None or isinstance(value, bool):
        return "–" if value is None else str(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(v):
        return "–"
    if v.is_integer() and abs(v) < 1e5:
        return f"{int(v):,}"  # counts (steps, seeds) read better whole: "1,000", not "1e+03"
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.{max(digits - 1, 0)}e}"
    if abs(v) >= 1:
        # Fixed point with `digits` significant digits: 1234.5 → "1,234", 12.34 → "12.3".
        decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
        return f"{v:,.{decimals}f}"
    return f"{v:.{digits}g}"


def fmt_duration(seconds: float | None) -> str:
    """1234.5 → "20 min 35 s"."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {s} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = (), cls: str = ""
) -> str:
    """A table; cells are trusted HTML (escape values first), `numeric` columns right-aligned."""
    num = set(numeric)
    head = "".join(
        f'<th class="num">{h}</th>' if i in num else f"<th>{h}</th>" for i, h in enumerate(headers)
    )
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{c}</td>' if i in num else f"<td>{c}</td>" for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    cls_attr = f' class="{cls}"' if cls else ""
    return (
        f'<div class="table-wrap"><table{cls_attr}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def badge(text: str, kind: str | None = None) -> str:
    """A coloured pill (verdicts, run states); the text always says what the colour means."""
    return f'<span class="badge {esc(kind or text)}">{esc(text)}</span>'


def figure_html(fig: FigureFile, caption: str = "") -> str:
    """<figure> with the PNG embedded as a data URI."""
    data = base64.b64encode(fig.png.read_bytes()).decode("ascii")
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return (
        f'<figure id="fig-{esc(fig.name)}"><img src="data:image/png;base64,{data}" alt="{esc(fig.alt)}">{cap}'
        "</figure>"
    )


@dataclass
class FigureSink:
    """Where sections write their figures (figures/), and the list of what was written."""

    out_dir: Path
    svg: bool = False
    colors: dict[str, str] = field(default_factory=dict)  # member → colour, shared by every figure
    sizes: dict[str, float] = field(default_factory=dict)  # member → parameter count
    written: list[FigureFile] = field(default_factory=list)

    def add(self, fig: FigureFile) -> FigureFile:
        """Record a written figure and return it."""
        self.written.append(fig)
        return fig


@dataclass(frozen=True)
class Section:
    """A top-level report section: anchor id, title for the table of contents, HTML body."""

    id: str
    title: str
    html: str
