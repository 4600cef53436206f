"""Hugging Face interop: export our GPT as a `GPT2LMHeadModel` directory that `transformers` loads offline.

Mapping (our module → GPT-2), exact up to float rounding:

    embed.weight            → transformer.wte.weight          (V, D)
    W_pos                   → transformer.wpe.weight          (n_ctx, D)
    blocks.i.ln1/ln2        → transformer.h.i.ln_1/ln_2
    blocks.i.attn.qkv       → transformer.h.i.attn.c_attn     Conv1D stores (in, out): weights transposed
    blocks.i.attn.out       → transformer.h.i.attn.c_proj
    blocks.i.mlp.fc_in/out  → transformer.h.i.mlp.c_fc/c_proj
    ln_final                → transformer.ln_f
    unembed.weight          → lm_head.weight                  (tied unless tie_embeddings=False)

Flags GPT-2 lacks are expressed exactly: `bias=False` exports zero biases; `attn_only=True` exports a 1-wide
MLP whose output projection is zero, so each block adds nothing after attention. `norm="none"` and
`causal=False` have no GPT-2 equivalent and are refused with a message.

Tokenizers become a `PreTrainedTokenizerFast` (`tokenizer.json`): the byte-level BPE is passed through; the
character tokenizer becomes a merge-free BPE over single characters with a fusing decoder, so that
`AutoTokenizer` yields the same ids as ours.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from emergence.errors import UserError
from emergence.models.gpt import GPT, LN_EPS

EXPORT_INFO = "emergence_export.json"


def gpt2_config_dict(model: GPT) -> dict[str, Any]:
    """The `transformers.GPT2Config` keyword arguments equivalent to our config."""
    cfg = model.cfg
    if cfg.norm != "layernorm":
        raise UserError("export: GPT-2 always applies LayerNorm; a model with norm='none' cannot be exported")
    if not cfg.causal:
        raise UserError(
            "export: a bidirectional (causal=False) model is not a causal LM and cannot be exported"
        )
    return {
        "vocab_size": cfg.vocab_size,
        "n_positions": cfg.n_ctx,
        "n_embd": cfg.d_model,
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_inner": 1 if cfg.attn_only else cfg.mlp_width,
        "activation_function": "relu" if cfg.act == "relu" else "gelu_new",  # gelu_new is the tanh GELU
        "resid_pdrop": cfg.dropout,
        "embd_pdrop": cfg.dropout,
        "attn_pdrop": cfg.dropout,
        "layer_norm_epsilon": LN_EPS,
        "tie_word_embeddings": cfg.tie_embeddings,
        "scale_attn_weights": True,
        "use_cache": True,
    }


def gpt2_state_dict(model: GPT) -> dict[str, torch.Tensor]:
    """Our weights renamed and transposed into GPT-2's layout (fresh contiguous tensors)."""
    cfg = model.cfg
    D = cfg.d_model

    def lin(linear: torch.nn.Linear, out_features: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = linear.weight.detach().t().contiguous()  # Conv1D keeps (in, out)
        b = linear.bias.detach().clone() if linear.bias is not None else torch.zeros(out_features)
        return w, b

    def ln(norm: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        w = norm.weight.detach().clone()
        b = norm.bias.detach().clone() if norm.bias is not None else torch.zeros(D)
        return w, b

    sd: dict[str, torch.Tensor] = {
        "transformer.wte.weight": model.embed.weight.detach().clone(),
        "transformer.wpe.weight": model.W_pos.detach().clone(),
    }
    for i, block in enumerate(model.blocks):
        p = f"transformer.h.{i}."
        sd[p + "ln_1.weight"], sd[p + "ln_1.bias"] = ln(block.ln1)
        sd[p + "attn.c_attn.weight"], sd[p + "attn.c_attn.bias"] = lin(block.attn.qkv, 3 * D)
        sd[p + "attn.c_proj.weight"], sd[p + "attn.c_proj.bias"] = lin(block.attn.out, D)
        if cfg.attn_only:
            # A 1-wide MLP with a zero output projection adds exactly zero to the residual stream; ln_2 is
            # identity-initialised (it only feeds that MLP).
            sd[p + "ln_2.weight"], sd[p + "ln_2.bias"] = torch.ones(D), torch.zeros(D)
            sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"] = torch.zeros(D, 1), torch.zeros(1)
            sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"] = torch.zeros(1, D), torch.zeros(D)
        else:
            sd[p + "ln_2.weight"], sd[p + "ln_2.bias"] = ln(block.ln2)
            sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"] = lin(block.mlp.fc_in, cfg.mlp_width)
            sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"] = lin(block.mlp.fc_out, D)
    sd["transformer.ln_f.weight"], sd["transformer.ln_f.bias"] = ln(model.ln_final)
    sd["lm_head.weight"] = model.unembed.weight.detach().clone()
    return sd


def hf_fast_tokenizer(tokenizer: Any) -> Any:
    """Our tokenizer as a `transformers.PreTrainedTokenizerFast` with the same ids and special tokens."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    from emergence.tokenizers import BOS, EOS, PAD, SEP, SPECIAL_TOKENS, BPETokenizer, CharTokenizer

    if isinstance(tokenizer, BPETokenizer):
        backend = Tokenizer.from_str(json.dumps(tokenizer.to_dict()["tokenizer"]))
    elif isinstance(tokenizer, CharTokenizer):
        vocab = {tokenizer.id_to_token(i): i for i in range(tokenizer.vocab_size)}
        # With no merges and no pre-tokenizer, BPE splits text into its characters: our char encoding.
        backend = Tokenizer(models.BPE(vocab=vocab, merges=[], fuse_unk=False))
        backend.add_special_tokens(list(SPECIAL_TOKENS))
        backend.decoder = decoders.Fuse()
    else:
        raise UserError(f"export: unsupported tokenizer type {type(tokenizer).__name__}")
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        sep_token=SEP,
        clean_up_tokenization_spaces=False,
    )


def export_gpt2(
    model: GPT, tokenizer: Any, out_dir: str | os.PathLike[str], info: dict[str, Any] | None = None
) -> Path:
    """Write a directory that `AutoModelForCausalLM` / `AutoTokenizer` load offline; returns its path.

    The directory is assembled under a temporary name and renamed into place, so an interrupted export never
    leaves a half-written model where a previous one stood.
    """
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError:
        raise UserError("export needs the 'transformers' package: pip install 'emergence-lab[hf]'") from None
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not (out / EXPORT_INFO).exists():
        raise UserError(f"export: {out} exists and is not an earlier export; choose an empty directory")
    hf_cfg = GPT2Config(**gpt2_config_dict(model))
    hf_model = GPT2LMHeadModel(hf_cfg)
    missing, unexpected = hf_model.load_state_dict(gpt2_state_dict(model), strict=False)
    # GPT-2 registers causal-mask buffers on some versions; real weights must all be present.
    missing = [k for k in missing if not k.endswith((".attn.bias", ".attn.masked_bias"))]
    if missing or unexpected:
        raise RuntimeError(f"export mapping incomplete: missing {missing}, unexpected {unexpected}")
    if model.cfg.tie_embeddings:
        hf_model.tie_weights()
    hf_model.eval()

    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    hf_model.save_pretrained(tmp, safe_serialization=True)
    hf_fast_tokenizer(tokenizer).save_pretrained(tmp)
    (tmp / EXPORT_INFO).write_text(json.dumps({"source": "emergence-lab", **(info or {})}, indent=2) + "\n")
    if out.exists():
        import shutil

        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)
    return out
