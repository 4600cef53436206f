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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from emergence.errors import UserError
from emergence.models.gpt import GPT, LN_EPS
from emergence.models.hooks import HookedModule, HookPoint

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
    from tokenizers import Tokenizer, decoders, models, processors
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
    # Our models are trained on `<bos> text`: with special tokens on (the transformers default, and what
    # lm-eval's add_bos_token=True asks for) the tokenizer prepends <bos>; off, it gives the bare ids.
    bos_first = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, tokenizer.bos_id)]
    )
    old = backend.post_processor
    backend.post_processor = processors.Sequence([old, bos_first]) if old is not None else bos_first
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


# ------------------------------------------------------------------------------------------------- import


@dataclass(frozen=True)
class HFArchitecture:
    """Where a Hugging Face causal-LM family keeps the modules our hook vocabulary names."""

    embed: str  # token embedding module
    layers: str  # ModuleList of blocks
    attn: str  # attention module inside a block; output[0] = attention out, output[1] = pattern (eager)
    mlp: str  # MLP module inside a block
    mlp_act: str  # the activation module inside the MLP (its output is mlp.hook_post)
    final_norm: str  # final LayerNorm


# One row per supported `config.model_type`; a new family is a new row, not a special case in code.
HF_ARCHITECTURES: dict[str, HFArchitecture] = {
    "gpt2": HFArchitecture("transformer.wte", "transformer.h", "attn", "mlp", "act", "transformer.ln_f"),
    "gpt_neox": HFArchitecture(
        "gpt_neox.embed_in", "gpt_neox.layers", "attention", "mlp", "act", "gpt_neox.final_layer_norm"
    ),
}


def load_hf_causal_lm(
    path: str, *, revision: str | None = None, subfolder: str | None = None, cache_dir: str | None = None
) -> tuple[Any, Any]:
    """Load a local causal LM and its tokenizer offline → (model in eval mode, tokenizer).

    `path` is a model directory, or a repository name resolved in a local Hugging Face cache (`cache_dir`),
    where `revision` picks a checkpoint branch such as the Pythia suite's `step3000`.
    """
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise UserError(
            "Hugging Face models need the 'transformers' package: pip install 'emergence-lab[hf]'"
        ) from None
    kwargs: dict[str, Any] = {"local_files_only": True}
    if revision:
        kwargs["revision"] = revision
    if cache_dir:
        kwargs["cache_dir"] = cache_dir
    sub = {"subfolder": subfolder} if subfolder else {}
    where = f"{path}" + (f"@{revision}" if revision else "") + (f"/{subfolder}" if subfolder else "")
    try:
        # Eager attention so that attention patterns can be read through hooks.
        model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="eager", **kwargs, **sub)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, **kwargs, **sub)
        except (OSError, ValueError):
            tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)  # suites keep one tokenizer at the root
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot load Hugging Face model {where} offline: {first}") from None
    return model.eval(), tokenizer


class HookedHFModel(HookedModule):
    """A Hugging Face causal LM seen through our hook vocabulary: `run_with_cache` / `run_with_hooks` work.

    Hook points (names as for our GPT): `hook_embed`, `blocks.{i}.hook_resid_pre`,
    `blocks.{i}.hook_resid_post`, `blocks.{i}.hook_attn_out`, `blocks.{i}.hook_mlp_out`,
    `blocks.{i}.mlp.hook_post`, `blocks.{i}.attn.hook_pattern`. Each is fed by a PyTorch forward hook on
    the corresponding Hugging Face module, and what the hook point returns replaces that module's output,
    so ablations work too.
    """

    def __init__(self, hf_model: Any) -> None:
        super().__init__()
        model_type = getattr(hf_model.config, "model_type", "?")
        if model_type not in HF_ARCHITECTURES:
            known = ", ".join(sorted(HF_ARCHITECTURES))
            raise UserError(
                f"hooks for Hugging Face model type {model_type!r} are not mapped (known: {known})"
            )
        arch = HF_ARCHITECTURES[model_type]
        self.hf = hf_model
        self.arch = arch
        layers = hf_model.get_submodule(arch.layers)
        self.n_layer = len(layers)
        self.hook_embed = HookPoint()
        self.blocks = nn.ModuleList(_HFBlockHooks() for _ in range(self.n_layer))
        self.setup_hooks()
        self._handles = [
            hf_model.get_submodule(arch.embed).register_forward_hook(_replace_output(self.hook_embed))
        ]
        for i, layer in enumerate(layers):
            hooks = self.blocks[i]
            self._handles += [
                layer.register_forward_pre_hook(_replace_first_input(hooks.hook_resid_pre), with_kwargs=True),
                layer.register_forward_hook(_replace_output(hooks.hook_resid_post)),
                layer.get_submodule(arch.attn).register_forward_hook(_replace_attention(hooks)),
                layer.get_submodule(arch.mlp).register_forward_hook(_replace_output(hooks.hook_mlp_out)),
                layer.get_submodule(f"{arch.mlp}.{arch.mlp_act}").register_forward_hook(
                    _replace_output(hooks.mlp.hook_post)
                ),
            ]

    @property
    def cfg(self) -> Any:
        """The wrapped model's config."""
        return self.hf.config

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (B,T) → logits (B,T,V); attention weights only when a pattern hook listens."""
        want_pattern = any(b.attn.hook_pattern.active for b in self.blocks)
        out = self.hf(input_ids=idx, output_attentions=want_pattern, use_cache=False)
        return out.logits


class _HFAttnHooks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hook_pattern = HookPoint()  # (B, H, Tq, Tk)


class _HFMLPHooks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hook_post = HookPoint()  # (B, T, d_mlp)


class _HFBlockHooks(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hook_resid_pre = HookPoint()  # (B, T, D)
        self.hook_attn_out = HookPoint()  # (B, T, D)
        self.hook_mlp_out = HookPoint()  # (B, T, D)
        self.hook_resid_post = HookPoint()  # (B, T, D)
        self.attn = _HFAttnHooks()
        self.mlp = _HFMLPHooks()


def _replace_output(hp: HookPoint) -> Any:
    """A forward hook passing a module's (first) output through `hp`, keeping the rest of a tuple."""

    def fn(_module: nn.Module, _inputs: Any, output: Any) -> Any:
        if not hp.active:
            return None
        if isinstance(output, tuple):
            return (hp(output[0]), *output[1:])
        return hp(output)

    return fn


def _replace_first_input(hp: HookPoint) -> Any:
    def fn(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not hp.active:
            return None
        if args:
            return (hp(args[0]), *args[1:]), kwargs
        key = "hidden_states"
        return args, {**kwargs, key: hp(kwargs[key])}

    return fn


def _replace_attention(hooks: _HFBlockHooks) -> Any:
    def fn(_module: nn.Module, _inputs: Any, output: Any) -> Any:
        out_hp, pat_hp = hooks.hook_attn_out, hooks.attn.hook_pattern
        if not (out_hp.active or pat_hp.active):
            return None
        attn_out, rest = output[0], list(output[1:])
        if pat_hp.active and rest and rest[0] is not None:
            pat_hp(rest[0])  # read-only: the output was computed from the pattern already
        return (out_hp(attn_out), *rest)

    return fn
