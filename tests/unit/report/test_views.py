"""Task sections from raw rows: keyed by task × shots × group, discontinuous metrics first, Student-t CIs."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from emergence.report.data import StudyData
from emergence.report.views import build_task_views, flops_per_token


def _study(rows: list[dict], tmp_path: Path) -> StudyData:
    df = pd.DataFrame(rows)
    return StudyData(
        study_dir=tmp_path, name="t", config={}, config_text="", results=df, results_sha256="0" * 64, runs=[],
        analysis=None,
    )  # fmt: skip


def _rows(**extra: object) -> list[dict]:
    rows = []
    for member, n in (("a", 1e4), ("b", 1e5), ("c", 1e6)):
        for seed, noise in ((0, -0.01), (1, 0.01)):
            for shots in (0, 3):
                for metric, value in (("token_accuracy", math.log10(n) / 10), ("exact_match", n / 2e6)):
                    rows.append(
                        {"run_id": f"{member}{seed}", "member": member, "n_params": n, "flops": 6 * n * 1000,
                         "tokens_seen": 1000, "seed": seed, "step": 100, "task": "add", "shots": shots,
                         "metric": metric, "value": value + noise, **extra}
                    )  # fmt: skip
    return rows


def test_views_split_by_shots_and_order_metrics(tmp_path: Path) -> None:
    views = build_task_views(_study(_rows(), tmp_path))
    assert [v.label for v in views] == ["add · 0-shot", "add · 3-shot"]
    v = views[0]
    assert v.metrics == ["exact_match", "token_accuracy"]  # discontinuous first
    assert v.kinds == {"exact_match": "discontinuous", "token_accuracy": "continuous"}
    assert set(v.panels) == {"n_params", "flops"} and v.ci_labels["n_params"].startswith("95% CI (Student t")
    panel = v.panels["n_params"][0]
    assert panel.members == ["a", "b", "c"] and len(panel.points_x) == 6
    # Two seeds at ±0.01: mean exact, half-width t(1) · s / √2 = 12.706 · 0.01414 / 1.414.
    assert panel.mean[1] == pytest.approx(1e5 / 2e6)
    assert panel.ci_high[1] - panel.mean[1] == pytest.approx(12.706 * 0.01, rel=1e-3)
    assert v.verdict is None and v.entries == []


def test_views_split_by_group_columns(tmp_path: Path) -> None:
    rows = _rows(family="gpt") + [{**r, "family": "lstm", "run_id": r["run_id"] + "x"} for r in _rows()]
    views = build_task_views(_study(rows, tmp_path))
    assert len(views) == 4
    assert views[0].key.group == (("family", "gpt"),) and "family=gpt" in views[0].label
    assert len({v.key.slug for v in views}) == 4  # distinct file names and anchors


def test_flops_per_token(tmp_path: Path) -> None:
    assert flops_per_token(pd.DataFrame(_rows())) == {"a": 6e4, "b": 6e5, "c": 6e6}
