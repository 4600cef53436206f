"""The study report: one self-contained report.html plus figures/, rendered from a study's saved files.

    from emergence.report import render_report
    render_report("runs/default")          # → runs/default/report.html, runs/default/figures/*.png

`emergence report STUDY_DIR` does the same from the command line; nothing is retrained or re-evaluated.
"""

from __future__ import annotations

from emergence.report.html import render_report
from emergence.report.mechanisms import MECHANISM_RENDERERS, render_mechanisms

__all__ = ["MECHANISM_RENDERERS", "render_mechanisms", "render_report"]
