"""Report figures: valid, non-empty, reproducible PNG/SVG files; colours ordered by size; CI arithmetic."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from emergence.report.plots import (
    FitOverlay,
    ScalingPanel,
    format_count,
    log_axis_with_zero,
    member_colors,
    metric_kind,
    metric_label,
    plot_loss_curves,
    plot_scaling,
    plot_training_curves,
    seed_ci,
    smooth,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SIZES = {"a": 1e4, "b": 1e5, "c": 1e6}


def _assert_png(path: Path) -> np.ndarray:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5_000
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300
    # Not a blank canvas: a drawn figure has many distinct colours.
    assert len(np.unique(img.reshape(-1, img.shape[2]), axis=0)) > 20
    return img


def _panel(metric: str, fit: bool) -> ScalingPanel:
    xs = [1e4, 1e5, 1e6]
    overlay = FitOverlay(x=np.logspace(4, 6, 20), y=np.linspace(0, 1, 20), x0=1e5, x0_lo=5e4, x0_hi=2e5)
    return ScalingPanel(
        metric=metric,
        kind=metric_kind(metric),
        points_x=[x for x in xs for _ in range(2)],
        points_y=[0.0, 0.02, 0.3, 0.4, 0.9, 0.95],
        points_member=["a", "a", "b", "b", "c", "c"],
        x=xs,
        members=["a", "b", "c"],
        mean=[0.01, 0.35, 0.925],
        ci_low=[0.0, 0.3, 0.9],
        ci_high=[0.02, 0.4, 0.95],
        fit=overlay if fit else None,
        chance=0.0 if fit else None,
    )


def test_member_colors_follow_log_size_and_are_distinct() -> None:
    colors = member_colors({"big": 1e7, "small": 1e3, "mid": 1e5})
    assert len(set(colors.values())) == 3
    assert all(c.startswith("#") and len(c) == 7 for c in colors.values())
    # viridis runs dark → light: the smallest model is the darkest.
    lum = {m: sum(int(c[i : i + 2], 16) for i in (1, 3, 5)) for m, c in colors.items()}
    assert lum["small"] < lum["mid"] < lum["big"]
    assert member_colors({"only": 5e4})["only"].startswith("#")
    assert member_colors({}) == {}


def test_seed_ci_uses_student_t_over_seeds_and_stderr_for_one_seed() -> None:
    mean, lo, hi = seed_ci(np.array([1.0, 2.0, 3.0]))
    assert mean == pytest.approx(2.0)
    assert hi - mean == pytest.approx(4.303 * 1.0 / math.sqrt(3))
    assert mean - lo == pytest.approx(hi - mean)
    mean, lo, hi = seed_ci(np.array([0.5]), np.array([0.1]))
    assert (mean, lo, hi) == pytest.approx((0.5, 0.5 - 0.196, 0.5 + 0.196))
    assert all(math.isnan(v) for v in seed_ci(np.array([np.nan])))


def test_labels_kinds_and_counts() -> None:
    assert metric_kind("exact_match") == "discontinuous"
    assert metric_kind("token_accuracy") == "continuous"

    def one_line(label: str) -> str:
        return label.replace("\n", " ")

    assert "lower is better" in one_line(metric_label("edit_distance"))
    assert "lower is better" in one_line(metric_label("my_metric", higher_is_better=False))
    assert "lower is better" not in one_line(metric_label("exact_match"))
    assert all(len(line) <= 34 for line in metric_label("edit_distance").splitlines())
    assert metric_label("edit_distance").count("\n") <= 1
    assert format_count(21_000) == "21k" and format_count(5.2e6) == "5.2M" and format_count(3e12) == "3T"


def test_smooth_keeps_length_and_constant_series() -> None:
    v = np.full(50, 2.0)
    assert np.allclose(smooth(v, 5), v)
    assert smooth(np.arange(10.0), 3).shape == (10,)


def test_plot_scaling_writes_valid_png_and_svg(tmp_path: Path) -> None:
    colors = member_colors(SIZES)
    panels = [_panel("exact_match", fit=True), _panel("token_accuracy", fit=False)]
    fig = plot_scaling(panels, "addition", colors, SIZES, tmp_path, "scaling", svg=True)
    assert fig.png == tmp_path / "scaling.png"
    _assert_png(fig.png)
    assert fig.svg is not None and b"<svg" in fig.svg.read_bytes()[:2000]
    assert "exact_match" in fig.alt and "parameters" in fig.alt
    # Only the final files remain: the atomic writer leaves no temporary files behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scaling.png", "scaling.svg"]


def test_plot_scaling_is_byte_for_byte_reproducible(tmp_path: Path) -> None:
    colors = member_colors(SIZES)
    for name in ("one", "two"):
        plot_scaling([_panel("exact_match", True)], "t", colors, SIZES, tmp_path, name, x="flops", svg=True)
    assert (tmp_path / "one.png").read_bytes() == (tmp_path / "two.png").read_bytes()
    assert (tmp_path / "one.svg").read_bytes() == (tmp_path / "two.svg").read_bytes()


def _rows() -> pd.DataFrame:
    rows = []
    for member, n in SIZES.items():
        for seed in (0, 1):
            for step in (0, 64, 256, 1024):
                for metric in ("exact_match", "edit_distance"):
                    value = min(1.0, step / 1024 * math.log10(n) / 6) + 0.01 * seed
                    row = {"member": member, "n_params": n, "run_id": f"{member}{seed}", "seed": seed}
                    row |= {"step": step, "metric": metric}
                    row["value"] = value if metric == "exact_match" else 3 - value
                    rows.append(row)
    return pd.DataFrame(rows)


def test_plot_training_curves(tmp_path: Path) -> None:
    fig = plot_training_curves(
        _rows(), "addition", ["exact_match", "edit_distance"], member_colors(SIZES), tmp_path, "steps"
    )
    _assert_png(fig.png)
    assert fig.svg is None


def test_plot_loss_curves_with_and_without_flops(tmp_path: Path) -> None:
    steps = np.arange(10, 1010, 10)
    logs = {}
    for m, n in SIZES.items():
        loss = 3 * np.exp(-steps / 300) + 1 / math.log10(n)
        logs[m] = [pd.DataFrame({"step": steps, "loss": loss, "tokens_seen": steps * 512})]
    colors = member_colors(SIZES)
    wide = plot_loss_curves(
        logs, colors, SIZES, tmp_path, "loss", flops_per_token={m: 6 * n for m, n in SIZES.items()}
    )
    narrow = plot_loss_curves(logs, colors, SIZES, tmp_path, "loss-steps")
    assert _assert_png(wide.png).shape[1] > _assert_png(narrow.png).shape[1]  # two panels vs one


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900], [0, 1, 10, 100, 900]),
        # 2000 is left unlabelled: its label would touch 1000's
        ([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000], [0, 1, 10, 100, 1000]),
        ([0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 2000, 3000], [0, 1, 10, 100, 1000, 3000]),
        ([0, 1, 2, 4, 8], [0, 1, 2, 4, 8]),  # few, well-spread checkpoints: each labelled
    ],
)
def test_step_axis_ticks_never_crowd(steps: list[int], expected: list[int]) -> None:
    fig, ax = plt.subplots()
    try:
        assert log_axis_with_zero(ax, steps)
        assert list(ax.xaxis.get_major_locator().locs) == expected
    finally:
        plt.close(fig)
