"""The training loop on tiny configs: decay groups, accumulation, metrics, checkpoints, resume, divergence."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest
import torch
from tests.unit.train.conftest import tiny_config

from emergence.errors import UserError
from emergence.io import read_jsonl
from emergence.models.gpt import GPT, GPTConfig
from emergence.train import checkpoint as ckpt
from emergence.train.config import DataConfig, RunConfig
from emergence.train.objectives import OBJECTIVES
from emergence.train.trainer import TrainingDiverged, _Run, param_groups, resolve_model, train_run


def _weights(run_dir: Path, step: int | None = None) -> dict[str, torch.Tensor]:
    path = run_dir / "checkpoints" / (ckpt.step_dir_name(step) if step is not None else ckpt.LATEST)
    return ckpt.read_tensors(path, "model")


def test_decay_groups_hold_2d_weights_only() -> None:
    model = GPT(GPTConfig(vocab_size=10, n_layer=2, n_head=2, d_model=8, n_ctx=4))
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decay_names = {names[id(p)] for p in decay["params"]}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert (
        "embed.weight" in decay_names and "W_pos" in decay_names and "blocks.0.attn.qkv.weight" in decay_names
    )
    assert "blocks.0.attn.qkv.bias" in no_decay_names and "blocks.0.ln1.weight" in no_decay_names
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    # Every parameter exactly once (the tied unembedding is the embedding).
    assert len(decay_names) + len(no_decay_names) == len(list(model.parameters()))


def test_resolve_model_fills_vocab_and_presets() -> None:
    assert resolve_model({"n_ctx": 8}, 17).vocab_size == 17
    cfg = resolve_model({"preset": "micro", "n_ctx": 8}, 17)
    assert (cfg.n_layer, cfg.d_model) == (2, 64)
    with pytest.raises(UserError, match="did you mean"):
        resolve_model({"preset": "mirco"}, 17)
    with pytest.raises(UserError, match="smaller than the tokenizer"):
        resolve_model({"vocab_size": 5}, 17)
    with pytest.raises(UserError, match="model"):
        resolve_model({"n_layers": 2}, 17)


def test_run_writes_metrics_checkpoints_and_summary(tmp_path: Path) -> None:
    summary = train_run(tiny_config(), tmp_path, progress=False)
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(7))
    assert {"loss", "lr", "grad_norm", "tokens_seen", "tokens_per_s"} <= set(records[1])
    assert {"eval_loss", "eval_exact_match", "train_exact_match"} <= set(records[3])
    assert "eval_loss" in records[0] and "eval_loss" in records[6] and "eval_loss" not in records[2]
    assert all(b["tokens_seen"] > a["tokens_seen"] for a, b in itertools.pairwise(records[1:]))
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [0, 1, 2, 4, 6]
    assert summary["steps"] == 6 and summary["tokens_seen"] == records[-1]["tokens_seen"]
    assert ckpt.verify_checkpoint(tmp_path / "checkpoints/latest")["step"] == 6
    assert (tmp_path / "config.yaml").exists()
    # Training changed the weights, and the step-0 checkpoint holds the initialisation.
    assert not torch.equal(_weights(tmp_path, 0)["W_pos"], _weights(tmp_path, 6)["W_pos"])
    # A second call finds the run finished and trains nothing.
    again = train_run(tiny_config(), tmp_path, progress=False)
    assert again["resumed_from_step"] == 6 and len(read_jsonl(tmp_path / "metrics.jsonl")) == 7


def test_same_seed_same_weights_other_seed_differs(tmp_path: Path) -> None:
    train_run(tiny_config(steps=2), tmp_path / "a", progress=False)
    train_run(tiny_config(steps=2), tmp_path / "b", progress=False)
    train_run(tiny_config(steps=2, seed=1), tmp_path / "c", progress=False)
    a, b, c = (_weights(tmp_path / n) for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["W_pos"], c["W_pos"])


def test_interrupted_run_resumes_to_identical_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_run(tiny_config(), tmp_path / "full", progress=False)
    real = _Run._checkpoint

    def interrupt_at_5(self: _Run) -> None:
        if self.step == 5:
            raise KeyboardInterrupt  # after step 5 was logged, before anything was saved for it
        real(self)

    monkeypatch.setattr(_Run, "_checkpoint", interrupt_at_5)
    with pytest.raises(KeyboardInterrupt):
        train_run(tiny_config(), tmp_path / "cut", progress=False)
    assert read_jsonl(tmp_path / "cut/metrics.jsonl")[-1]["step"] == 5
    monkeypatch.setattr(_Run, "_checkpoint", real)
    summary = train_run(tiny_config(), tmp_path / "cut", progress=False)
    assert summary["resumed_from_step"] == 4
    full, cut = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert all(torch.equal(full[k], cut[k]) for k in full)
    logs = [read_jsonl(tmp_path / d / "metrics.jsonl") for d in ("full", "cut")]
    assert [r["step"] for r in logs[1]] == list(
        range(7)
    )  # the record past step 4 was dropped, then rewritten
    assert [r.get("loss") for r in logs[0]] == [r.get("loss") for r in logs[1]]


def test_other_config_in_same_run_dir_is_refused(tmp_path: Path) -> None:
    train_run(tiny_config(steps=2), tmp_path, progress=False)
    with pytest.raises(UserError, match=r"different config \(train\.lr"):
        train_run(tiny_config(steps=2, lr=1e-2), tmp_path, progress=False)
    # Thread count is an execution detail, not part of the run's identity.
    train_run(tiny_config(steps=2, threads=1), tmp_path, progress=False)


def test_gradient_accumulation_matches_one_big_batch(tmp_path: Path) -> None:
    train_run(tiny_config(steps=2, batch_size=8, grad_accum=2), tmp_path / "acc", progress=False)
    train_run(tiny_config(steps=2, batch_size=16), tmp_path / "big", progress=False)
    acc, big = _weights(tmp_path / "acc"), _weights(tmp_path / "big")
    for k in acc:
        torch.testing.assert_close(acc[k], big[k], rtol=1e-4, atol=1e-5)


def test_token_budget_converts_to_steps(tmp_path: Path) -> None:
    cfg = tiny_config(steps=None, tokens=500)
    summary = train_run(cfg, tmp_path, progress=False)
    per_step = summary["tokens_seen"] / summary["steps"]
    # ceil(500 / tokens per step): the budget is reached, by less than one step's worth too many.
    assert summary["tokens_seen"] >= 500 - per_step
    assert (summary["steps"] - 1) * per_step < 500 <= summary["steps"] * per_step * 1.2


def test_nan_loss_raises_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def nan_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, int]:
        return logits.sum() * float("nan"), int(mask.sum())

    monkeypatch.setitem(OBJECTIVES._items, "clm", nan_loss)
    with pytest.raises(TrainingDiverged, match="loss is nan at step 1"):
        train_run(tiny_config(), tmp_path, progress=False)


def test_fresh_sampling_trains(tmp_path: Path) -> None:
    base = tiny_config(steps=3)
    cfg = RunConfig(
        model=base.model,
        data=dataclasses.replace(base.data, sampling="fresh", n_train=None),
        train=base.train,
    )
    summary = train_run(cfg, tmp_path, progress=False)
    assert summary["steps"] == 3 and "train_exact_match" not in summary["eval"]


@pytest.mark.parametrize("tokenizer", ["char", "bpe"])
def test_corpus_run(tmp_path: Path, tokenizer: str) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat. the dog sat on the log. " * 40)
    cfg = RunConfig(
        model={"n_layer": 1, "n_head": 2, "d_model": 16, "n_ctx": 16},
        data=DataConfig(corpus=(str(corpus),), tokenizer=tokenizer, bpe_vocab_size=270, n_eval=4),
        train=tiny_config(steps=2).train,
    )
    summary = train_run(cfg, tmp_path / "run", progress=False)
    assert set(summary["eval"]) == {"eval_loss"}
    _, tok, _ = ckpt.load_checkpoint(tmp_path / "run/checkpoints/step_000002")
    assert tok.decode(tok.encode("the cat")) == "the cat"
    assert (tok.vocab_size > 100) == (tokenizer == "bpe")


def test_init_scale_multiplies_the_initial_weights(tmp_path: Path) -> None:
    train_run(tiny_config(steps=0), tmp_path / "one", progress=False)
    train_run(tiny_config(steps=0, init_scale=4.0), tmp_path / "four", progress=False)
    one, four = _weights(tmp_path / "one", 0), _weights(tmp_path / "four", 0)
    assert set(one) == set(four)
    for k in one:
        torch.testing.assert_close(four[k], 4.0 * one[k])
    with pytest.raises(UserError, match="init_scale"):
        tiny_config(init_scale=0.0)


def test_fused_gelu_is_on_for_the_run_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from emergence.models import kernels

    monkeypatch.delenv(kernels.OPT_OUT, raising=False)
    calls = []
    real = kernels._ensure_compiled
    monkeypatch.setattr(kernels, "_ensure_compiled", lambda x: calls.append(x.shape) or real(x))
    # Batch 64: the MLP activation (64 × T × 128) is large enough for the kernel.
    train_run(tiny_config(steps=2, batch_size=64, fused_gelu=True), tmp_path / "on", progress=False)
    assert calls and not kernels._active
    n = len(calls)
    train_run(tiny_config(steps=2, batch_size=64), tmp_path / "auto", progress=False)  # far too short
    assert len(calls) == n
    assert "fused_gelu" not in (tmp_path / "auto/config.yaml").read_text()  # the default keeps run ids
    assert "fused_gelu: true" in (tmp_path / "on/config.yaml").read_text()
    with pytest.raises(UserError, match="fused_gelu"):
        tiny_config(fused_gelu="yes")
