"""Resume after a hard interruption reproduces the uninterrupted run's final weights bit for bit (CPU).

Each run is a separate `emergence train` process. One is killed by the trainer's crash hook
(`EMERGENCE_CRASH_AFTER_STEP`: `os._exit` right after an optimizer step, before its checkpoint), another by
SIGKILL once a `latest` checkpoint exists; both are then resumed by the same command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from emergence.io import read_json, read_jsonl
from emergence.train import checkpoint as ckpt
from emergence.train.trainer import CRASH_ENV, CRASH_EXIT_CODE

STEPS = 120
CONFIG = {
    "model": {
        "n_layer": 1,
        "n_head": 2,
        "d_model": 32,
        "n_ctx": 12,
        "dropout": 0.1,
    },  # dropout: RNG state too
    "data": {
        "task": "addition",
        "task_options": {"digits": 2, "reverse_answer": True},
        "n_train": 100,  # 12.5 batches per epoch: resumes land mid-epoch
        "n_eval": 8,
        "n_eval_generate": 4,
    },
    "train": {
        "steps": STEPS,
        "batch_size": 8,
        "grad_accum": 2,
        "lr": 3e-3,
        "warmup_steps": 10,
        "eval_every": 40,
        "checkpoint_every": 32,
        "latest_every": 5,
        "threads": 1,
    },
}
CLI = "import sys; from emergence.cli import main; sys.exit(main(sys.argv[1:]))"


def _cmd(config: Path, out: Path) -> list[str]:
    return [sys.executable, "-c", CLI, "train", str(config), "--out", str(out), "--no-progress"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    env.update(extra)
    return env


def _final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    path = run_dir / "checkpoints" / ckpt.step_dir_name(STEPS)
    ckpt.verify_checkpoint(path)
    return ckpt.read_tensors(path, "model")


def _assert_same_run(a: Path, b: Path) -> None:
    wa, wb = _final_weights(a), _final_weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), f"{k} differs after resume"
    strip = ("tokens_per_s", "time_s")
    logs = [
        [{k: v for k, v in r.items() if k not in strip} for r in read_jsonl(d / "metrics.jsonl")]
        for d in (a, b)
    ]
    assert logs[0] == logs[1]  # the log was cut back to the resumed step and replayed identically


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("resume")
    config = root / "run.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    baseline = root / "baseline"
    subprocess.run(_cmd(config, baseline), env=_env(), check=True, capture_output=True, timeout=300)
    return config, baseline


def test_crash_hook_then_resume_equals_uninterrupted(setup: tuple[Path, Path], tmp_path: Path) -> None:
    config, baseline = setup
    out = tmp_path / "run"
    crashed = subprocess.run(
        _cmd(config, out), env=_env(**{CRASH_ENV: "53"}), capture_output=True, timeout=300, text=True
    )
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    assert read_jsonl(out / "metrics.jsonl")[-1]["step"] == 53
    assert read_json(out / "checkpoints/latest/manifest.json")["step"] == 50
    resumed = subprocess.run(_cmd(config, out), env=_env(), capture_output=True, timeout=300, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert '"resumed_from_step": 50' in resumed.stdout
    _assert_same_run(baseline, out)


def test_sigkill_then_resume_equals_uninterrupted(setup: tuple[Path, Path], tmp_path: Path) -> None:
    config, baseline = setup
    out = tmp_path / "run"
    manifest = out / "checkpoints" / "latest" / "manifest.json"
    proc = subprocess.Popen(
        _cmd(config, out), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if manifest.exists() and read_json(manifest)["step"] >= 10:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = read_json(manifest)["step"]
    assert killed_at < STEPS
    resumed = subprocess.run(_cmd(config, out), env=_env(), capture_output=True, timeout=300, text=True)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_run(baseline, out)
