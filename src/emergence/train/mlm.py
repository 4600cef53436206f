"""Encoder objectives (Devlin et al. 2019): masked-LM masking, next-sentence-prediction batches, their losses.

Pure functions on tensors and examples; the trainer decides when to call them.

Token roles with our tokenizers (which have `<pad>`=0, `<bos>`=1, `<eos>`=2, `<sep>`=3 and no mask token):

    BERT     here
    [CLS]    <bos>   position 0; the NSP head reads its final hidden state
    [SEP]    <sep>   after sentence A and after sentence B
    [PAD]    <pad>
    [MASK]   id tokenizer.vocab_size: one id past the tokenizer's vocabulary, so the encoder is built with
             vocab_size = tokenizer.vocab_size + 1 (`mlm_vocab_size`). Neither tokenizer changes (a `<mask>`
             special at id 4 would shift every id of existing checkpoints), and the id is never decoded.

Masking (BERT §3.1): 15 % of the non-special positions are selected independently; of those, 80 % become the
mask id, 10 % a uniformly random ordinary token, 10 % stay unchanged. Labels hold the original id at selected
positions and `IGNORE_INDEX` elsewhere, so the loss counts exactly the selected positions. Randomness comes
from a caller's `torch.Generator`, so a batch is reproducible from the generator's state.

NSP layout, with segment ids (BERT's token-type ids) and the label 1 = "B follows A":

    ids       <bos> a₁ … aₘ <sep> b₁ … bₙ <sep> <pad> …
    segments    0   0  …  0   0    1  …  1   1    0   …

A bidirectional GPT has no attention mask, so in a padded batch the real tokens also attend to the pads;
`pad_to` pads every pair to one fixed length so that an example's output does not depend on its batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from emergence.corpus.documents import SentencePair
from emergence.errors import UserError
from emergence.models.gpt import GPT
from emergence.models.heads import ClassificationHead, SegmentEmbedding

IGNORE_INDEX = -100  # label of positions the MLM loss skips (PyTorch's cross-entropy default)


def mask_token_id(tokenizer: Any) -> int:
    """The [MASK] id: one past the tokenizer's vocabulary."""
    return int(tokenizer.vocab_size)


def mlm_vocab_size(tokenizer: Any) -> int:
    """Vocabulary size of an encoder trained with masking: the tokenizer's plus the mask id."""
    return int(tokenizer.vocab_size) + 1


