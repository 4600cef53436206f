"""`LanguageModel` adapter for the LSTM language model (`models.recurrent.LSTMLM`).

The same contract and tokenization as `GPTLanguageModel` (`[<bos>] + prefix + context + continuation`,
each encoded separately). The recurrent state after a prefix summarises it exactly, so the shared prefix is
run once and its final (h, c) of every layer is broadcast to the batch:

    prefix ids (1, P) ──► LSTM ──► state (h, c) per layer, (1, 1, H) ──► expand to (1, B, H)
                                   + logits of the last prefix position
    query+answer ids (B, T) ─────────────────────────────► LSTM(state) ──► logits (B, T, V)

Right-padded rows need no mask: a recurrent network's output at a position depends only on earlier tokens.
Generation runs equal-length prompt batches (no padding at all) and feeds one token per step with the state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from emergence.errors import UserError
from emergence.evaluate.lm import (
    LLResult,
    TokenizedAdapter,
    cut_at_stop,
    equal_length_batches,
    length_sorted_batches,
    score_rows,
)

if TYPE_CHECKING:
    from emergence.models.recurrent import LSTMLM, LSTMState
    from emergence.tokenizers import Tokenizer


def expand_state(state: LSTMState, batch_size: int) -> LSTMState:
    """A batch-1 state repeated for `batch_size` rows (contiguous: nn.LSTM needs dense hidden states)."""
    return [
        (h.expand(-1, batch_size, -1).contiguous(), c.expand(-1, batch_size, -1).contiguous())
        for h, c in state
    ]


class LSTMLanguageModel(TokenizedAdapter):
    """`LanguageModel` for `LSTMLM`: batched, length-sorted, with the prefix's recurrent state reused."""

    def __init__(
        self,
        model: LSTMLM,
        tokenizer: Tokenizer,
        *,
        batch_size: int = 32,
        device: str | torch.device = "cpu",
        use_prefix_cache: bool = True,
        add_bos: bool = True,
    ) -> None:
        if batch_size < 1:
            raise UserError(f"batch_size: must be at least 1, got {batch_size}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()  # eval: dropout off, deterministic scores
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.use_prefix_cache = use_prefix_cache
        self.add_bos = add_bos

    def _encode_prefix(self, head: list[int]) -> tuple[LSTMState, torch.Tensor]:
        """Run the prefix once: its batch-1 state and the logits (1, V) for the first token after it."""
        idx = torch.tensor([head], dtype=torch.long, device=self.device)  # (1, P)
        logits, state = self.model.forward_state(idx)
        return state, logits[:, -1]  # (1, V)

    @torch.inference_mode()
    def loglikelihood(
        self, requests: Sequence[tuple[str, str]], *, shared_prefix: str = ""
    ) -> list[LLResult]:
        """Teacher-forced log-likelihood of each continuation; the shared prefix is run once."""
        head = self._head_ids(shared_prefix)
        encoded = [(self.tokenize(c), self.tokenize(x)) for c, x in requests]
        for (ctx, cont), (c_text, _) in zip(encoded, requests, strict=True):
            self._check_length(len(head) + len(ctx) + len(cont), f"request with context {c_text[-40:]!r}")
            if cont and not head and not ctx:
                raise UserError("loglikelihood: the first continuation token has no context (set add_bos)")
        cached = self.use_prefix_cache and len(head) > 0
        prefix_state, prefix_last = self._encode_prefix(head) if cached else (None, None)
        body = [ctx + cont if cached else head + ctx + cont for ctx, cont in encoded]

        results: list[LLResult | None] = [None] * len(requests)
        for batch in length_sorted_batches([len(r) for r in body], self.batch_size):
            rows = [body[i] for i in batch]
            B = len(rows)
            if max(len(r) for r in rows) == 0:  # only empty continuations after a cached prefix
                for i in batch:
                    results[i] = LLResult.from_tokens([], [], [])
                continue
            idx = self._padded(rows)  # (B, T)
            if cached:
                assert prefix_state is not None and prefix_last is not None
                logits = self.model(idx, expand_state(prefix_state, B))  # (B, T, V)
                logits = torch.cat([prefix_last.expand(B, 1, -1), logits], dim=1)  # (B, T+1, V)
                shift = 0  # row position p is predicted by column p
            else:
                logits = self.model(idx)  # (B, T, V)
                shift = -1  # position p is predicted by column p-1
            scored = score_rows(logits, [len(r) for r in rows], [encoded[i][1] for i in batch], shift)
            for i, r in zip(batch, scored, strict=True):
                results[i] = r
        return [r for r in results if r is not None]

    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[str],
        *,
        stop: Sequence[str],
        max_new_tokens: int,
        shared_prefix: str = "",
    ) -> list[str]:
        """Greedy decoding until a special token, a stop sequence, max_new_tokens or n_ctx."""
        head = self._head_ids(shared_prefix)
        encoded = [self.tokenize(p) for p in prompts]
        for ids, text in zip(encoded, prompts, strict=True):
            self._check_length(len(head) + len(ids), f"prompt {text[-40:]!r}")
            if not head and not ids:
                raise UserError("generate: empty prompt and no <bos> to start from (set add_bos)")
        cached = self.use_prefix_cache and len(head) > 0
        prefix_state, prefix_last = self._encode_prefix(head) if cached else (None, None)
        t = self.tokenizer
        enders = {t.eos_id, t.pad_id, t.bos_id, t.sep_id}  # as GPTLanguageModel: any special token ends
        out: list[str] = [""] * len(prompts)
        for batch in equal_length_batches([len(e) for e in encoded], self.batch_size):
            B = len(batch)
            L = len(encoded[batch[0]])
            budget = min(max_new_tokens, self.model.cfg.n_ctx - len(head) - L)
            if cached:
                assert prefix_state is not None and prefix_last is not None
                state = expand_state(prefix_state, B)
                if L == 0:
                    logits = prefix_last.expand(B, -1)  # (B, V)
                else:
                    step_logits, state = self.model.forward_state(
                        self._padded([encoded[i] for i in batch]), state
                    )
                    logits = step_logits[:, -1]  # (B, V)
            else:
                step_logits, state = self.model.forward_state(
                    self._padded([head + encoded[i] for i in batch])
                )
                logits = step_logits[:, -1]  # (B, V)
            new: list[list[int]] = [[] for _ in batch]
            done = [False] * B
            for step in range(budget):
                nxt = logits.argmax(-1)  # (B,)
                for b, tok in enumerate(nxt.tolist()):
                    if done[b]:
                        continue
                    if tok in enders:
                        done[b] = True
                        continue
                    new[b].append(tok)
                    if stop and cut_at_stop(self.tokenizer.decode(new[b]), stop)[1]:
                        done[b] = True
                if all(done) or step == budget - 1:
                    break
                step_logits, state = self.model.forward_state(nxt[:, None], state)  # (B, 1, V)
                logits = step_logits[:, -1]
            for b, i in enumerate(batch):
                out[i] = cut_at_stop(self.tokenizer.decode(new[b]), stop)[0]
        return out
