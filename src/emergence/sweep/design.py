"""Before anything trains: can this study's design see a jump at all?

The study's sizes (non-embedding parameter counts of the planned members), seeds per member and evaluation
items go through the same power simulation the analysis reports (`analysis/stability.py`, "Design power").
A design that cannot see a jump is still run (a user may want the curves), but it is told so up front, and
its verdict will say "inconclusive (design)" rather than "smooth".
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from emergence.analysis.settings import load_config
from emergence.analysis.stability import design_block
from emergence.sweep.config import StudyConfig
from emergence.sweep.plan import RunSpec

DEFAULT_ITEMS = 200  # EvalConfig.n_examples' default


def study_design(study: StudyConfig, specs: list[RunSpec]) -> dict[str, Any] | None:
    """The design block for a study's planned runs, or None when no member's size is known before training.

    Groups that the analysis keeps apart (architectures, budget multiples) are not separated here: the
    check reads the family as one ladder of sizes, which is what the scale verdict sees in a one-family study.
    """
    sizes = {s.member: s.n_params_non_embedding for s in specs if s.n_params_non_embedding}
    if not sizes:
        return None
    seeds = Counter(s.member for s in specs if s.member in sizes)
    n_seeds = min(seeds.values())
    n_items = int(study.eval.get("n_examples", DEFAULT_ITEMS) or DEFAULT_ITEMS)
    return design_block(list(sizes.values()), n_seeds, n_items, load_config(study.analysis))


def design_warning(study: StudyConfig, specs: list[RunSpec]) -> str | None:
    """One line for the user when the design cannot see a jump, else None."""
    block = study_design(study, specs)
    if block is None or block["status"] == "ok":
        return None
    return f"study {study.name!r}: this design cannot see a jump: " + "; ".join(block["reasons"])
