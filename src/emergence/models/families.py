"""Model families: named size presets, geometric families between two sizes, parameter and FLOP counts.

Counts are computed analytically from a `GPTConfig` (and tested against the built model), so a study can plan
a family, place models on a compute axis and write `n_params`/`flops` into every result row without building
anything.

Conventions (Kaplan et al. 2020; REFERENCES §5):
- *non-embedding* parameters exclude the token embedding, the position embedding and an untied unembedding,
  so tying does not change N;
- training FLOPs per token ≈ 6N + 12·L·T·D with N non-embedding (6N for the matmuls forward and backward,
  12·L·T·D for attention scores and weighted values; nanoGPT's `estimate_mfu`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from emergence.errors import UserError
from emergence.models import recurrent
from emergence.models.gpt import GPTConfig
from emergence.registry import unknown_name_message

# Shape presets: vocabulary and context come from the study (tokenizer, task), so the comments give the
# non-embedding parameter count N of the default GPT (LayerNorm, biases, MLP 4·D): N = L·(12·D² + 13·D) + 2·D.
# Head width is 16 for the smallest models and grows to 64 (GPT-2) at the top.
PRESETS: dict[str, dict[str, Any]] = {
    "nano": {"n_layer": 1, "n_head": 2, "d_model": 32},  # N = 12,768
    "micro": {"n_layer": 2, "n_head": 4, "d_model": 64},  # N = 100,096
    "tiny": {"n_layer": 3, "n_head": 4, "d_model": 128},  # N = 595,072
    "mini": {"n_layer": 4, "n_head": 6, "d_model": 192},  # N = 1,779,840
    "small": {"n_layer": 6, "n_head": 6, "d_model": 384},  # N = 10,647,552 (Lee et al. 2023's char model)
    "medium": {"n_layer": 8, "n_head": 8, "d_model": 512},  # N = 25,220,096
    "gpt2": {
        "n_layer": 12,
        "n_head": 12,
        "d_model": 768,
    },  # N = 85,056,000 (GPT-2 small; 124M with embeddings)
}


def preset(name: str, *, vocab_size: int, n_ctx: int, **overrides: Any) -> GPTConfig:
    """The GPTConfig of a named preset for a given vocabulary and context; other fields may be overridden."""
    if name not in PRESETS:
        raise UserError(unknown_name_message("model preset", name, PRESETS))
    return GPTConfig(**{**PRESETS[name], "vocab_size": vocab_size, "n_ctx": n_ctx, **overrides})


def count_params(cfg: GPTConfig, non_embedding: bool = False) -> int:
    """Number of parameters of `GPT(cfg)`, computed analytically (shared tied weights counted once)."""
    D, M, L = cfg.d_model, cfg.mlp_width, cfg.n_layer
    b = 1 if cfg.bias else 0
    ln = (D + b * D) if cfg.norm == "layernorm" else 0  # gain (+ bias)
    attn = D * 3 * D + b * 3 * D + D * D + b * D  # fused qkv + output projection
    mlp = 0 if cfg.attn_only else ln + D * M + b * M + M * D + b * D  # ln2 + fc_in + fc_out
    blocks = L * (ln + attn + mlp)
    body = blocks + ln  # + ln_final
    if non_embedding:
        return body
    embeddings = cfg.vocab_size * D + cfg.n_ctx * D
    unembed = 0 if cfg.tie_embeddings else cfg.vocab_size * D
    return body + embeddings + unembed


def flops_per_token(cfg: GPTConfig, seq_len: int | None = None, *, output_layer: bool = False) -> int:
    """Training FLOPs per token, 6N + 12·L·T·D (N non-embedding, T = seq_len or the full context).

    N leaves out every embedding, as in Kaplan et al.'s scaling laws. `output_layer=True` adds 6·V·D, the
    forward and backward matmuls of the vocabulary projection, which the model does compute: that is the
    count of nanoGPT's `estimate_mfu` (REFERENCES §5), whose N is every parameter but the position
    embeddings, the tied token embedding counted as the output layer. Negligible for large models; at the
    smallest benchmark shape (V 65, D 64, 2 layers) it is 3 % of the step's work.
    """
    T = cfg.n_ctx if seq_len is None else seq_len
    head = 6 * cfg.vocab_size * cfg.d_model if output_layer else 0
    return 6 * count_params(cfg, non_embedding=True) + head + 12 * cfg.n_layer * T * cfg.d_model


def _human(n: int) -> str:
    """12768 → '12.8K', 1779840 → '1.78M' (three significant digits)."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


