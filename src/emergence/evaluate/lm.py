"""The language-model protocol the evaluator sees, its adapter for our GPT, and a scripted dummy for tests.

A model is two batched methods (after lm-evaluation-harness): `loglikelihood` scores continuations given
contexts, teacher-forced; `generate` continues prompts greedily until a stop sequence. Both take a
`shared_prefix`: text that precedes *every* request of the call (the few-shot demonstrations of one trial).
A backend may encode it once and reuse its key/value cache; the result must not depend on whether it does.

Tokenization: the shared prefix, each context and each continuation are encoded separately and concatenated
(`[<bos>] + prefix + context + continuation`), so that the continuation's tokens are exactly the answer's
tokens and the cached and uncached paths see the same ids. For a character tokenizer this equals encoding the
joined text.

The prefix cache (GPTLanguageModel):

    prefix ids (1, P) ──► GPT ──► KVCache(1 row, length P) + logits of the last prefix position
                                     │ .expand(B)  (stride-0 views, no copy)
    query+answer ids (B, T) ────────►└─► GPT(cache) ──► logits (B, T, V); positions continue at P

Rows are right-padded: a causal model never lets a pad token influence an earlier position, so no attention
mask is needed for scoring. Generation batches only prompts of equal token length (no padding at all), so
every row's next token sits in the same column.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch

from emergence.errors import UserError
from emergence.models.gpt import KVCache

if TYPE_CHECKING:
    from emergence.models.gpt import GPT
    from emergence.tokenizers import Tokenizer


@dataclass(frozen=True)
class LLResult:
    """Teacher-forced score of one continuation: total and per-token log-probabilities, argmax hits, ranks."""

    logprob: float  # Σ log p(token_i | context, token_<i), natural log
    is_greedy: bool  # every continuation token is the argmax of its next-token distribution
    token_logprobs: tuple[float, ...]
    token_greedy: tuple[bool, ...]
    token_ranks: tuple[int, ...]  # 1 + number of vocabulary entries scored strictly higher than the token

    @property
    def n_tokens(self) -> int:
        """Number of continuation tokens."""
        return len(self.token_logprobs)

    @classmethod
    def from_tokens(cls, logprobs: Sequence[float], greedy: Sequence[bool], ranks: Sequence[int]) -> LLResult:
        """Build from per-token values (the totals are derived, so they can never disagree)."""
        return cls(
            logprob=float(sum(logprobs)),
            is_greedy=bool(all(greedy)),
            token_logprobs=tuple(float(x) for x in logprobs),
            token_greedy=tuple(bool(x) for x in greedy),
            token_ranks=tuple(int(x) for x in ranks),
        )


@runtime_checkable
class LanguageModel(Protocol):
    """What the evaluator needs from a model (ours, Hugging Face's, an LSTM, a dummy)."""

    @property
    def max_length(self) -> int:
        """Text tokens that fit in one sequence: prefix + context + continuation (or generated tokens)."""
        ...

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text` alone (no special tokens)."""
        ...

    def n_tokens(self, text: str) -> int:
        """len(tokenize(text))."""
        ...

    def loglikelihood(
        self, requests: Sequence[tuple[str, str]], *, shared_prefix: str = ""
    ) -> list[LLResult]:
        """Score each (context, continuation) after `shared_prefix`; results in request order."""
        ...

    def generate(
        self,
        prompts: Sequence[str],
        *,
        stop: Sequence[str],
        max_new_tokens: int,
        shared_prefix: str = "",
    ) -> list[str]:
        """Greedy continuation of each prompt after `shared_prefix`, cut before the first stop sequence."""
        ...


def score_rows(
    logits: torch.Tensor, lengths: Sequence[int], conts: Sequence[Sequence[int]], shift: int
) -> list[LLResult]:
    """Teacher-forced scores of each row's continuation (its last len(cont) tokens) from (B, T', V) logits.

    Row b's token at position p is predicted by logits column p + shift (-1 for a plain forward pass, 0 when
    the column before the row comes from a cached prefix). Log-softmax runs in at least fp32.
    """
    b_idx: list[int] = []
    p_idx: list[int] = []
    toks: list[int] = []
    for b, (n_row, cont) in enumerate(zip(lengths, conts, strict=True)):
        start = n_row - len(cont)
        b_idx.extend([b] * len(cont))
        p_idx.extend(range(start + shift, start + shift + len(cont)))
        toks.extend(cont)
    if not toks:
        return [LLResult.from_tokens([], [], []) for _ in conts]
    sel = logits[torch.tensor(b_idx), torch.tensor(p_idx)]  # (N, V)
    if sel.dtype in (torch.float16, torch.bfloat16):
        sel = sel.float()
    sel = sel.log_softmax(-1)
    tok = torch.tensor(toks, device=logits.device)[:, None]  # (N, 1)
    lp = sel.gather(1, tok)  # (N, 1)
    greedy = (sel.argmax(-1, keepdim=True) == tok)[:, 0].tolist()
    ranks = ((sel > lp).sum(-1) + 1).tolist()
    lps = lp[:, 0].tolist()
    out, pos = [], 0
    for cont in conts:
        n = len(cont)
        out.append(LLResult.from_tokens(lps[pos : pos + n], greedy[pos : pos + n], ranks[pos : pos + n]))
        pos += n
    return out


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` before the earliest occurrence of any stop sequence; also say whether one occurred."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (a too-long batch fails early)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def equal_length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches whose members all have the same length, longest first."""
    by_len: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        by_len.setdefault(n, []).append(i)
    out: list[list[int]] = []
    for n in sorted(by_len, reverse=True):
        idx = by_len[n]
        out.extend(idx[i : i + batch_size] for i in range(0, len(idx), batch_size))
    return out


# --------------------------------------------------------------------------------------------- our GPT


class PreallocatedCache(KVCache):
    """A KV cache whose appends write into buffers sized up front: a step costs O(new), not O(length).

    The plain cache concatenates the whole history at every step; when generating a few tokens after a long
    few-shot prefix that copy dominates the step. Here the (batch-1) source prefix is copied into each row
    once, and every later append writes in place; the GPT reads (B, H, filled, Dh) views.
    """

    def __init__(self, source: KVCache, batch_size: int, capacity: int) -> None:
        keys, values = [], []
        for k, v in zip(source.keys, source.values, strict=True):
            shape = (batch_size, k.shape[1], capacity, k.shape[3])  # (B, H, capacity, Dh)
            kb, vb = k.new_empty(shape), v.new_empty(shape)
            kb[:, :, : source.length] = k  # broadcasts a batch-1 prefix over the rows
            vb[:, :, : source.length] = v
            keys.append(kb)
            values.append(vb)
        super().__init__(keys, values, source.length)
        self.capacity = capacity
        self.filled = [source.length] * len(keys)

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write new (B, H, T, Dh) keys/values in place; return views of all filled positions."""
        start, end = self.filled[layer], self.filled[layer] + k.shape[2]
        if end > self.capacity:
            raise ValueError(f"preallocated cache: {end} positions exceed its capacity {self.capacity}")
        self.keys[layer][:, :, start:end] = k
        self.values[layer][:, :, start:end] = v
        self.filled[layer] = end
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]  # (B, H, end, Dh) views

    def expand(self, batch_size: int) -> KVCache:
        """Not needed for decoding; a preallocated cache is built for its final batch size."""
        raise NotImplementedError("PreallocatedCache is built for one batch size")

    def clone(self) -> KVCache:
        """A plain cache with a copy of the filled positions."""
        n = self.filled[0]
        return KVCache(
            [k[:, :, :n].clone() for k in self.keys], [v[:, :, :n].clone() for v in self.values], self.length
        )


class TokenizedAdapter:
    """What our own model adapters share: a tokenizer of ours, an optional <bos>, a model with `cfg.n_ctx`.

    Subclasses set `model`, `tokenizer`, `add_bos` and `device`.
    """

    model: Any
    tokenizer: Any
    add_bos: bool
    device: torch.device

    @property
    def max_length(self) -> int:
        """n_ctx minus the <bos> the adapter prepends."""
        return self.model.cfg.n_ctx - int(self.add_bos)

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text` alone."""
        return self.tokenizer.encode(text)

    def n_tokens(self, text: str) -> int:
        """len(tokenize(text))."""
        return len(self.tokenize(text))

    def _head_ids(self, shared_prefix: str) -> list[int]:
        return ([self.tokenizer.bos_id] if self.add_bos else []) + self.tokenize(shared_prefix)

    def _check_length(self, n: int, what: str) -> None:
        if n > self.model.cfg.n_ctx:
            raise UserError(
                f"{what} needs {n} tokens but the model's context is n_ctx={self.model.cfg.n_ctx}; use fewer "
                "shots or shorter prompts"
            )

    def _padded(self, rows: Sequence[Sequence[int]]) -> torch.Tensor:
        T = max(len(r) for r in rows)
        idx = torch.full((len(rows), T), self.tokenizer.pad_id, dtype=torch.long)  # (B, T)
        for b, r in enumerate(rows):
            idx[b, : len(r)] = torch.tensor(r, dtype=torch.long)
        return idx.to(self.device)


class GPTLanguageModel(TokenizedAdapter):
    """`LanguageModel` for our GPT: batched, length-sorted, with a shared-prefix key/value cache."""

    def __init__(
        self,
        model: GPT,
        tokenizer: Tokenizer,
        *,
        batch_size: int = 32,
        device: str | torch.device = "cpu",
        use_prefix_cache: bool = True,
        add_bos: bool = True,
    ) -> None:
        if batch_size < 1:
            raise UserError(f"batch_size: must be at least 1, got {batch_size}")
        if not model.cfg.causal:
            raise UserError("GPTLanguageModel: needs a causal model (this one was built with causal=False)")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()  # eval: dropout off, so scores are deterministic
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.use_prefix_cache = use_prefix_cache
        # Training sequences start with <bos> (`<bos> prompt target <eos>`), so evaluation does too.
        self.add_bos = add_bos

    # ------------------------------------------------------------------------------------------- helpers

    def _encode_prefix(self, head: list[int]) -> tuple[KVCache, torch.Tensor]:
        """Run the prefix once: its batch-1 cache and the logits (1, V) for the first token after it."""
        cache = self.model.new_cache(1)
        idx = torch.tensor([head], dtype=torch.long, device=self.device)  # (1, P)
        last = self.model(idx, cache=cache, last_only=True)[:, -1]  # (1, V)
        return cache, last

    # ------------------------------------------------------------------------------------------- scoring

    @torch.inference_mode()
    def loglikelihood(
        self, requests: Sequence[tuple[str, str]], *, shared_prefix: str = ""
    ) -> list[LLResult]:
        """Teacher-forced log-likelihood of each continuation; the shared prefix is encoded once."""
        head = self._head_ids(shared_prefix)
        encoded = [(self.tokenize(c), self.tokenize(x)) for c, x in requests]
        for (ctx, cont), (c_text, _) in zip(encoded, requests, strict=True):
            self._check_length(len(head) + len(ctx) + len(cont), f"request with context {c_text[-40:]!r}")
            if cont and not head and not ctx:
                raise UserError("loglikelihood: the first continuation token has no context (set add_bos)")
        cached = self.use_prefix_cache and len(head) > 1  # a lone <bos> is not worth a cache
        prefix_cache, prefix_last = self._encode_prefix(head) if cached else (None, None)
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
                assert prefix_cache is not None and prefix_last is not None
                logits = self.model(idx, cache=prefix_cache.expand(B))  # (B, T, V)
                # Row position p is predicted by column p of [last prefix logits, logits of the row].
                logits = torch.cat([prefix_last.expand(B, 1, -1), logits], dim=1)  # (B, T+1, V)
                shift = 0
            else:
                logits = self.model(idx)  # (B, T, V)
                shift = -1  # position p is predicted by column p-1
            scored = score_rows(logits, [len(r) for r in rows], [encoded[i][1] for i in batch], shift)
            for i, r in zip(batch, scored, strict=True):
                results[i] = r
        assert all(r is not None for r in results), "every request belongs to exactly one batch"
        return results  # type: ignore[return-value]

    # ------------------------------------------------------------------------------------------- generation

    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[str],
        *,
        stop: Sequence[str],
        max_new_tokens: int,
        shared_prefix: str = "",
    ) -> list[str]:
        """Greedy decoding with a KV cache until a special token, a stop sequence, max_new_tokens or n_ctx."""
        head = self._head_ids(shared_prefix)
        encoded = [self.tokenize(p) for p in prompts]
        for ids, text in zip(encoded, prompts, strict=True):
            self._check_length(len(head) + len(ids), f"prompt {text[-40:]!r}")
            if not head and not ids:
                raise UserError("generate: empty prompt and no <bos> to start from (set add_bos)")
        cached = self.use_prefix_cache and len(head) > 1  # a lone <bos> is not worth a cache
        prefix_cache, prefix_last = self._encode_prefix(head) if cached else (None, None)
        # <eos> ends an answer; so does any other special token (a text answer cannot contain one, and only an
        # untrained model emits them), which keeps every returned character a greedy pick of the model.
        t = self.tokenizer
        enders = {t.eos_id, t.pad_id, t.bos_id, t.sep_id}
        out: list[str] = [""] * len(prompts)
        for batch in equal_length_batches([len(e) for e in encoded], self.batch_size):
            B = len(batch)
            L = len(encoded[batch[0]])
            budget = min(max_new_tokens, self.model.cfg.n_ctx - len(head) - L)
            capacity = len(head) + L + max(budget, 0)
            if cached:
                assert prefix_cache is not None and prefix_last is not None
                cache = PreallocatedCache(prefix_cache, B, capacity)
                if L == 0:
                    logits = prefix_last.expand(B, -1)  # (B, V)
                else:
                    idx = self._padded([encoded[i] for i in batch])  # (B, L), all rows full length
                    logits = self.model(idx, cache=cache, last_only=True)[:, -1]  # (B, V)
            else:
                cache = PreallocatedCache(self.model.new_cache(1), B, capacity)
                idx = self._padded([head + encoded[i] for i in batch])  # (B, P+L)
                logits = self.model(idx, cache=cache, last_only=True)[:, -1]  # (B, V)
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
                logits = self.model(nxt[:, None], cache=cache, last_only=True)[:, -1]  # (B, V)
            for b, i in enumerate(batch):
                out[i] = cut_at_stop(self.tokenizer.decode(new[b]), stop)[0]
        return out


