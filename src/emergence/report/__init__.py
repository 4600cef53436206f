"""The study report: one self-contained report.html plus figures/, rendered from a study's saved files.

    from emergence.report import render_report
    render_report("runs/default")          # → runs/default/report.html, runs/default/figures/*.png

`emergence report STUDY_DIR` does the same from the command line; nothing is retrained or re-evaluated.
`emergence.report.environment.collect_environment()` (no heavy imports) is what a study runner records in
STUDY_DIR/environment.json.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["MECHANISM_RENDERERS", "render_mechanisms", "render_report"]

# Loaded on first use: importing the package (e.g. for `environment`) must not pull in matplotlib.
_LAZY = {
    "render_report": "emergence.report.html",
    "render_mechanisms": "emergence.report.mechanisms",
    "MECHANISM_RENDERERS": "emergence.report.mechanisms",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emergence.report' has no attribute {name!r}")
