"""Encoder objectives: BERT masking statistics, NSP layout and balance, MLM and NSP losses on an encoder."""

from __future__ import annotations

import math

import pytest
import torch

from emergence.corpus import Grammar, GrammarConfig, SentencePair, grammar_sentence_pairs
from emergence.errors import UserError
from emergence.models.gpt import GPT, GPTConfig
from emergence.models.heads import ClassificationHead, SegmentEmbedding
from emergence.tokenizers import CharTokenizer
from emergence.train.mlm import (
    IGNORE_INDEX,
    MaskingConfig,
    encode_pairs,
    encoder_losses,
    mask_token_id,
    mask_tokens,
    mlm_loss,
    mlm_vocab_size,
    nsp_loss,
)

TOK = CharTokenizer(sorted(set(Grammar().alphabet())))
SPECIALS = (TOK.pad_id, TOK.bos_id, TOK.eos_id, TOK.sep_id)


def _big_batch() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, TOK.vocab_size, (64, 512), generator=g)  # (B, T) ordinary tokens
    ids[:, 0] = TOK.bos_id
    ids[:, 100] = TOK.sep_id
    ids[:, -50:] = TOK.pad_id
    return ids


def test_masking_statistics() -> None:
    ids = _big_batch()
    mask_id = mask_token_id(TOK)
    out = mask_tokens(
        ids,
        mask_id=mask_id,
        vocab_size=TOK.vocab_size,
        special_ids=SPECIALS,
        generator=torch.Generator().manual_seed(1),
    )
    eligible = ~torch.isin(ids, torch.tensor(SPECIALS))
    n_eligible = int(eligible.sum())
    sel = out.selected
    n_sel = int(sel.sum())
    # 15 % of eligible positions, within 4 binomial standard deviations.
    assert abs(n_sel - 0.15 * n_eligible) < 4 * math.sqrt(n_eligible * 0.15 * 0.85)
    assert not bool((sel & ~eligible).any())  # specials and padding are never selected
    masked = int((out.inputs[sel] == mask_id).sum())
    changed = sel & (out.inputs != ids) & (out.inputs != mask_id)
    kept = int((sel & (out.inputs == ids)).sum())
    # 80 % mask; 10 % random (a random draw equals the original with probability 1/K, counted as kept).
    K = TOK.vocab_size - len(SPECIALS)
    for count, p in ((masked, 0.8), (int(changed.sum()), 0.1 * (1 - 1 / K)), (kept, 0.1 + 0.1 / K)):
        assert abs(count - p * n_sel) < 4 * math.sqrt(n_sel * p * (1 - p)), (count, p, n_sel)
    # Random replacements are ordinary tokens; unselected positions are untouched.
    assert bool((out.inputs[changed] >= 4).all()) and bool((out.inputs[changed] < TOK.vocab_size).all())
    assert torch.equal(out.inputs[~sel], ids[~sel])
    # Labels: the original id where selected, ignored elsewhere.
    assert torch.equal(out.labels[sel], ids[sel])
    assert bool((out.labels[~sel] == IGNORE_INDEX).all())


def test_masking_is_reproducible_from_the_generator() -> None:
    ids = _big_batch()[:4]
    kw = {"mask_id": mask_token_id(TOK), "vocab_size": TOK.vocab_size, "special_ids": SPECIALS}
    a = mask_tokens(ids, generator=torch.Generator().manual_seed(5), **kw)  # type: ignore[arg-type]
    b = mask_tokens(ids, generator=torch.Generator().manual_seed(5), **kw)  # type: ignore[arg-type]
    c = mask_tokens(ids, generator=torch.Generator().manual_seed(6), **kw)  # type: ignore[arg-type]
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.labels, c.labels)
    with pytest.raises(ValueError, match="mask_prob"):
        MaskingConfig(mask_prob=0.0)
    with pytest.raises(ValueError, match="exceed"):
        MaskingConfig(mask_token_frac=0.8, random_token_frac=0.3)


