"""`torchrun --nproc_per_node=2` on CPU (gloo) trains like one process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from safetensors.torch import load_file

from emergence.io import read_jsonl

CONFIG = {
    "model": {"n_layer": 2, "n_head": 2, "d_model": 32, "n_ctx": 16},
    "data": {"task": "addition", "task_options": {"digits": 1}, "n_eval": 8, "n_eval_generate": 4},
    "train": {
        "steps": 12,
        "batch_size": 8,
        "grad_accum": 2,
        "lr": 3e-3,
        "warmup_steps": 2,
        "eval_every": 0,
        "checkpoint_every": 6,
        "threads": 1,
        "device": "cpu",
    },
}
TOL = 1e-5  # float reduction order differs between one process and two ranks


def _run(args: list[str], cwd) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_two_ranks_match_one_process(tmp_path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(CONFIG))
    _run([sys.executable, "-m", "emergence", "train", str(cfg), "--out", "single"], tmp_path)
    _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--standalone",
            "-m",
            "emergence",
            "train",
            str(cfg),
            "--out",
            "ddp",
        ],
        tmp_path,
    )
    one = [r for r in read_jsonl(tmp_path / "single" / "metrics.jsonl") if "loss" in r]
    two = [r for r in read_jsonl(tmp_path / "ddp" / "metrics.jsonl") if "loss" in r]
    assert [r["step"] for r in one] == [r["step"] for r in two] == list(range(1, 13))
    for a, b in zip(one, two, strict=True):
        assert abs(a["loss"] - b["loss"]) <= TOL * max(1.0, abs(a["loss"]))
        assert a["tokens_seen"] == b["tokens_seen"]  # the global batch, not one rank's shard
    w1 = load_file(tmp_path / "single" / "checkpoints" / "step_000012" / "model.safetensors")
    w2 = load_file(tmp_path / "ddp" / "checkpoints" / "step_000012" / "model.safetensors")
    assert w1.keys() == w2.keys()
    assert max(float((w1[k] - w2[k]).abs().max()) for k in w1) <= 1e-4


def test_batch_not_divisible_by_ranks_is_a_user_error(tmp_path, monkeypatch) -> None:
    from emergence.errors import UserError
    from emergence.train import distributed

    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(UserError, match="not divisible by the 3 torchrun processes"):
        distributed.check_batch(distributed.context_from_env(), 8)


def test_tracking_from_a_real_run(tmp_path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({**CONFIG, "train": {**CONFIG["train"], "steps": 4}}))
    _run(
        [sys.executable, "-m", "emergence", "train", str(cfg), "--out", "tb", "tracking.tensorboard=true"],
        tmp_path,
    )
    acc = EventAccumulator(str(tmp_path / "tb" / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss")] == [1, 2, 3, 4]
    assert {"lr", "grad_norm", "tokens_per_s"} <= set(acc.Tags()["scalars"])