# --------------------------------------------------------------------------------------------- dummy


class DummyLanguageModel:
    """A scripted character-level model for tests: `answer_fn(full context)` is the answer it believes in.

    Vocabulary: the characters of `alphabet` plus an end-of-answer token (never part of text). Scoring a
    continuation after context x: the model predicts `answer_fn(x)` one character at a time, then the end
    token; the predicted token gets probability `confidence`, every other token an equal share of the rest.
    Greedy generation returns `answer_fn(x)` cut at a stop sequence and at `max_new_tokens`, so generation
    and scoring agree (a generated answer always scores as greedy).
    """

    def __init__(
        self,
        answer_fn: Callable[[str], str],
        *,
        alphabet: str,
        confidence: float = 0.9,
        max_length: int = 4096,
    ) -> None:
        chars = sorted(set(alphabet))
        if not chars:
            raise UserError("DummyLanguageModel: alphabet must not be empty")
        self.vocab = {ch: i for i, ch in enumerate(chars)}
        self.vocab_size = len(chars) + 1  # + the end-of-answer token
        if not 1.0 / self.vocab_size < confidence < 1.0:
            raise UserError(
                f"confidence: must be in (1/V, 1) = ({1 / self.vocab_size:.3g}, 1), got {confidence}"
            )
        self.answer_fn = answer_fn
        self.confidence = confidence
        self._max_length = max_length
        self._log_hit = math.log(confidence)
        self._log_miss = math.log((1.0 - confidence) / (self.vocab_size - 1))
        self.calls: list[tuple[str, int]] = []  # (method, number of requests): lets tests see the batching

    @classmethod
    def from_answers(
        cls, answers: Mapping[str, str], *, alphabet: str, default: str = "", **kwargs: float | int
    ) -> DummyLanguageModel:
        """Answer a context with the value of the longest key it ends with (`default` when none matches)."""
        keys = sorted(answers, key=len, reverse=True)

        def answer_fn(context: str) -> str:
            return next((answers[k] for k in keys if context.endswith(k)), default)

        return cls(answer_fn, alphabet=alphabet, **kwargs)  # type: ignore[arg-type]

    @property
    def max_length(self) -> int:
        """Text tokens that fit in one sequence."""
        return self._max_length

    def tokenize(self, text: str) -> list[int]:
        """One id per character; an unknown character is a UserError."""
        try:
            return [self.vocab[ch] for ch in text]
        except KeyError:
            bad = next(ch for ch in text if ch not in self.vocab)
            raise UserError(f"DummyLanguageModel: character {bad!r} is not in the alphabet") from None

    def n_tokens(self, text: str) -> int:
        """len(tokenize(text))."""
        return len(self.tokenize(text))

    def _intended(self, context: str) -> str:
        answer = self.answer_fn(context)
        self.tokenize(answer)  # the script may only use the alphabet
        return answer

    def _check(self, n: int) -> None:
        if n > self._max_length:
            raise UserError(f"request needs {n} tokens but the model's context is {self._max_length}")

    def loglikelihood(
        self, requests: Sequence[tuple[str, str]], *, shared_prefix: str = ""
    ) -> list[LLResult]:
        """Score each continuation against the scripted answer, one character at a time."""
        self.calls.append(("loglikelihood", len(requests)))
        out = []
        for context, continuation in requests:
            full = shared_prefix + context
            self._check(len(full) + len(continuation))
            self.tokenize(full + continuation)
            intended = self._intended(full)
            hits = [i < len(intended) and ch == intended[i] for i, ch in enumerate(continuation)]
            out.append(
                LLResult.from_tokens(
                    [self._log_hit if h else self._log_miss for h in hits],
                    hits,
                    [1 if h else 2 for h in hits],
                )
            )
        return out

    def generate(
        self,
        prompts: Sequence[str],
        *,
        stop: Sequence[str],
        max_new_tokens: int,
        shared_prefix: str = "",
    ) -> list[str]:
        """The scripted answer, cut at the first stop sequence, max_new_tokens and the context length."""
        self.calls.append(("generate", len(prompts)))
        out = []
        for prompt in prompts:
            full = shared_prefix + prompt
            self._check(len(full))
            self.tokenize(full)
            budget = max(0, min(max_new_tokens, self._max_length - len(full)))
            out.append(cut_at_stop(self._intended(full)[:budget], stop)[0])
        return out
