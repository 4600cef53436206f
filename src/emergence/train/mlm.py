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

Fine-tuning (the last section): `finetune` trains a head (and all, none or LoRA adapters of the backbone) on a
choice task's examples as classification, with weight decay, early stopping on a validation set and the best
weights restored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F

from emergence.corpus.documents import SentencePair
from emergence.errors import UserError
from emergence.models.gpt import GPT
from emergence.models.heads import ClassificationHead, ModelWithHead, SegmentEmbedding
from emergence.models.lora import LORA_TARGETS, LoRAConfig, prepare_finetune

log = logging.getLogger(__name__)

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


# ---------------------------------------------------------------------------------------------- fine-tuning


@dataclass(frozen=True)
class FinetuneConfig:
    """What trains, for how long, and when to stop."""

    mode: Literal["full", "head", "lora"] = "lora"  # see models.lora.prepare_finetune
    steps: int = 500  # optimizer steps at most
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01  # AdamW decay on ≥2-D tensors only (nanoGPT's grouping)
    eval_every: int = 25  # steps between validation passes
    patience: int = 5  # validation passes without a lower validation loss before stopping early
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("attn.qkv", "attn.out")
    seed: int = 0  # batch order

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_every", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if not self.lr >= 0 or not self.weight_decay >= 0:
            raise ValueError("lr, weight_decay: must be non-negative")
        if self.mode not in ("full", "head", "lora"):
            raise ValueError(f"mode: must be 'full', 'head' or 'lora', got {self.mode!r}")
        for t in self.lora_targets:
            if t not in LORA_TARGETS:
                raise ValueError(f"lora_targets: {t!r} is not one of {', '.join(LORA_TARGETS)}")

    @property
    def lora(self) -> LoRAConfig:
        """The adapter settings."""
        return LoRAConfig(self.lora_r, self.lora_alpha, self.lora_dropout, self.lora_targets)


@dataclass
class FinetuneResult:
    """Validation history and the best point (whose weights the model and head hold afterwards)."""

    history: list[dict[str, float]] = field(default_factory=list)  # step, train_loss, val_loss, val_accuracy
    best_step: int = 0
    best_val_loss: float = float("inf")
    best_val_accuracy: float = 0.0
    stopped_early: bool = False


def encode_choice_examples(
    examples: Sequence[Any], tokenizer: Any, n_ctx: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Choice examples → right-padded `<bos> prompt` ids (N,T), lengths (N,), labels = index of the target."""
    rows, labels = [], []
    for ex in examples:
        if ex.choices is None:
            raise UserError("fine-tuning needs choice examples (a target among choices)")
        ids = [tokenizer.bos_id, *tokenizer.encode(ex.prompt)]
        if len(ids) > n_ctx:
            raise UserError(f"example needs {len(ids)} tokens but n_ctx is {n_ctx}: {ex.prompt[:40]!r}")
        rows.append(ids)
        labels.append(ex.choices.index(ex.target))
    T = max(len(r) for r in rows)
    out = torch.full((len(rows), T), tokenizer.pad_id, dtype=torch.long)  # (N, T)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r)
    return out, torch.tensor([len(r) for r in rows]), torch.tensor(labels)


def evaluate_classifier(
    net: ModelWithHead, data: tuple[torch.Tensor, ...], batch_size: int
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of a backbone + head on encoded (ids, lengths, labels)."""
    ids, lengths, labels = data
    net.eval()
    total, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(ids), batch_size):
            logits = net(ids[i : i + batch_size], lengths[i : i + batch_size])  # (b, C)
            y = labels[i : i + batch_size]
            total += float(F.cross_entropy(logits.float(), y, reduction="sum"))
            correct += int((logits.argmax(-1) == y).sum())
    return total / len(ids), correct / len(ids)


def finetune(
    model: GPT,
    head: ClassificationHead,
    train: Sequence[Any],
    val: Sequence[Any],
    tokenizer: Any,
    cfg: FinetuneConfig | None = None,
) -> FinetuneResult:
    """Fine-tune `head` (+ backbone per `cfg.mode`) on choice examples; keeps the best validation weights."""
    cfg = cfg if cfg is not None else FinetuneConfig()
    if not train or not val:
        raise UserError("finetune: needs training and validation examples")
    params = prepare_finetune(model, head, cfg.mode, cfg.lora)
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=cfg.lr)
    net = ModelWithHead(model, head)
    train_data = encode_choice_examples(train, tokenizer, model.cfg.n_ctx)
    val_data = encode_choice_examples(val, tokenizer, model.cfg.n_ctx)
    gen = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(train_data[0]), generator=gen)
    pos = 0
    result = FinetuneResult()
    best = [p.detach().clone() for p in params]
    waited = 0
    running = 0.0
    for step in range(1, cfg.steps + 1):
        if pos + cfg.batch_size > len(order):  # a new epoch: reshuffle (the last partial batch is dropped)
            order, pos = torch.randperm(len(order), generator=gen), 0
        idx = order[pos : pos + cfg.batch_size]
        pos += cfg.batch_size
        net.train()
        logits = net(train_data[0][idx], train_data[1][idx])  # (b, C)
        loss = F.cross_entropy(logits.float(), train_data[2][idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running += float(loss.detach())
        if step % cfg.eval_every == 0 or step == cfg.steps:
            val_loss, val_acc = evaluate_classifier(net, val_data, cfg.batch_size)
            n = cfg.eval_every if step % cfg.eval_every == 0 else step % cfg.eval_every
            result.history.append(
                {"step": step, "train_loss": running / n, "val_loss": val_loss, "val_accuracy": val_acc}
            )
            running = 0.0
            if val_loss < result.best_val_loss:
                result.best_step, result.best_val_loss, result.best_val_accuracy = step, val_loss, val_acc
                best = [p.detach().clone() for p in params]
                waited = 0
            else:
                waited += 1
                if waited >= cfg.patience:
                    result.stopped_early = True
                    log.info("finetune: stopped at step %d (best step %d)", step, result.best_step)
                    break
    with torch.no_grad():
        for p, b in zip(params, best, strict=True):
            p.copy_(b)
    net.eval()
    return result
