"""Heads on GPT hidden states, and LoRA: only adapters train, merging is exact, hooks keep working."""

from __future__ import annotations

import pytest
import torch

from emergence.models.gpt import GPT, GPTConfig
from emergence.models.heads import (
    ClassificationHead,
    ModelWithHead,
    RegressionHead,
    SegmentEmbedding,
    pool_hidden,
)
from emergence.models.lora import (
    LoRAConfig,
    LoRALinear,
    apply_lora,
    lora_parameters,
    lora_state_dict,
    merge_lora,
    prepare_finetune,
)

CFG = GPTConfig(vocab_size=23, n_layer=2, n_head=2, d_model=16, n_ctx=16)


def _gpt(**kw: object) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(**{**CFG.__dict__, **kw}))  # type: ignore[arg-type]


def test_pooling() -> None:
    h = torch.arange(2 * 4 * 3, dtype=torch.float).view(2, 4, 3)  # (B, T, D)
    lengths = torch.tensor([4, 2])
    assert torch.equal(pool_hidden(h, "first"), h[:, 0])
    assert torch.equal(pool_hidden(h, "last", lengths), torch.stack([h[0, 3], h[1, 1]]))
    assert torch.allclose(pool_hidden(h, "mean", lengths), torch.stack([h[0].mean(0), h[1, :2].mean(0)]))
    with pytest.raises(ValueError):
        pool_hidden(h, "last", torch.tensor([0, 2]))


def test_heads_on_gpt_hidden_states() -> None:
    model = _gpt()
    idx = torch.randint(4, 23, (3, 10))
    lengths = torch.tensor([10, 6, 3])
    cls = ClassificationHead(16, 3, pool="last", pooler=True)
    reg = RegressionHead(16, pool="first")
    assert ModelWithHead(model, cls)(idx, lengths).shape == (3, 3)
    assert ModelWithHead(model, reg)(idx).shape == (3,)
    # "last" with lengths reads the last real token: padding after it changes nothing (causal model).
    padded = idx.clone()
    padded[1, 6:] = 0
    assert torch.allclose(ModelWithHead(model, cls)(padded, lengths), ModelWithHead(model, cls)(idx, lengths))
    with pytest.raises(ValueError):
        ClassificationHead(16, 1)


def test_segment_embedding_goes_through_hook_embed() -> None:
    model = _gpt(causal=False)
    seg = SegmentEmbedding(16)
    idx = torch.randint(4, 23, (2, 8))
    segments = torch.tensor([[0] * 4 + [1] * 4, [0] * 8])
    with seg.applied(model, segments):
        _, cache = model.run_with_cache(idx, names_filter="hook_embed")
    assert torch.allclose(cache["hook_embed"], model.embed(idx) + seg.embed(segments))
    assert not model.hook_dict["hook_embed"].active  # removed after the block


def test_lora_trains_only_adapters_and_head() -> None:
    model = _gpt()
    head = ClassificationHead(16, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = prepare_finetune(model, head, "lora", LoRAConfig(r=2, targets=("attn.qkv", "mlp.fc_out")))
    adapters = lora_parameters(model)
    assert len(adapters) == 2 * 2 * 2  # A and B, two targets, two layers
    assert {id(p) for p in params} == {id(p) for p in (*adapters, *head.parameters())}
    idx = torch.randint(4, 23, (4, 8))
    y = torch.tensor([0, 1, 1, 0])
    opt = torch.optim.AdamW(params, lr=1e-2)
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(ModelWithHead(model, head)(idx), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = model.state_dict()
    for k, v in before.items():
        name = k.replace("attn.qkv.", "attn.qkv.base.").replace("mlp.fc_out.", "mlp.fc_out.base.")
        assert torch.equal(after[name], v), f"{k} changed"
    assert any(
        float(p.detach().abs().sum()) > 0 for p in adapters if p.shape[1] == 2
    )  # B moved away from zero
    assert set(lora_state_dict(model)) == {n for n, _ in model.named_parameters() if "lora_" in n}


def test_fresh_adapters_change_nothing_and_merge_is_exact() -> None:
    model = _gpt().double()
    idx = torch.randint(4, 23, (3, 12))
    reference = model(idx)
    apply_lora(model, LoRAConfig(r=4, alpha=8, targets=("attn.qkv", "attn.out", "mlp.fc_in", "mlp.fc_out")))
    assert torch.equal(model(idx), reference)  # B = 0: the adapted model starts where the base model was
    with torch.no_grad():
        for p in lora_parameters(model):
            p.normal_(0.0, 0.3)
    adapted = model(idx)
    assert (adapted - reference).abs().max() > 1e-2
    merge_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert set(model.state_dict()) == set(_gpt().state_dict())  # a plain GPT again
    assert (model(idx) - adapted).abs().max() < 1e-6
    # float32 as trained: equal to float32 rounding
    m32 = _gpt()
    apply_lora(m32, LoRAConfig(r=4))
    with torch.no_grad():
        for p in lora_parameters(m32):
            p.normal_(0.0, 0.3)
    out = m32(idx)
    merge_lora(m32)
    assert (m32(idx) - out).abs().max() < 1e-5


def test_hooks_work_on_an_adapted_model() -> None:
    model = _gpt()
    names = model.hook_names()
    apply_lora(model, LoRAConfig(r=2))
    assert model.hook_names() == names
    idx = torch.randint(4, 23, (2, 6))
    logits, cache = model.run_with_cache(idx, names_filter=lambda n: n.endswith("hook_z"))
    assert set(cache) == {"blocks.0.attn.hook_z", "blocks.1.attn.hook_z"}

    def zero(z: torch.Tensor, hook: object) -> torch.Tensor:
        return torch.zeros_like(z)

    ablated = model.run_with_hooks(idx, fwd_hooks=[("blocks.0.attn.hook_z", zero)])
    assert not torch.allclose(ablated, logits)


def test_modes_full_and_head() -> None:
    model, head = _gpt(), ClassificationHead(16, 2)
    full = prepare_finetune(model, head, "full")
    assert len(full) == len(list(model.parameters())) + len(list(head.parameters()))
    head_only = prepare_finetune(model, head, "head")
    assert {id(p) for p in head_only} == {id(p) for p in head.parameters()}
    assert not any(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="targets"):
        LoRAConfig(targets=("attn.q",))


@pytest.mark.slow
def test_equal_to_peft_lora() -> None:
    """Our LoRA layer computes what peft's does with the same A, B and scaling (peft imports transformers)."""
    peft = pytest.importorskip("peft")
    ours, theirs = _gpt().double(), _gpt().double()
    cfg = LoRAConfig(r=3, alpha=6, targets=("attn.qkv", "mlp.fc_in"))
    apply_lora(ours, cfg)
    pc = peft.LoraConfig(r=3, lora_alpha=6, target_modules=list(cfg.targets), lora_dropout=0.0)
    theirs = peft.inject_adapter_in_model(pc, theirs)
    with torch.no_grad():
        for name, m in ours.named_modules():
            if isinstance(m, LoRALinear):
                m.lora_A.normal_()
                m.lora_B.normal_()
                t = theirs.get_submodule(name)
                t.lora_A["default"].weight.copy_(m.lora_A)
                t.lora_B["default"].weight.copy_(m.lora_B)
    idx = torch.randint(4, 23, (2, 9))
    assert torch.allclose(ours(idx), theirs(idx), atol=1e-10)
