"""Activation statistics on synthetic activations with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emergence.analysis import neurons as N
from emergence.models.gpt import GPT, GPTConfig


def test_firing_and_dead_neurons() -> None:
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(10_000, 8))
    acts[:, 0] = -1.0  # never fires
    acts[:5, 1] = 1.0  # fires on 0.05 % of tokens: dead by the 0.1 % rule
    acts[5:, 1] = -1.0
    s = N.firing_stats(acts)
    assert s["n_dead"] == 2 and s["dead_fraction"] == pytest.approx(0.25)
    assert s["firing_fraction"] == pytest.approx((6 * 0.5 + 0.0005) / 8, abs=0.01)


def test_participation_ratio_and_effective_rank_of_known_spectra() -> None:
    rng = np.random.default_rng(0)
    iso = rng.normal(size=(20_000, 10))
    assert N.participation_ratio(iso) == pytest.approx(10, rel=0.02)
    assert N.effective_rank(iso) == pytest.approx(10, rel=0.02)
    low = np.zeros((20_000, 10))
    low[:, :2] = rng.normal(size=(20_000, 2))
    assert N.participation_ratio(low) == pytest.approx(2, rel=0.03)


def test_outlier_kurtosis_and_dimensions() -> None:
    rng = np.random.default_rng(0)
    layers = [rng.normal(size=(1000, 64)) for _ in range(4)]
    assert N.outlier_kurtosis(layers[0]) == pytest.approx(1.0, abs=0.05)
    assert N.outlier_dimensions(layers) == []
    for x in layers[:2]:  # dimension 7 is huge on 10 % of positions in half of the layers
        x[:100, 7] = 60.0
    assert N.outlier_dimensions(layers) == [7]
    assert N.outlier_dimensions(layers, layer_fraction=0.75) == []
    assert N.outlier_kurtosis(layers[0]) > 5


def test_massive_activations() -> None:
    x = np.full((100, 16), 0.05)
    assert N.massive_activations(x)["n_massive"] == 0
    x[3, 2] = 500.0
    m = N.massive_activations(x)
    assert m["n_massive"] == 1 and m["max_over_median"] == pytest.approx(10_000)


def test_polysemanticity_proxy() -> None:
    ids = np.repeat(np.arange(4), 50)  # four token types
    mono = np.zeros((200, 1))
    mono[ids == 2] = 1.0  # fires for one type only
    poly = np.ones((200, 1))  # fires for every type equally
    assert N.polysemanticity(mono, ids) == pytest.approx(0.0, abs=1e-9)
    assert N.polysemanticity(poly, ids) == pytest.approx(1.0)


def test_record_and_statistics_on_a_model() -> None:
    model = GPT(GPTConfig(20, 2, 2, 16, n_ctx=12)).eval()
    tokens = torch.randint(0, 20, (3, 12))
    valid = torch.ones(3, 12, dtype=torch.bool)
    valid[0, 6:] = False
    mlp, resid, ids = N.record(model, tokens, valid)
    assert mlp[0].shape == (30, 64) and resid[1].shape == (30, 16) and ids.shape == (30,)
    stats = N.neuron_statistics(mlp, resid, ids)
    assert len(stats["layers"]) == 2 and 0 < stats["layers"][0]["firing_fraction"] < 1