@dataclass(frozen=True)
class _Sizer:
    """Shapes of one geometric family: a config from (layers, width), its parameter count, and the shape
    closest to a target count."""

    arch: str
    vocab_size: int
    n_ctx: int
    scale: str
    aspect: float
    n_layer: int
    d_model: int
    d_head: int
    non_embedding: bool
    flags: dict[str, Any]

    def make(self, layers: int, width: int) -> Any:
        if self.arch == "lstm":
            return recurrent.LSTMConfig(
                vocab_size=self.vocab_size,
                n_ctx=self.n_ctx,
                n_layer=layers,
                d_embed=width,
                d_hidden=width,
                **self.flags,
            )
        return GPTConfig(
            vocab_size=self.vocab_size,
            n_ctx=self.n_ctx,
            n_layer=layers,
            d_model=width,
            n_head=width // self.d_head,
            **self.flags,
        )

    def size(self, layers: int, width: int) -> int:
        cfg = self.make(layers, width)
        if self.arch == "lstm":
            return recurrent.count_params(cfg, non_embedding=self.non_embedding)
        return count_params(cfg, non_embedding=self.non_embedding)

    def best_width(self, layers: int, target: float) -> int:
        # The count grows monotonically with width: double, then bisect over multiples of d_head.
        d_head = self.d_head
        hi = 1
        while self.size(layers, hi * d_head) < target:
            hi *= 2
        lo = max(1, hi // 2)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.size(layers, mid * d_head) < target:
                lo = mid + 1
            else:
                hi = mid
        candidates = [k for k in (lo - 1, lo) if k >= 1]
        k = min(candidates, key=lambda k: abs(math.log(self.size(layers, k * d_head) / target)))
        return k * d_head

    def shape_for(self, target: float) -> tuple[int, int]:
        if self.scale == "width":
            return self.n_layer, self.best_width(self.n_layer, target)
        if self.scale == "depth":
            per_layer = self.size(2, self.d_model) - self.size(1, self.d_model)
            layers = max(1, round((target - self.size(1, self.d_model)) / per_layer) + 1)
            return layers, self.d_model
        # "both": for each depth, the width that best hits the target; then trade the count error against the
        # aspect-ratio error (both in log space; the count matters more, hence the weight).
        best: tuple[float, int, int] | None = None
        for layers in range(1, 97):
            width = self.best_width(layers, target)
            err = (
                math.log(self.size(layers, width) / target) ** 2
                + 0.05 * math.log(width / layers / self.aspect) ** 2
            )
            if best is None or err < best[0]:
                best = (err, layers, width)
        assert best is not None
        return best[1], best[2]


def _check_family(
    arch: str, flags: dict[str, Any], n: int, min_params: int, max_params: int, scale: str, sizes: tuple
) -> None:
    """One-line errors for a geometric family that cannot be built. `sizes` is (d_head, n_layer, d_model,
    aspect)."""
    if arch not in ("gpt", "lstm"):
        raise UserError(f"family: geometric families are GPTs or LSTMs, got arch {arch!r}")
    if arch == "lstm":
        known = {f.name for f in dataclasses.fields(recurrent.LSTMConfig)}
        unknown = sorted(set(flags) - known)
        if unknown:
            raise UserError(f"family: {unknown} are not LSTM fields (LSTMConfig has {sorted(known)})")
    if n < 1:
        raise UserError(f"family: n must be at least 1, got {n}")
    if min_params <= 0 or max_params < min_params:
        raise UserError(f"family: need 0 < min_params <= max_params, got {min_params} and {max_params}")
    if n > 1 and max_params == min_params:
        raise UserError("family: min_params equals max_params, so all members would be the same model")
    if scale not in ("width", "depth", "both"):
        raise UserError(f"family: scale must be 'width', 'depth' or 'both', got {scale!r}")
    d_head, n_layer, d_model, aspect = sizes
    if d_head <= 0 or n_layer <= 0 or d_model <= 0 or aspect <= 0:
        raise UserError("family: d_head, n_layer, d_model and aspect must be positive")
    if d_model % d_head:
        raise UserError(f"family: d_model={d_model} is not a multiple of d_head={d_head}")


def geometric_family(
    min_params: int,
    max_params: int,
    n: int,
    *,
    vocab_size: int,
    n_ctx: int,
    scale: Literal["width", "depth", "both"] = "both",
    aspect: float = 32.0,
    n_layer: int = 4,
    d_model: int = 128,
    d_head: int = 16,
    non_embedding: bool = True,
    prefix: str | None = None,
    arch: Literal["gpt", "lstm"] = "gpt",
    **flags: Any,
) -> list[tuple[str, Any]]:
    """`n` configs whose parameter counts approximate a geometric sequence from min_params to max_params.

    scale="width" keeps `n_layer` and grows the width; "depth" keeps `d_model` and adds layers; "both" keeps
    the aspect ratio d_model / n_layer near `aspect` (Kaplan et al. 2020 find loss flat over a wide range of
    aspect ratios, so any reasonable value works) and picks the shape closest to each target. Widths are
    multiples of `d_head` with n_head = d_model / d_head. Targets count non-embedding parameters unless
    `non_embedding=False`. `flags` are other GPTConfig fields (attn_only, bias, norm, act, …). Names are
    `prefix` (default "<arch>-") + the achieved count, e.g. "gpt-1.78M".

    `arch="lstm"` sizes LSTM language models the same way: the width is d_hidden = d_embed (a multiple of
    `d_head`, which is then only the width step), the depth is the number of stacked LSTM layers, and `flags`
    are other LSTMConfig fields (dropout, tie_embeddings).
    """
    _check_family(arch, flags, n, min_params, max_params, scale, (d_head, n_layer, d_model, aspect))
    prefix = f"{arch}-" if prefix is None else prefix
    sizer = _Sizer(arch, vocab_size, n_ctx, scale, aspect, n_layer, d_model, d_head, non_embedding, flags)
    ratio = (max_params / min_params) ** (1.0 / (n - 1)) if n > 1 else 1.0
    out: list[tuple[str, GPTConfig]] = []
    seen: dict[tuple[int, int], int] = {}
    for i in range(n):
        layers, width = sizer.shape_for(min_params * ratio**i)
        if (layers, width) in seen:
            raise UserError(
                f"family: members {seen[(layers, width)]} and {i} get the same shape "
                f"(n_layer={layers}, d_model={width}); widen the range or use fewer members"
            )
        seen[(layers, width)] = i
        name = f"{prefix}{_human(sizer.size(layers, width))}"
        if any(name == existing for existing, _ in out):
            name = f"{name}-L{layers}"
        out.append((name, sizer.make(layers, width)))
    return out