def test_pair_layout_and_segments() -> None:
    pairs = [SentencePair("ab.", "c.", True), SentencePair("the cat.", "a.", False)]
    tok = CharTokenizer(sorted(set("abc. thet")))
    batch = encode_pairs(pairs, tok, max_len=16)
    b, s = tok.bos_id, tok.sep_id
    row0 = [b, *tok.encode("ab."), s, *tok.encode("c."), s]
    assert batch.ids[0, : len(row0)].tolist() == row0
    assert batch.ids[0, len(row0) :].eq(tok.pad_id).all()
    assert batch.segments[0, : len(row0)].tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    assert batch.lengths.tolist() == [8, 13]
    assert batch.labels.tolist() == [1, 0]
    # Truncation trims the longer segment and keeps both separators; pad_to fixes the width.
    long = encode_pairs([SentencePair("a" * 20, "b" * 4, True)], tok, max_len=10, pad_to=12)
    assert long.ids.shape == (1, 12) and int(long.lengths[0]) == 10
    assert long.ids[0, :10].tolist() == [b, *tok.encode("aaaa"), s, *tok.encode("bbb"), s]
    with pytest.raises(UserError):
        encode_pairs(pairs, tok, max_len=16, pad_to=8)


def test_nsp_labels_are_balanced_on_the_grammar() -> None:
    pairs = grammar_sentence_pairs(Grammar(GrammarConfig(max_depth=1)), 2000, seed=3)
    batch = encode_pairs(pairs, TOK, max_len=128)
    n_next = int(batch.labels.sum())
    assert abs(n_next - 1000) < 4 * math.sqrt(2000 * 0.25)
    assert bool((batch.ids[:, 0] == TOK.bos_id).all())
    assert bool(((batch.ids == TOK.sep_id).sum(1) == 2).all())


def test_losses_match_cross_entropy() -> None:
    logits = torch.randn(2, 5, 7)
    labels = torch.full((2, 5), IGNORE_INDEX)
    labels[0, 1], labels[1, 3] = 3, 6
    total, n = mlm_loss(logits, labels)
    expected = -(logits[0, 1].log_softmax(-1)[3] + logits[1, 3].log_softmax(-1)[6])
    assert n == 2 and torch.allclose(total, expected)
    empty, n0 = mlm_loss(logits, torch.full((2, 5), IGNORE_INDEX))
    assert n0 == 0 and float(empty) == 0.0
    nsp_logits = torch.randn(3, 2)
    y = torch.tensor([1, 0, 1])
    s, m = nsp_loss(nsp_logits, y)
    assert m == 3 and torch.allclose(s, -nsp_logits.log_softmax(-1)[torch.arange(3), y].sum())


def test_encoder_losses_train_a_bidirectional_gpt() -> None:
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=mlm_vocab_size(TOK), n_layer=1, n_head=2, d_model=32, n_ctx=96, causal=False)
    model = GPT(cfg)
    head = ClassificationHead(32, 2, pool="first")
    seg = SegmentEmbedding(32)
    pairs = grammar_sentence_pairs(Grammar(GrammarConfig(max_depth=0)), 16, seed=0)
    batch = encode_pairs(pairs, TOK, max_len=96, pad_to=96)
    masked = mask_tokens(
        batch.ids,
        mask_id=mask_token_id(TOK),
        vocab_size=TOK.vocab_size,
        special_ids=SPECIALS,
        generator=torch.Generator().manual_seed(0),
    )
    params = [*model.parameters(), *head.parameters(), *seg.parameters()]
    opt = torch.optim.AdamW(params, lr=3e-3)
    losses = []
    for _ in range(15):
        out = encoder_losses(
            model, head, masked.inputs, masked.labels, nsp_labels=batch.labels, segments=batch.segments,
            segment_embedding=seg,
        )  # fmt: skip
        assert torch.allclose(out["loss"], out["mlm"] + out["nsp"])
        assert int(out["mlm_tokens"]) == int(masked.selected.sum())
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["mlm"].detach()))
    assert seg.embed.weight.grad is not None and float(seg.embed.weight.grad.abs().sum()) > 0
    assert losses[-1] < losses[0] - 0.5  # the encoder fits the fixed masked batch
    with pytest.raises(UserError, match="bidirectional"):
        encoder_losses(GPT(GPTConfig(vocab_size=cfg.vocab_size, n_layer=1, n_head=2, d_model=32)), None,
                       masked.inputs[:, :64], masked.labels[:, :64])  # fmt: skip
