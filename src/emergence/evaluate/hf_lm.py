"""`LanguageModel` backend for any local Hugging Face causal LM (GPT-2, GPT-NeoX/Pythia, our exports…).

Scoring is teacher-forced over right-padded, length-sorted batches with an attention mask; generation is
greedy over batches of equal-length prompts (so no left padding is needed), cut at stop sequences and at the
end-of-text token. No prefix cache here: Hugging Face cache objects differ across model families and versions,
and the uncached path is the reference the prefix cache is tested against anyway.

`add_bos`: our own exports were trained on `<bos> prompt target <eos>`, so they get the BOS token first (the
export directory says so); other models get it only when the text would otherwise be empty, like
lm-evaluation-harness's prefix token.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from emergence.errors import UserError
from emergence.evaluate.lm import (
    LLResult,
    cut_at_stop,
    equal_length_batches,
    length_sorted_batches,
    score_rows,
)


class HFLanguageModel:
    """`LanguageModel` over a `transformers` causal LM and its tokenizer."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        batch_size: int = 16,
        device: str | torch.device = "cpu",
        add_bos: bool | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        if bos is None:
            raise UserError(
                "Hugging Face tokenizer has neither a BOS nor an EOS token to start a sequence with"
            )
        self.prefix_id: int = int(bos)
        self.add_bos = bool(add_bos) if add_bos is not None else False
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.prefix_id
        self.pad_id: int = int(pad)
        self.n_ctx = int(
            getattr(model.config, "n_positions", None)
            or getattr(model.config, "max_position_embeddings", 2048)
        )

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, revision: str | None = None, subfolder: str | None = None, **kwargs: Any
    ) -> HFLanguageModel:
        """Load a local model directory (or cached repository at `revision`) offline."""
        from emergence.models.hf import EXPORT_INFO, load_hf_causal_lm

        model, tokenizer = load_hf_causal_lm(str(path), revision=revision, subfolder=subfolder)
        if "add_bos" not in kwargs:
            kwargs["add_bos"] = (Path(path) / (subfolder or "") / EXPORT_INFO).exists()
        return cls(model, tokenizer, **kwargs)

    @property
    def max_length(self) -> int:
        """Tokens that fit after the optional BOS."""
        return self.n_ctx - int(self.add_bos)

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text` alone (no special tokens)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def n_tokens(self, text: str) -> int:
        """len(tokenize(text))."""
        return len(self.tokenize(text))

    def _head(self, shared_prefix: str, first: list[int]) -> list[int]:
        head = ([self.prefix_id] if self.add_bos else []) + self.tokenize(shared_prefix)
        if not head and not first:
            head = [self.prefix_id]  # nothing to condition on: start from the prefix token
        return head

    def _padded(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        T = max(len(r) for r in rows)
        idx = torch.full((len(rows), T), self.pad_id, dtype=torch.long)  # (B, T)
        mask = torch.zeros((len(rows), T), dtype=torch.long)  # (B, T)
        for b, r in enumerate(rows):
            idx[b, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[b, : len(r)] = 1
        return idx.to(self.device), mask.to(self.device)

    @torch.inference_mode()
    def loglikelihood(
        self, requests: Sequence[tuple[str, str]], *, shared_prefix: str = ""
    ) -> list[LLResult]:
        """Teacher-forced log-likelihood of each continuation after `shared_prefix` + context."""
        rows: list[list[int]] = []
        conts: list[list[int]] = []
        for ctx, cont in requests:
            c, x = self.tokenize(ctx), self.tokenize(cont)
            row = self._head(shared_prefix, c) + c + x
            if len(row) > self.n_ctx:
                raise UserError(f"request needs {len(row)} tokens but the model's context is {self.n_ctx}")
            rows.append(row)
            conts.append(x)
        results: list[LLResult | None] = [None] * len(requests)
        for batch in length_sorted_batches([len(r) for r in rows], self.batch_size):
            idx, mask = self._padded([rows[i] for i in batch])
            logits = self.model(input_ids=idx, attention_mask=mask).logits  # (B, T, V)
            scored = score_rows(logits, [len(rows[i]) for i in batch], [conts[i] for i in batch], -1)
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
        """Greedy continuation of each prompt, cut before the first stop sequence or end-of-text."""
        rows = []
        for p in prompts:
            ids = self.tokenize(p)
            rows.append(self._head(shared_prefix, ids) + ids)
        enders = {t for t in (self.tokenizer.eos_token_id, self.tokenizer.pad_token_id) if t is not None}
        out = [""] * len(prompts)
        for batch in equal_length_batches([len(r) for r in rows], self.batch_size):
            L = len(rows[batch[0]])
            budget = min(max_new_tokens, self.n_ctx - L)
            if budget <= 0:
                raise UserError(f"prompt of {L} tokens leaves no room to generate (context {self.n_ctx})")
            idx = torch.tensor([rows[i] for i in batch], dtype=torch.long, device=self.device)  # (B, L)
            gen = self.model.generate(
                input_ids=idx,
                attention_mask=torch.ones_like(idx),
                max_new_tokens=budget,
                do_sample=False,
                pad_token_id=self.pad_id,
                eos_token_id=sorted(enders) or None,
            )[:, L:]  # (B, ≤budget)
            for b, i in enumerate(batch):
                ids = []
                for t in gen[b].tolist():
                    if t in enders:
                        break
                    ids.append(t)
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
                out[i] = cut_at_stop(text, stop)[0]
        return out
