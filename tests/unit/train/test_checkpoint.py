"""Checkpoint step schedule, save/load round trip, sha256 verification and atomic replacement of `latest`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from tests.unit.train.conftest import tiny_config

from emergence.errors import UserError
from emergence.models.gpt import GPT, GPTConfig
from emergence.tokenizers import CharTokenizer
from emergence.train import checkpoint as ckpt
from emergence.train.trainer import make_optimizer

CFG = GPTConfig(vocab_size=16, n_layer=1, n_head=2, d_model=16, n_ctx=8)
TOK = CharTokenizer("0123456789+=")


def _resolved() -> dict:
    from emergence.config import to_dict
    from emergence.train.config import run_config_to_dict

    out = run_config_to_dict(tiny_config())
    out["model"] = to_dict(CFG)
    return out


def _save(path: Path, model: GPT, step: int, **kw: object) -> Path:
    return ckpt.save_checkpoint(
        path, model=model, config=_resolved(), tokenizer=TOK, step=step, tokens_seen=10 * step, **kw
    )


def test_checkpoint_steps_are_log_spaced_then_regular() -> None:
    assert ckpt.checkpoint_steps(300, 64) == [0, 1, 2, 4, 8, 16, 32, 64, 128, 192, 256, 300]
    assert ckpt.checkpoint_steps(5, 1000) == [0, 1, 2, 4, 5]
    assert ckpt.checkpoint_steps(0, 10) == [0]
    for total, every in [(300, 64), (100, 10), (7, 3), (1000, 1000)]:
        listed = set(ckpt.checkpoint_steps(total, every))
        assert {s for s in range(total + 1) if ckpt.is_checkpoint_step(s, total, every)} == listed
    assert ckpt.step_dir_name(64) == "step_000064"


def test_round_trip_restores_weights_and_lists_checkpoints(tmp_path: Path) -> None:
    model = GPT(CFG)
    for step in (0, 4, 2):
        _save(tmp_path / "checkpoints" / ckpt.step_dir_name(step), model, step)
    _save(tmp_path / "checkpoints" / ckpt.LATEST, model, 4)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [0, 2, 4]
    loaded, tok, manifest = ckpt.load_checkpoint(tmp_path / "checkpoints" / "step_000004")
    assert manifest["step"] == 4 and manifest["tokens_seen"] == 40
    assert set(manifest["files"]) == {"model.safetensors", "config.yaml", "tokenizer.json"}
    assert tok.encode("1+2=") == TOK.encode("1+2=")
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert loaded.unembed.weight is loaded.embed.weight  # tying survives the round trip
    assert ckpt.resolve_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step_000004"
    assert ckpt.resolve_checkpoint(tmp_path, 2) == tmp_path / "checkpoints" / "step_000002"
    with pytest.raises(UserError, match="no checkpoint at step 3"):
        ckpt.resolve_checkpoint(tmp_path, 3)


def test_corrupted_or_missing_file_is_a_user_error_naming_it(tmp_path: Path) -> None:
    path = _save(tmp_path / "step_000001", GPT(CFG), 1)
    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"model\.safetensors is corrupted"):
        ckpt.load_checkpoint(path)
    path = _save(tmp_path / "step_000002", GPT(CFG), 2)
    (path / "tokenizer.json").unlink()
    with pytest.raises(UserError, match=r"missing file tokenizer\.json"):
        ckpt.load_checkpoint(path)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(UserError, match="malformed JSON"):
        ckpt.verify_checkpoint(path)
    with pytest.raises(UserError, match="checkpoint not found"):
        ckpt.load_checkpoint(tmp_path / "nowhere")


def test_failure_mid_save_keeps_previous_latest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    latest = tmp_path / "checkpoints" / ckpt.LATEST
    model = GPT(CFG)
    _save(latest, model, 3)
    before = {p.name: p.read_bytes() for p in latest.iterdir()}

    def broken_save(path: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(TOK, "save", broken_save)
    with torch.no_grad():
        model.W_pos.add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        _save(latest, model, 5)
    assert {p.name: p.read_bytes() for p in latest.iterdir()} == before
    assert [p.name for p in latest.parent.iterdir()] == [ckpt.LATEST]  # no temporary left behind
    assert ckpt.verify_checkpoint(latest)["step"] == 3


def test_crash_between_renames_is_recovered(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    model = GPT(CFG)
    _save(root / ckpt.LATEST, model, 3)
    _save(root / "staging", model, 5)
    # The swap's state after `latest → .latest.old` and the complete new copy at `.latest.new`:
    os.rename(root / ckpt.LATEST, root / ".latest.old")
    os.rename(root / "staging", root / ".latest.new")
    os.makedirs(root / ".step_000009.tmp-abc")  # a half-written checkpoint
    ckpt.recover_checkpoints(root)
    assert sorted(p.name for p in root.iterdir()) == [ckpt.LATEST]
    assert ckpt.verify_checkpoint(root / ckpt.LATEST)["step"] == 5
    # Crash right after `latest → .latest.old` with no new copy: the old one comes back.
    os.rename(root / ckpt.LATEST, root / ".latest.old")
    ckpt.recover_checkpoints(root)
    assert ckpt.verify_checkpoint(root / ckpt.LATEST)["step"] == 5


def test_optimizer_state_round_trip(tmp_path: Path) -> None:
    model = GPT(CFG)
    opt = make_optimizer(model, tiny_config().train)
    model(torch.randint(0, 16, (2, 8))).sum().backward()
    opt.step()
    tensors, meta = ckpt.optimizer_to_files(opt)
    _save(tmp_path / "latest", model, 1, tensors={"optimizer": tensors}, json_files={"optimizer": meta})
    opt2 = make_optimizer(model, tiny_config().train)
    from emergence.io import read_json

    ckpt.optimizer_from_files(
        opt2,
        ckpt.read_tensors(tmp_path / "latest", "optimizer"),
        read_json(tmp_path / "latest/optimizer.json"),
    )
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i, state in a["state"].items():
        for k, v in state.items():
            assert torch.equal(v, b["state"][i][k]), (i, k)
