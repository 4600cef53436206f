"""`emergence train` and `emergence generate` end to end, and their one-line errors (exit code 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from emergence.cli import main
from tests.fixtures.cli import cli_error as _error
from tests.fixtures.cli import write_yaml as _write

CONFIG = {
    "model": {"n_layer": 1, "n_head": 2, "d_model": 32, "n_ctx": 12},
    "data": {
        "task": "addition",
        "task_options": {"digits": 2, "reverse_answer": True},
        "n_train": 100,
        "n_eval": 8,
        "n_eval_generate": 4,
    },
    "train": {"steps": 4, "batch_size": 8, "eval_every": 2, "checkpoint_every": 2, "threads": 1},
}


def test_train_then_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _write(tmp_path, CONFIG)
    out = tmp_path / "run"
    assert main(["train", str(cfg), "train.lr=2e-3", "--out", str(out), "--no-progress"]) == 0
    assert '"steps": 4' in capsys.readouterr().out
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["lr"] == 2e-3
    assert (out / "checkpoints/step_000004/manifest.json").exists()
    argv = ["generate", str(out), "--prompt", "12+34=", "--max-new-tokens", "3", "--step", "2"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("12+34=") and len(lines[0]) <= len("12+34=") + 3
    argv = ["generate", str(out), "-p", "1+2=", "-p", "3+4=", "-n", "2", "--temperature", "1", "--top-k", "3"]
    assert main(argv) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4


def test_config_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _write(tmp_path, CONFIG)
    out = str(tmp_path / "run")
    assert "did you mean 'lr'" in _error(capsys, ["train", str(cfg), "train.lrr=1", "--out", out])
    assert "did you mean 'addition'" in _error(capsys, ["train", str(cfg), "data.task=additon", "--out", out])
    bad_option = ["train", str(cfg), "data.task_options.digitz=3", "--out", out]
    assert "digitz" in _error(capsys, bad_option)
    assert "file not found" in _error(capsys, ["train", str(tmp_path / "missing.yaml")])
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: {n_layer: 2\ntrain: [")
    assert "malformed YAML" in _error(capsys, ["train", str(broken)])
    assert "model" in _error(capsys, ["train", str(cfg), "model.d_model=33", "--out", out])
    assert "n_ctx" in _error(capsys, ["train", str(cfg), "model.n_ctx=4", "--out", out])


def test_checkpoint_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _write(tmp_path, CONFIG)
    out = tmp_path / "run"
    assert main(["train", str(cfg), "train.steps=1", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert "no checkpoint at step 7" in _error(capsys, ["generate", str(out), "-p", "1+1=", "--step", "7"])
    assert "not in the tokenizer" in _error(capsys, ["generate", str(out), "-p", "hello"])
    assert "run directory not found" in _error(capsys, ["generate", str(tmp_path / "nope"), "-p", "1"])
    weights = out / "checkpoints/step_000001/model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])
    assert "model.safetensors is corrupted" in _error(capsys, ["generate", str(out), "-p", "1+1="])
    # The same run directory with another config is refused rather than mixed.
    other = ["train", str(cfg), "train.steps=1", "train.lr=0.01", "--out", str(out)]
    assert "different config" in _error(capsys, other)