@dataclass(frozen=True)
class MaskingConfig:
    """BERT's masking rates."""

    mask_prob: float = 0.15  # share of non-special positions selected for prediction
    mask_token_frac: float = 0.8  # of the selected: replaced by the mask id
    random_token_frac: float = 0.1  # of the selected: replaced by a random ordinary token (the rest stay)

    def __post_init__(self) -> None:
        if not 0.0 < self.mask_prob < 1.0:
            raise ValueError(f"mask_prob: must be in (0, 1), got {self.mask_prob!r}")
        for name in ("mask_token_frac", "random_token_frac"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: must be in [0, 1], got {value!r}")
        if self.mask_token_frac + self.random_token_frac > 1.0:
            raise ValueError("mask_token_frac + random_token_frac: must not exceed 1")


@dataclass
class MaskedBatch:
    """Masked inputs, labels and which positions were selected."""

    inputs: torch.Tensor  # (B, T) long: ids after masking
    labels: torch.Tensor  # (B, T) long: original id where selected, IGNORE_INDEX elsewhere
    selected: torch.Tensor  # (B, T) bool


def mask_tokens(
    ids: torch.Tensor,
    *,
    mask_id: int,
    vocab_size: int,
    special_ids: Iterable[int],
    generator: torch.Generator,
    cfg: MaskingConfig | None = None,
) -> MaskedBatch:
    """BERT masking of (B,T) ids; specials (pad, bos, eos, sep, mask) are never selected or drawn."""
    cfg = cfg if cfg is not None else MaskingConfig()
    specials = sorted({int(i) for i in special_ids} | {int(mask_id)})
    ordinary = torch.tensor([i for i in range(vocab_size) if i not in specials], dtype=torch.long)  # (K,)
    if len(ordinary) == 0:
        raise UserError("mask_tokens: the vocabulary has no ordinary tokens to draw random replacements from")
    ids_cpu = ids.cpu()
    eligible = ~torch.isin(ids_cpu, torch.tensor(specials, dtype=torch.long))  # (B, T)
    selected = (torch.rand(ids_cpu.shape, generator=generator) < cfg.mask_prob) & eligible
    u = torch.rand(ids_cpu.shape, generator=generator)  # one uniform per position decides the replacement
    to_mask = selected & (u < cfg.mask_token_frac)
    to_random = selected & (u >= cfg.mask_token_frac) & (u < cfg.mask_token_frac + cfg.random_token_frac)
    random_ids = ordinary[torch.randint(len(ordinary), ids_cpu.shape, generator=generator)]  # (B, T)
    inputs = ids_cpu.clone()
    inputs[to_mask] = mask_id
    inputs[to_random] = random_ids[to_random]
    labels = torch.full_like(ids_cpu, IGNORE_INDEX)
    labels[selected] = ids_cpu[selected]
    dev = ids.device
    return MaskedBatch(inputs.to(dev), labels.to(dev), selected.to(dev))


# ---------------------------------------------------------------------------------------------- NSP batches


@dataclass
class PairBatch:
    """Encoded sentence pairs: `<bos> A <sep> B <sep>`, right-padded."""

    ids: torch.Tensor  # (B, T) long
    segments: torch.Tensor  # (B, T) long: 0 for <bos> A <sep> (and padding), 1 for B <sep>
    lengths: torch.Tensor  # (B,) long: real tokens per row
    labels: torch.Tensor  # (B,) long: 1 when B follows A, 0 when B is a random sentence


def _truncate_pair(a: list[int], b: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Drop tokens from the end of the longer segment until both fit (BERT's `truncate_seq_pair`)."""
    a, b = list(a), list(b)
    while len(a) + len(b) > budget:
        (a if len(a) > len(b) else b).pop()
    return a, b


def encode_pairs(
    pairs: Sequence[SentencePair], tokenizer: Any, *, max_len: int, pad_to: int | None = None
) -> PairBatch:
    """Token ids, segment ids, lengths and NSP labels of sentence pairs (truncated to max_len tokens)."""
    if not pairs:
        raise UserError("encode_pairs: no pairs given")
    if max_len < 5:
        raise UserError(f"max_len: a pair needs at least 5 tokens (<bos> a <sep> b <sep>), got {max_len}")
    if pad_to is not None and pad_to < max_len:
        raise UserError(f"pad_to: must be at least max_len={max_len}, got {pad_to}")
    rows: list[list[int]] = []
    segs: list[list[int]] = []
    for p in pairs:
        a, b = _truncate_pair(tokenizer.encode(p.a), tokenizer.encode(p.b), max_len - 3)
        rows.append([tokenizer.bos_id, *a, tokenizer.sep_id, *b, tokenizer.sep_id])
        segs.append([0] * (len(a) + 2) + [1] * (len(b) + 1))
    T = pad_to if pad_to is not None else max(len(r) for r in rows)
    ids = torch.full((len(rows), T), tokenizer.pad_id, dtype=torch.long)  # (B, T)
    segments = torch.zeros((len(rows), T), dtype=torch.long)  # (B, T)
    for i, (r, s) in enumerate(zip(rows, segs, strict=True)):
        ids[i, : len(r)] = torch.tensor(r)
        segments[i, : len(s)] = torch.tensor(s)
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    labels = torch.tensor([int(p.is_next) for p in pairs], dtype=torch.long)
    return PairBatch(ids, segments, lengths, labels)


# ---------------------------------------------------------------------------------------------- losses


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over labelled positions of (…,V) logits and (…) labels, and their count."""
    V = logits.shape[-1]
    flat = labels.reshape(-1)  # (N,)
    keep = flat != IGNORE_INDEX
    picked = logits.reshape(-1, V)[keep]  # (n, V)
    if picked.shape[0] == 0:
        return logits.sum() * 0.0, 0  # keeps the graph (and the device) when nothing was selected
    return F.cross_entropy(picked.float(), flat[keep], reduction="sum"), int(keep.sum())


def nsp_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy of (B,2) is-next logits against (B,) labels, and B."""
    return F.cross_entropy(logits.float(), labels, reduction="sum"), int(labels.shape[0])


def encoder_losses(
    model: GPT,
    nsp_head: ClassificationHead | None,
    inputs: torch.Tensor,
    mlm_labels: torch.Tensor,
    *,
    nsp_labels: torch.Tensor | None = None,
    segments: torch.Tensor | None = None,
    segment_embedding: SegmentEmbedding | None = None,
) -> dict[str, torch.Tensor]:
    """MLM and NSP losses (means) from one pass of a bidirectional GPT; `loss` is their sum.

    MLM logits come from the (tied) unembedding of the final hidden state at the selected positions only; the
    NSP logits from `nsp_head` on the same hidden states (pool "first": the <bos>/[CLS] position).
    """
    if model.cfg.causal:
        raise UserError("encoder_losses: masked-LM needs a bidirectional model (GPTConfig(causal=False))")
    if segments is not None and segment_embedding is not None:
        with segment_embedding.applied(model, segments):
            hidden = model.hidden(inputs)  # (B, T, D)
    else:
        hidden = model.hidden(inputs)  # (B, T, D)
    keep = mlm_labels != IGNORE_INDEX  # (B, T)
    mlm_sum, n_mlm = mlm_loss(model.unembed(hidden[keep]), mlm_labels[keep])  # logits (n, V)
    out = {"mlm": mlm_sum / max(n_mlm, 1), "mlm_tokens": torch.tensor(n_mlm)}
    loss = out["mlm"]
    if nsp_head is not None:
        if nsp_labels is None:
            raise UserError("encoder_losses: an NSP head needs nsp_labels")
        nsp_sum, n = nsp_loss(nsp_head(hidden), nsp_labels)  # head logits (B, 2)
        out["nsp"] = nsp_sum / n
        loss = loss + out["nsp"]
    out["loss"] = loss
    return out
