"""Warm-up + cosine/linear/constant learning-rate schedule."""

from __future__ import annotations

import itertools
import math

import pytest

from emergence.train.schedule import lr_at

KW = {"lr": 1.0, "min_lr": 0.1, "warmup_steps": 10, "total_steps": 110}


def test_warmup_is_linear_from_lr_over_warmup() -> None:
    assert [lr_at(s, **KW) for s in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    assert lr_at(9, **KW) == pytest.approx(1.0)


def test_cosine_peaks_after_warmup_and_decays_to_min_lr() -> None:
    assert lr_at(10, **KW) == pytest.approx(1.0)
    # Halfway through the decay, cosine is at the midpoint between lr and min_lr.
    assert lr_at(60, **KW) == pytest.approx(0.55)
    assert lr_at(110, **KW) == pytest.approx(0.1)
    assert lr_at(500, **KW) == pytest.approx(0.1)  # clamped past the end
    values = [lr_at(s, **KW) for s in range(10, 111)]
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert lr_at(35, **KW) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.25)))


def test_linear_and_constant() -> None:
    assert lr_at(60, **KW, schedule="linear") == pytest.approx(0.55)
    assert lr_at(35, **KW, schedule="linear") == pytest.approx(1.0 - 0.9 * 0.25)
    assert lr_at(100, **KW, schedule="constant") == pytest.approx(1.0)
    assert lr_at(0, **KW, schedule="constant") == pytest.approx(0.1)  # warm-up still applies


def test_no_warmup_starts_at_peak() -> None:
    assert lr_at(0, lr=2.0, min_lr=0.0, warmup_steps=0, total_steps=4) == pytest.approx(2.0)
    assert lr_at(4, lr=2.0, min_lr=0.0, warmup_steps=0, total_steps=4) == pytest.approx(0.0)
