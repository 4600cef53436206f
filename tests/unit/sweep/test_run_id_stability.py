"""Run ids are content hashes of the resolved run config: a new config field must not change existing ones.

A changed id makes every finished study retrain from scratch. Fields added after runs were first saved
(`train.objective`, `train.init_scale`, `data.generate`, `model.arch`) are left out of the resolved config
at their default; these ids were computed before any of them existed.
"""

from __future__ import annotations

from pathlib import Path

from emergence.studies import resolve_study
from emergence.sweep.config import load_study
from emergence.sweep.plan import eval_key_of, plan_study

# The default study as it was until December 2026 (five sizes, 600 steps): its ids were computed before
# any of the fields above existed, so it is the older guard.
FIRST_DEFAULT = Path(__file__).parents[2] / "fixtures" / "studies" / "default-v1.yaml"


def test_first_default_study_keeps_its_run_ids_and_eval_key() -> None:
    study = load_study(FIRST_DEFAULT)
    ids = [spec.run_id for spec in plan_study(study)]
    assert ids[:5] == ["3d9797ca3bee", "8bfcd96500fc", "716e5f460399", "1426ba9e80c1", "db2c01d8caa1"]
    assert len(ids) == 15
    assert eval_key_of(study) == "8bb1b002ae5a"


def test_default_study_keeps_its_run_ids_and_eval_key() -> None:
    study = load_study(resolve_study("default"))
    ids = [spec.run_id for spec in plan_study(study)]
    assert ids[:3] == ["0d6b474b8dd4", "d01710efb247", "faf3f543d2ad"]
    assert len(ids) == 27
    assert eval_key_of(study) == "8bb1b002ae5a"
