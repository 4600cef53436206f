"""Ablation through hooks: exactly the chosen head changes; MLP and neuron ablation; pruning curves."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from emergence.analysis import ablation as AB
from emergence.analysis.attention import head_ov_weights, repeated_random_tokens
from emergence.models.gpt import GPT, GPTConfig

from .handset import induction_model


def small_model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(30, 2, 4, 32, n_ctx=16)).eval()


def test_ablating_a_head_changes_exactly_that_heads_output() -> None:
    model = small_model()
    tokens = torch.randint(0, 30, (3, 16))
    names = lambda n: n.endswith(("hook_z", "hook_attn_out"))  # noqa: E731
    _, clean = model.run_with_cache(tokens, names_filter=names)
    layer, head = 1, 2
    with model.hooks(AB.head_hooks([(layer, head)], "zero")):
        _, abl = model.run_with_cache(tokens, names_filter=names)
    z0, z1 = clean[f"blocks.{layer}.attn.hook_z"], abl[f"blocks.{layer}.attn.hook_z"]
    assert (z1[:, :, head] == 0).all()
    others = [h for h in range(4) if h != head]
    torch.testing.assert_close(z1[:, :, others], z0[:, :, others])  # same layer, other heads untouched
    torch.testing.assert_close(abl["blocks.0.attn.hook_z"], clean["blocks.0.attn.hook_z"])  # upstream
    # The layer's output moves by exactly the removed head's contribution z_h W_O^h.
    _, w_o = head_ov_weights(model, layer, head)
    delta = clean[f"blocks.{layer}.hook_attn_out"] - abl[f"blocks.{layer}.hook_attn_out"]
    torch.testing.assert_close(delta, z0[:, :, head] @ w_o, atol=1e-6, rtol=1e-5)


def test_mean_ablation_sets_the_head_to_its_mean() -> None:
    model = small_model()
    tokens = torch.randint(0, 30, (4, 16))
    means = AB.mean_activations(model, tokens, ["blocks.0.attn.hook_z"])
    with model.hooks(AB.head_hooks([(0, 1)], "mean", means)):
        _, c = model.run_with_cache(tokens, names_filter="blocks.0.attn.hook_z")
    z = c["blocks.0.attn.hook_z"]
    torch.testing.assert_close(z[:, :, 1], means["blocks.0.attn.hook_z"][1].expand(4, 16, -1))


def test_induction_head_ablation_drops_the_copying_metric() -> None:
    model = induction_model(vocab=200, span=10)  # a large vocabulary keeps repeats within a span rare
    tokens = repeated_random_tokens(200, 10, 16, 0, torch.Generator().manual_seed(0), low=1)
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    mask[:, 12:] = True  # second half, where induction predicts the next token
    batch = AB.TaskBatch(tokens, mask, torch.ones_like(mask))
    res = AB.ablate_components(model, tokens, AB.answer_logprob(batch), "zero")
    assert res["mlps"] is None  # attention-only
    assert res["heads"][1, 0] > 20 and res["heads"][0, 0] > 20  # both heads of the circuit matter
    em = AB.ablate_components(model, tokens, AB.exact_match(batch), "zero")
    assert em["baseline"] > 0.5 and em["heads"][1, 0] == pytest.approx(em["baseline"])


def test_mlp_and_neuron_ablation_and_pruning_curves() -> None:
    model = small_model()
    tokens = torch.randint(0, 30, (4, 16))
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    mask[:, 8:] = True
    batch = AB.TaskBatch(tokens, mask, torch.ones_like(mask))
    score = AB.answer_logprob(batch)
    res = AB.ablate_components(model, tokens, score, "mean")
    assert len(res["mlps"]) == 2 and res["heads"].shape == (2, 4)
    assert any(abs(d) > 0 for d in res["mlps"])
    curve = AB.head_pruning_curve(model, tokens, score, res["heads"], (0.0, 0.5, 1.0))
    assert curve[0]["score"] == pytest.approx(res["baseline"])
    imp = AB.neuron_importance(model, tokens, score)
    assert [len(x) for x in imp] == [128, 128] and all((x >= 0).all() for x in imp)
    ncurve = AB.neuron_pruning_curve(model, tokens, score, imp, (0.0, 0.25, 1.0))
    assert ncurve[0]["score"] == pytest.approx(res["baseline"])
    # Removing every neuron: the same as zero-ablating both layers' post activations by hand.
    with torch.no_grad():
        all_off = score(
            model.run_with_hooks(tokens, fwd_hooks=AB.neuron_hooks({0: range(128), 1: range(128)}, "zero"))
        )
    assert ncurve[-1]["score"] == pytest.approx(float(all_off))


def test_neuron_importance_first_order_matches_small_ablation() -> None:
    """The first-order estimate tracks the true single-neuron ablation drop of the most important neurons."""
    model = small_model()
    tokens = torch.randint(0, 30, (4, 16))
    batch = AB.TaskBatch(
        tokens, torch.ones_like(tokens, dtype=torch.bool), torch.ones_like(tokens, dtype=torch.bool)
    )
    score = AB.answer_logprob(batch)
    imp = AB.neuron_importance(model, tokens, score)[0]
    with torch.no_grad():
        base = float(score(model(tokens)))
    top = np.argsort(imp)[-5:]
    true = []
    for j in top:
        with torch.no_grad():
            s = float(score(model.run_with_hooks(tokens, fwd_hooks=AB.neuron_hooks({0: [int(j)]}, "zero"))))
        true.append(abs(base - s))
    assert np.allclose(true, imp[top], rtol=0.3, atol=1e-3)


@dataclass(frozen=True)
class Ex:
    prompt: str
    target: str


class CharTok:
    pad_id, bos_id = 0, 1

    def encode(self, text: str, add_bos: bool = False) -> list[int]:
        return ([1] if add_bos else []) + [2 + ord(c) - ord("a") for c in text]


def test_encode_examples_masks_answers_and_padding() -> None:
    b = AB.encode_examples(CharTok(), [Ex("ab", "c"), Ex("abcd", "ef")], max_len=16)
    assert b.tokens.tolist() == [[1, 2, 3, 4, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7]]
    assert b.target_mask.tolist()[0] == [False, False, False, True, False, False, False]
    assert b.target_mask.tolist()[1] == [False] * 5 + [True, True]
    assert b.valid.sum().item() == 4 + 7
