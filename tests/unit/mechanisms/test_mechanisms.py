"""measure_checkpoint end to end on tiny models: a JSON-serialisable dict with the documented keys."""

from __future__ import annotations

import json

import pytest

from emergence.analysis.mechanisms import MechanismsConfig, measure_checkpoint
from emergence.config import from_dict
from emergence.errors import UserError
from emergence.models.gpt import GPT, GPTConfig
from emergence.tasks import make_task
from emergence.tokenizers import CharTokenizer

TINY = {
    "head_batch": 4,
    "stream_len": 48,
    "n_streams": 8,
    "n_calibration": 4,
    "subsample": [16, 32],
    "n_draws": 2,
    "branching_numboot": 2,
    "jacobian_streams": 1,
    "jacobian_probes": 2,
    "n_examples": 8,
    "pruning_fractions": [0.0, 0.5, 1.0],
    "attribution_examples": 1,
    "attribution_steps": 4,
}


def test_measure_checkpoint_returns_the_documented_schema() -> None:
    tasks = [make_task("addition")]
    tok = CharTokenizer.for_tasks(tasks)
    model = GPT(GPTConfig(tok.vocab_size, 2, 2, 16, n_ctx=48))
    model.train()
    cfg = from_dict(MechanismsConfig, TINY, where="mechanisms")
    out = measure_checkpoint(model, tok, tasks, cfg)
    assert model.training  # the mode is restored
    json.dumps(out, allow_nan=False)  # serialisable, no NaN
    assert {"config", "model", "tasks", "heads", "neurons", "criticality", "jacobian", "ablation"} <= set(out)
    h = out["heads"]
    assert len(h["induction"]) == 2 and len(h["induction"][0]) == 2 and len(h["copying"]) == 2
    assert len(h["logit_lens_loss"]) == 3 and "score" in h["icl"]
    assert [r["n_neurons"] for r in out["criticality"]["subsample"]] == [16, 32]
    assert len(out["criticality"]["null"]) == 2 and "m" in out["criticality"]["branching"]
    assert len(out["jacobian"]["chi"]) == 2 and out["jacobian"]["chi_layer0"] > 0
    ab = out["ablation"]["addition"]
    assert len(ab["heads"]) == 2 and len(ab["mlps"]) == 2 and len(ab["head_pruning"]) == 3
    assert out["attribution"]["addition"][0]["html"].startswith("<div")
    assert len(out["neurons"]["layers"]) == 2
    summary = out["summary"]
    assert summary["n_ref"] == 32 and summary["max_induction"] == h["max_induction"]
    assert summary["lyapunov"] == out["jacobian"]["lyapunov"]


def test_attention_only_model_skips_mlp_measurements() -> None:
    tasks = [make_task("addition")]
    tok = CharTokenizer.for_tasks(tasks)
    model = GPT(GPTConfig(tok.vocab_size, 1, 2, 16, n_ctx=48, attn_only=True))
    cfg = from_dict(MechanismsConfig, TINY | {"jacobian": False, "attribution_examples": 0})
    out = measure_checkpoint(model, tok, tasks, cfg)
    assert "criticality" not in out and out["ablation"]["addition"]["mlps"] is None
    assert out["ablation"]["addition"]["neuron_pruning"] == []
    assert out["heads"]["n_induction_heads"] == 0


def test_config_errors_name_the_field() -> None:
    with pytest.raises(UserError, match="event_rate"):
        from_dict(MechanismsConfig, {"event_rate": 2.0}, where="mechanisms")
    with pytest.raises(UserError, match="did you mean"):
        from_dict(MechanismsConfig, {"head_spam": 3}, where="mechanisms")
