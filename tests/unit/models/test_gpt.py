"""GPT: config validation, shapes, masking, hook points, the two attention paths and the key/value cache."""

from __future__ import annotations

import pytest
import torch

from emergence.config import from_dict
from emergence.errors import UserError
from emergence.models.gpt import GPT, GPTConfig
from emergence.models.hooks import HookPoint

TINY = {"vocab_size": 13, "n_layer": 2, "n_head": 2, "d_model": 16, "n_ctx": 24}


def tiny(**overrides: object) -> GPT:
    return GPT(GPTConfig(**{**TINY, **overrides})).eval()  # type: ignore[arg-type]


def tokens(b: int = 3, t: int = 20, v: int = 13) -> torch.Tensor:
    return torch.randint(0, v, (b, t))


def test_config_defaults_and_derived_values() -> None:
    cfg = GPTConfig(**TINY)  # type: ignore[arg-type]
    assert cfg.d_head == 8
    assert cfg.mlp_width == 64
    assert GPTConfig(**{**TINY, "d_mlp": 10}).mlp_width == 10  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("d_model", 15, "d_model"),
        ("n_layer", 0, "n_layer"),
        ("vocab_size", -1, "vocab_size"),
        ("d_mlp", 0, "d_mlp"),
        ("dropout", 1.0, "dropout"),
        ("norm", "rmsnorm", "norm"),
        ("act", "swish", "act"),
    ],
)
def test_config_validation_names_the_field(field: str, value: object, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        GPTConfig(**{**TINY, field: value})  # type: ignore[arg-type]


def test_config_from_dict_reports_user_error() -> None:
    cfg = from_dict(GPTConfig, {**TINY, "norm": "none", "act": "relu"}, where="model")
    assert cfg.norm == "none"
    with pytest.raises(UserError, match="model"):
        from_dict(GPTConfig, {**TINY, "n_head": 3}, where="model")


@pytest.mark.parametrize(
    "flags",
    [
        {},
        {"attn_only": True},
        {"bias": False},
        {"norm": "none", "act": "relu", "tie_embeddings": False},
        {"causal": False},
        {"d_mlp": 24, "dropout": 0.1},
    ],
)
def test_shapes_and_hidden(flags: dict[str, object]) -> None:
    model = tiny(**flags)
    x = tokens()
    assert model(x).shape == (3, 20, 13)
    assert model(x, last_only=True).shape == (3, 1, 13)
    assert model.hidden(x).shape == (3, 20, 16)
    torch.testing.assert_close(model(x, last_only=True)[:, 0], model(x)[:, -1], atol=1e-5, rtol=1e-5)


def test_tied_and_untied_embeddings() -> None:
    model = tiny()
    assert model.unembed.weight is model.embed.weight
    untied = tiny(tie_embeddings=False)
    assert untied.unembed.weight is not untied.embed.weight


def test_init_scales_residual_projections() -> None:
    model = GPT(GPTConfig(vocab_size=50, n_layer=8, n_head=4, d_model=128, n_ctx=64))
    qkv_std = model.blocks[0].attn.qkv.weight.std().item()
    out_std = model.blocks[0].attn.out.weight.std().item()
    assert abs(qkv_std - 0.02) < 0.002
    assert abs(out_std - 0.02 / 4.0) < 0.001  # 1/sqrt(2·8) = 1/4
    assert torch.all(model.blocks[0].attn.qkv.bias == 0)


def test_causal_mask_future_tokens_do_not_change_past() -> None:
    model = tiny()
    x = tokens()
    y = x.clone()
    y[:, 12:] = (y[:, 12:] + 1) % 13
    a, b = model(x), model(y)
    torch.testing.assert_close(a[:, :12], b[:, :12])
    assert (a[:, 12:] - b[:, 12:]).abs().max() > 1e-4


def test_bidirectional_mode_sees_the_future() -> None:
    model = tiny(causal=False)
    x = tokens()
    y = x.clone()
    y[:, -1] = (y[:, -1] + 1) % 13
    assert (model(x)[:, 0] - model(y)[:, 0]).abs().max() > 1e-5
    _, cache = model.run_with_cache(x, names_filter="blocks.0.attn.hook_pattern")
    assert (cache["blocks.0.attn.hook_pattern"][..., 0, 1:] > 0).all()  # the first position attends forward
    with pytest.raises(ValueError, match="bidirectional"):
        model(x, cache=model.new_cache(3))


def test_hook_names_present() -> None:
    names = set(tiny().hook_names())
    expected = {"hook_embed", "hook_pos_embed", "ln_final.hook_normalized"}
    for i in range(2):
        expected |= {
            f"blocks.{i}.hook_{n}" for n in ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out")
        }
        expected |= {f"blocks.{i}.attn.hook_{n}" for n in ("q", "k", "v", "attn_scores", "pattern", "z")}
        expected |= {f"blocks.{i}.mlp.hook_{n}" for n in ("pre", "post")}
    assert expected <= names
    attn_only = set(tiny(attn_only=True).hook_names())
    assert not any("mlp" in n or "resid_mid" in n for n in attn_only)
    assert "blocks.1.attn.hook_pattern" in attn_only


def test_run_with_cache_shapes_and_patterns_sum_to_one() -> None:
    model = tiny()
    x = tokens()
    logits, cache = model.run_with_cache(x)
    torch.testing.assert_close(logits, model(x))
    pattern = cache["blocks.1.attn.hook_pattern"]
    assert pattern.shape == (3, 2, 20, 20)
    torch.testing.assert_close(pattern.sum(-1), torch.ones(3, 2, 20))
    assert torch.all(pattern.triu(diagonal=1) == 0)  # causal: nothing above the diagonal
    assert torch.isinf(cache["blocks.0.attn.hook_attn_scores"][0, 0, 0, 1])  # masked score is -inf
    assert cache["blocks.0.attn.hook_q"].shape == (3, 20, 2, 8)
    assert cache["blocks.0.attn.hook_z"].shape == (3, 20, 2, 8)
    assert cache["blocks.0.mlp.hook_post"].shape == (3, 20, 64)
    assert cache["blocks.1.hook_resid_post"].shape == (3, 20, 16)
    assert cache["hook_pos_embed"].shape == (3, 20, 16)
    torch.testing.assert_close(cache["ln_final.hook_normalized"], model.hidden(x))
    # The residual stream adds up: resid_post = resid_pre + attn_out + mlp_out.
    torch.testing.assert_close(
        cache["blocks.0.hook_resid_post"],
        cache["blocks.0.hook_resid_pre"] + cache["blocks.0.hook_attn_out"] + cache["blocks.0.hook_mlp_out"],
    )


@pytest.mark.parametrize("flags", [{}, {"causal": False}, {"attn_only": True, "bias": False}])
def test_fast_and_explicit_attention_paths_agree(flags: dict[str, object]) -> None:
    model = tiny(**flags)
    x = tokens()
    fast = model(x)
    with model.hooks([(lambda n: n.endswith("hook_pattern"), lambda a, h: None)]):
        explicit = model(x)
    torch.testing.assert_close(fast, explicit, atol=1e-5, rtol=1e-5)
    # With a cached prefix and a multi-token chunk the explicit path must use the offset mask too.
    cache = model.new_cache(3) if model.cfg.causal else None
    if cache is not None:
        model(x[:, :8], cache=cache)
        with model.hooks([("blocks.0.attn.hook_attn_scores", lambda a, h: None)]):
            chunk = model(x[:, 8:], cache=cache)
        torch.testing.assert_close(chunk, fast[:, 8:], atol=1e-5, rtol=1e-5)


def test_zeroing_one_head_in_hook_z_removes_only_its_contribution() -> None:
    model = tiny()
    x = tokens()
    head = 1

    def zero_head(z: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        z = z.clone()
        z[:, :, head] = 0.0
        return z

    _, clean = model.run_with_cache(x, names_filter=["blocks.0.attn.hook_z", "blocks.0.hook_attn_out"])
    logits = model.run_with_hooks(x, fwd_hooks=[("blocks.0.attn.hook_z", zero_head)])
    assert (logits - model(x)).abs().max() > 1e-5
    # attn_out changes by exactly head 1's slice of the output projection.
    with model.hooks([("blocks.0.attn.hook_z", zero_head)]):
        _, cache = model.run_with_cache(x, names_filter="blocks.0.hook_attn_out")
    w_out = model.blocks[0].attn.out.weight  # (D, D) = (out, in), heads along `in`
    dh = model.cfg.d_head
    head_contrib = clean["blocks.0.attn.hook_z"][:, :, head] @ w_out[:, head * dh : (head + 1) * dh].T
    torch.testing.assert_close(
        cache["blocks.0.hook_attn_out"], clean["blocks.0.hook_attn_out"] - head_contrib, atol=1e-6, rtol=1e-5
    )
    # Hooks are gone after the context: a second clean run matches the first.
    _, again = model.run_with_cache(x, names_filter="blocks.0.hook_attn_out")
    torch.testing.assert_close(again["blocks.0.hook_attn_out"], clean["blocks.0.hook_attn_out"])


def test_pattern_hook_can_modify_attention() -> None:
    model = tiny()
    x = tokens()

    def attend_to_first(p: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        out = torch.zeros_like(p)
        out[..., 0] = 1.0
        return out

    logits = model.run_with_hooks(x, fwd_hooks=[("blocks.0.attn.hook_pattern", attend_to_first)])
    assert (logits - model(x)).abs().max() > 1e-5
    # Position 0 only ever sees itself, so its logits cannot change.
    torch.testing.assert_close(logits[:, 0], model(x)[:, 0])


def test_q_hook_modifies_output() -> None:
    model = tiny()
    x = tokens()
    doubled = model.run_with_hooks(x, fwd_hooks=[("blocks.1.attn.hook_q", lambda q, h: q * 3.0)])
    assert (doubled - model(x)).abs().max() > 1e-5


def test_last_only_with_hooks_on_the_last_block_keeps_full_shapes() -> None:
    model = tiny()
    x = tokens()
    out, cache = model.run_with_cache(x, names_filter="blocks.1.mlp.hook_post", last_only=True)
    assert out.shape == (3, 1, 13)
    assert cache["blocks.1.mlp.hook_post"].shape == (3, 20, 64)
    torch.testing.assert_close(out, model(x)[:, -1:])


@pytest.mark.parametrize("flags", [{}, {"attn_only": True}, {"norm": "none", "act": "relu", "bias": False}])
def test_kv_cache_matches_full_forward(flags: dict[str, object]) -> None:
    model = tiny(**flags)
    x = tokens()
    full = model(x)
    # prefix, then token by token
    cache = model.new_cache(3)
    parts = [model(x[:, :6], cache=cache)]
    parts += [model(x[:, t : t + 1], cache=cache) for t in range(6, 20)]
    assert cache.length == 20
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)
    # prefix, then a chunk; last_only on the chunk
    cache = model.new_cache(3)
    model(x[:, :9], cache=cache)
    torch.testing.assert_close(model(x[:, 9:], cache=cache), full[:, 9:], atol=1e-5, rtol=1e-5)
    cache = model.new_cache(3)
    model(x[:, :9], cache=cache)
    torch.testing.assert_close(
        model(x[:, 9:], cache=cache, last_only=True), full[:, -1:], atol=1e-5, rtol=1e-5
    )


def test_kv_cache_expand_shares_a_prefix_and_clone_is_independent() -> None:
    model = tiny()
    prefix = tokens(1, 7)
    rest = tokens(4, 5)
    full = model(torch.cat([prefix.expand(4, -1), rest], dim=1))
    base = model.new_cache(1)
    model(prefix, cache=base)
    snapshot = base.clone()
    before = [k.clone() for k in base.keys] + [v.clone() for v in base.values]
    wide = base.expand(4)
    assert wide.batch_size == 4 and wide.length == 7
    torch.testing.assert_close(model(rest, cache=wide), full[:, 7:], atol=1e-5, rtol=1e-5)
    # Token by token after expanding.
    wide = base.expand(4)
    steps = [model(rest[:, t : t + 1], cache=wide) for t in range(5)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full[:, 7:], atol=1e-5, rtol=1e-5)
    # The batch-1 prefix was not touched by either expanded use; the clone diverges independently.
    assert base.length == 7 and base.keys[0].shape == (1, 2, 7, 8)
    for old, now in zip(before, base.keys + base.values, strict=True):
        assert torch.equal(old, now)
    model(rest[:1], cache=snapshot)
    assert snapshot.length == 12 and base.length == 7
    assert snapshot.keys[0].shape[2] == 12 and base.keys[0].shape[2] == 7
    torch.testing.assert_close(model(rest[:1, :1], cache=base), full[:1, 7:8], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="batch-1"):
        wide.expand(8)


def test_context_overflow_is_a_clear_error() -> None:
    model = tiny()
    with pytest.raises(UserError, match="n_ctx=24"):
        model(tokens(1, 25))
    cache = model.new_cache(1)
    model(tokens(1, 20), cache=cache)
    with pytest.raises(UserError, match="20 cached"):
        model(tokens(1, 5), cache=cache)
    with pytest.raises(ValueError, match="rows"):
        model(tokens(2, 1), cache=cache)


def test_backward_reaches_every_parameter() -> None:
    model = tiny(dropout=0.1).train()
    x = tokens()
    logits = model(x)
    torch.nn.functional.cross_entropy(logits.reshape(-1, 13), x.reshape(-1)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_matches_hugging_face_gpt2_with_copied_weights() -> None:
    """Same architecture as GPT2LMHeadModel: copy the weights over and compare logits."""
    transformers = pytest.importorskip("transformers")
    model = tiny()
    cfg = model.cfg
    hf_cfg = transformers.GPT2Config(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.n_ctx,
        n_embd=cfg.d_model,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )
    hf = transformers.GPT2LMHeadModel(hf_cfg).eval()
    sd = {"transformer.wte.weight": model.embed.weight, "transformer.wpe.weight": model.W_pos}
    sd |= {"transformer.ln_f.weight": model.ln_final.weight, "transformer.ln_f.bias": model.ln_final.bias}
    for i, b in enumerate(model.blocks):
        h = f"transformer.h.{i}."
        # HF's Conv1D stores (in, out); nn.Linear stores (out, in).
        pairs = {
            "ln_1": b.ln1,
            "ln_2": b.ln2,
            "attn.c_attn": b.attn.qkv,
            "attn.c_proj": b.attn.out,
            "mlp.c_fc": b.mlp.fc_in,
            "mlp.c_proj": b.mlp.fc_out,
        }
        for hf_name, mod in pairs.items():
            w = mod.weight
            sd[h + hf_name + ".weight"] = w if hf_name.startswith("ln") else w.T
            sd[h + hf_name + ".bias"] = mod.bias
    missing, unexpected = hf.load_state_dict({k: v.detach() for k, v in sd.items()}, strict=False)
    assert not unexpected
    assert set(missing) <= {"lm_head.weight"}  # tied to wte
    hf.tie_weights()
    x = tokens()
    torch.testing.assert_close(model(x), hf(input_ids=x).logits, atol=1e-5, rtol=1e-5)
