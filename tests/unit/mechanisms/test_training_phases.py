"""Per-run phase changes: loss at checkpoints, main change points by direction, lags, the report view."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from emergence.analysis.attention import example_icl_score
from emergence.analysis.training_phases import loss_at_steps, main_change, run_phases
from emergence.report.components import FigureSink
from emergence.report.training_phases import render_training_phases, sentence

STEPS = [0, 1, 2, 4, 8, 16, 32, *range(50, 2001, 50)]


def _step_curve(at: int, lo: float, hi: float, noise: float, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    return [(hi if s >= at else lo) + noise * rng.standard_normal() for s in STEPS]


def test_loss_at_steps_averages_the_logged_loss_since_the_previous_checkpoint() -> None:
    records = [{"step": s, "loss": float(s)} for s in range(1, 11)] + [{"step": 11, "eval_loss": 1.0}]
    assert loss_at_steps(records, [0, 2, 10]) == [1.0, 1.5, 6.5]  # step 0: the first logged loss
    assert loss_at_steps([], [0, 1]) == [None, None]


def test_main_change_follows_the_expected_direction() -> None:
    pts = [{"step": 100, "jump": 0.3}, {"step": 600, "jump": -2.0}, {"step": 900, "jump": 0.5}]
    assert main_change(pts, +1)["step"] == 900
    assert main_change(pts, -1)["step"] == 600
    assert main_change(pts[:1], -1) is None


def test_lags_of_loss_and_icl_behind_the_induction_rise() -> None:
    curves = {
        "max_induction": _step_curve(600, 0.05, 0.8, 0.02, 0),
        "loss": _step_curve(650, 3.5, 2.2, 0.03, 1),
        "icl_score": _step_curve(600, -0.3, -2.0, 0.05, 2),
    }
    out = run_phases(STEPS, curves)
    assert out["main"]["max_induction"]["step"] == 600
    assert out["main"]["loss"]["step"] == 650
    assert out["lags"] == {"loss": 50, "icl_score": 0}
    flat = run_phases(STEPS, {**curves, "max_induction": _step_curve(10_000, 0.05, 0.05, 0.01, 3)})
    assert flat["lags"] == {"loss": None, "icl_score": None}  # no rise to align with


class _PerfectLate(torch.nn.Module):
    """Uniform logits up to position `k` of every row, a confident correct prediction from there on."""

    def __init__(self, tokens: torch.Tensor, k: int, vocab: int) -> None:
        super().__init__()
        self.tokens, self.k, self.vocab = tokens, k, vocab

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*idx.shape, self.vocab)
        nxt = torch.cat([idx[:, 1:], idx[:, :1]], dim=1)  # (B, T): the token each position must predict
        late = torch.zeros_like(idx, dtype=torch.bool)
        late[:, self.k :] = True
        logits[late] = torch.nn.functional.one_hot(nxt[late], self.vocab).float() * 50.0
        return logits


def test_example_icl_score_scales_positions_to_each_row() -> None:
    V = 10
    tokens = torch.randint(1, V, (2, 40))
    lengths = torch.tensor([20, 40])
    tokens[0, 20:] = 0  # padding
    model = _PerfectLate(tokens, 12, V)  # predicts token p for p ≥ 13 perfectly
    res = example_icl_score(model, tokens, lengths)
    # early positions 2 and 4, late 19 and 39: loss ln V early, ≈ 0 late.
    assert res["early_position"] == 3.0 and res["late_position"] == 29.0
    assert abs(res["loss_early"] - np.log(V)) < 1e-5 and res["loss_late"] < 1e-6
    assert abs(res["score"] + np.log(V)) < 1e-5


def _entry(member: str, n_layer: int, seed: int, rise: int | None) -> dict:
    ind = _step_curve(rise or 10_000, 0.05, 0.8, 0.02, seed)
    curves = {
        "loss": _step_curve(rise or 10_000, 3.5, 2.2, 0.03, seed + 1),
        "icl_score": _step_curve(rise or 10_000, -0.3, -2.0, 0.05, seed + 2),
        "max_induction": ind,
    }
    return {
        "run_id": f"{member}{seed}",
        "member": member,
        "seed": seed,
        "n_layer": n_layer,
        "steps": STEPS,
        "curves": curves,
        **run_phases(STEPS, curves),
        "final": {
            "step": STEPS[-1],
            "loss": curves["loss"][-1],
            "icl_score": curves["icl_score"][-1],
            "max_induction": ind[-1],
            "max_induction_head": [n_layer - 1, 2],
            "max_previous_token": 0.9,
            "n_induction_heads": 1,
        },
        "head_scores": {
            "previous_token": [[0.9] * 4] * n_layer,
            "induction": [[0.1] * 4] * (n_layer - 1) + [[0.1, 0.1, ind[-1], 0.1]],
        },
    }


def test_report_shows_curves_head_maps_and_a_sentence_per_run(tmp_path: Path) -> None:
    entries = [_entry("L1", 1, 0, None), _entry("L2", 2, 0, 600), _entry("L2", 2, 1, 600)]
    sink = FigureSink(out_dir=tmp_path / "figures")
    html = render_training_phases("training_phases", entries, sink)
    assert sorted(f.name for f in sink.written) == ["induction-heads", "induction-phases"]
    assert html.count("<li>") == 3
    assert "L1 (seed 0)" in html and "has no rising change point" in html
    two = sentence(entries[1])
    assert "rises at step 600" in two and "lag +0 steps" in two and "(layer 1, head 2)" in two
    assert "No run was measured" in render_training_phases("training_phases", [], sink)


def test_phase_table_prints_float_steps(tmp_path: Path) -> None:
    from emergence.report.mechanisms_study import render_phases

    phase = {
        "member": "m",
        "seed": 0,
        "task": "t",
        "metric": "exact_match",
        "ability_change_points": [{"step": 600.0, "jump": 0.8}],
        "loss_change_points": [{"step": 550.0}],
        "alignments": {"max_induction": {"main": {"mechanism_step": 550.0, "lag_steps": 50.0}}},
    }
    html = render_phases("phases", [phase], FigureSink(out_dir=tmp_path))
    assert "550 (+50)" in html
