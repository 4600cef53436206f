"""`emergence train` with an encoder objective and `emergence finetune` end to end; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from emergence.cli import main
from emergence.corpus import write_corpus
from emergence.sweep.runner import RESULT_COLUMNS
from emergence.train.checkpoint import load_checkpoint
from tests.fixtures.cli import cli_error as _error
from tests.fixtures.cli import write_yaml as _write

POLARITY_RUN = {
    "model": {"n_layer": 1, "n_head": 2, "d_model": 16, "n_ctx": 128},
    "data": {"task": "polarity", "task_options": {"max_words": 8}, "n_train": 64, "n_eval": 8},
    "train": {"steps": 4, "batch_size": 8, "eval_every": 2, "checkpoint_every": 2, "threads": 1},
}


def test_train_mlm_nsp_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "grammar.txt"
    write_corpus(corpus, n_docs=30, seed=0)
    cfg = {
        "model": {"n_layer": 1, "n_head": 2, "d_model": 16, "n_ctx": 64},
        "data": {"corpus": [str(corpus)], "n_eval": 8},
        "train": {"steps": 3, "batch_size": 4, "eval_every": 3, "objective": "mlm_nsp", "threads": 1},
    }
    out = tmp_path / "enc"
    assert main(["train", str(_write(tmp_path, cfg)), "--out", str(out), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {"eval_mlm_loss", "eval_nsp_loss", "eval_nsp_accuracy"} <= set(summary["eval"])
    assert (out / "checkpoints/step_000003/heads.safetensors").exists()
    # An encoder cannot generate: the command says so in one line.
    err = _error(capsys, ["generate", str(out), "--prompt", "the cat"])
    assert "causal" in err


@pytest.mark.parametrize("objective", ["clm", "mlm"])
def test_finetune_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], objective: str) -> None:
    run = tmp_path / "run"
    cfg = _write(tmp_path, POLARITY_RUN)
    assert main(["train", str(cfg), f"train.objective={objective}", "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    out = tmp_path / "ft"
    argv = ["finetune", str(run), "--task", "polarity", "--task-option", "max_words=8", "--method", "lora"]
    argv += ["--steps", "6", "--n-train", "32", "--n-val", "16", "--n-test", "24", "--eval-every", "3"]
    assert main([*argv, "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pool"] == ("first" if objective == "mlm" else "last")
    rows = pd.read_parquet(out / "results.parquet")
    assert list(rows.columns[: len(RESULT_COLUMNS)]) == list(RESULT_COLUMNS)
    assert rows["adaptation"].tolist() == ["finetuned-lora"] and rows["n"].tolist() == [24]
    assert rows["run_id"].tolist() == ["run"] and rows["step"].tolist() == [4]
    details = json.loads((out / "finetune.json").read_text())
    assert details["test_accuracy"] == rows["value"].iloc[0]
    # LoRA: the saved backbone is a plain GPT with the update merged in; the adapters are kept apart.
    model, _, _ = load_checkpoint(out / "checkpoint")
    base, _, _ = load_checkpoint(run / "checkpoints/step_000004")
    adapters = load_file(str(out / "checkpoint/adapters.safetensors"))
    head = load_file(str(out / "checkpoint/head.safetensors"))
    assert adapters and all(k.endswith(("lora_A", "lora_B")) for k in adapters) and "out.weight" in head
    assert details["n_trainable"] == sum(v.numel() for v in adapters.values()) + sum(
        v.numel() for v in head.values()
    )
    name = "blocks.0.attn.qkv.weight"
    a, b = adapters["blocks.0.attn.qkv.lora_A"], adapters["blocks.0.attn.qkv.lora_B"]
    merged = base.state_dict()[name] + (b @ a) * (16.0 / 8)
    torch.testing.assert_close(model.state_dict()[name], merged)
    assert torch.equal(
        model.state_dict()["blocks.0.mlp.fc_in.weight"], base.state_dict()["blocks.0.mlp.fc_in.weight"]
    )


def test_finetune_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", str(_write(tmp_path, POLARITY_RUN)), "--out", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    assert "did you mean 'polarity'" in _error(capsys, ["finetune", str(run), "--task", "polarty"])
    assert "finetune.method" in _error(
        capsys, ["finetune", str(run), "--task", "polarity", "--method", "lorra"]
    )
    assert "finetune: dropout: must be in" in _error(
        capsys, ["finetune", str(run), "--task", "polarity", "--dropout", "1.5"]
    )
    assert "fine-tuning needs a choice task" in _error(capsys, ["finetune", str(run), "--task", "addition"])
    assert "--task-option" in _error(
        capsys, ["finetune", str(run), "--task", "polarity", "--task-option", "x"]
    )
    assert "no checkpoint at step 3" in _error(
        capsys, ["finetune", str(run), "--task", "polarity", "--step", "3"]
    )
    assert "run directory not found" in _error(
        capsys, ["finetune", str(tmp_path / "nope"), "--task", "polarity"]
    )
