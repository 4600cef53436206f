"""A 2-layer attention-only GPT whose weights are set by hand to implement an induction head.

Residual stream layout (D = 2V + P, one head per layer, Dh = D, no LayerNorm, no biases):

    [ token one-hot (V) | position one-hot (P) | previous-token one-hot (V) ]

- layer 0, previous-token head: query = c·pos_i, key = pos_{j+1}, so query i attends to key i − 1; its OV
  copies the key's token one-hot into the previous-token slot.
- layer 1, induction head: query = c·(token of i) written into the previous-token coordinates, key = the
  previous-token slot, so query i attends to every j whose predecessor is i's token (the position after the
  earlier occurrence); its OV copies that token into the token slot with weight 2, and the unembedding reads
  the token slot, so the copied token wins the next-token prediction.
"""

from __future__ import annotations

import torch

from emergence.models.gpt import GPT, GPTConfig

SHARP = 100.0  # c: attention logits c/√D ≈ 10 make the softmax nearly one-hot


def induction_model(vocab: int = 40, span: int = 10, n_layer: int = 2) -> GPT:
    """The hand-set model (n_layer=1 keeps only the previous-token layer)."""
    P = 1 + 2 * span
    D = 2 * vocab + P
    cfg = GPTConfig(
        vocab_size=vocab,
        n_layer=n_layer,
        n_head=1,
        d_model=D,
        n_ctx=P,
        attn_only=True,
        norm="none",
        bias=False,
        tie_embeddings=False,
    )
    model = GPT(cfg).eval()
    tok, pos, prev = 0, vocab, vocab + P  # slot offsets
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.embed.weight[:, tok : tok + vocab] = torch.eye(vocab)
        model.W_pos[:, pos : pos + P] = torch.eye(P)
        model.unembed.weight[:, tok : tok + vocab] = 5 * torch.eye(vocab)

        a0 = model.blocks[0].attn  # qkv.weight (3D, D) = [W_q; W_k; W_v], rows are output features
        wq, wk, wv = a0.qkv.weight[:D], a0.qkv.weight[D : 2 * D], a0.qkv.weight[2 * D :]
        for i in range(P):
            wq[pos + i, pos + i] = SHARP
        for j in range(P - 1):
            wk[pos + j + 1, pos + j] = 1.0  # key of position j looks like query j + 1
        wv[tok : tok + vocab, tok : tok + vocab] = torch.eye(vocab)
        a0.out.weight[prev : prev + vocab, tok : tok + vocab] = torch.eye(vocab)

        if n_layer > 1:
            a1 = model.blocks[1].attn
            wq, wk, wv = a1.qkv.weight[:D], a1.qkv.weight[D : 2 * D], a1.qkv.weight[2 * D :]
            wq[prev : prev + vocab, tok : tok + vocab] = SHARP * torch.eye(vocab)
            wk[prev : prev + vocab, prev : prev + vocab] = torch.eye(vocab)
            wv[tok : tok + vocab, tok : tok + vocab] = torch.eye(vocab)
            a1.out.weight[tok : tok + vocab, tok : tok + vocab] = 2 * torch.eye(vocab)
    return model
