"""Run configuration: what to train (`model`), on what (`data`) and how (`train`).

One YAML file describes one run:

    model: {n_layer: 2, n_head: 4, d_model: 128, n_ctx: 16}  # GPTConfig fields, or `preset: tiny` + overrides
    data:  {task: addition, task_options: {digits: 3, reverse_answer: true}, n_train: 20000}
    train: {steps: 1500, batch_size: 64, lr: 3e-3, warmup_steps: 50}

`model` stays a plain mapping here because its fields belong to `emergence.models.gpt.GPTConfig`;
`vocab_size` may be left out (the tokenizer supplies it). The *resolved* config (every default filled in, the
model section expanded to all GPTConfig fields) is what `train_run` writes to `run_dir/config.yaml` and beside
every checkpoint. Every field is documented in docs/training.md.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from emergence.config import from_dict, load_yaml_dict, to_dict
from emergence.corpus.generated import GeneratedCorpusConfig
from emergence.tracking import TrackingConfig


@dataclass(frozen=True)
class DataConfig:
    """Where training sequences come from: a registered task, text files, or a corpus the lab generates."""

    # A registered task name (`emergence tasks list`); exclusive with `corpus` and `generate`.
    task: str | None = None
    # Keyword options for the task factory (`make_task(task, **task_options)`).
    task_options: dict[str, Any] = field(default_factory=dict)
    # Text files for language modelling (split into n_ctx windows); exclusive with `task` and `generate`.
    corpus: tuple[str, ...] = ()
    # A corpus generated from this config (the grammar language), written once and read like `corpus`;
    # the config, not the file's location, is part of the run's identity (emergence.corpus.generated).
    generate: GeneratedCorpusConfig | None = None
    # "char": one id per character (task alphabet or corpus); "bpe": byte-level BPE trained on the corpus.
    tokenizer: Literal["char", "bpe"] = "char"
    # A saved tokenizer JSON to reuse instead of building one (keeps vocabularies equal across a family).
    tokenizer_path: str | None = None
    # Vocabulary size when training a BPE tokenizer.
    bpe_vocab_size: int = 512
    # "epoch": a fixed training set of n_train items, shuffled without replacement each epoch.
    # "fresh": new task examples every step (infinite data; the induction study), or random corpus windows.
    sampling: Literal["epoch", "fresh"] = "epoch"
    # Size of the fixed training set (tasks; None = the task's whole train split). Ignored for `fresh`.
    n_train: int | None = None
    # Seed of the task's example generator: fixes the training and test sets independently of train.seed.
    seed: int = 0
    # Held-out items scored for eval_loss at each evaluation.
    n_eval: int = 256
    # Held-out (and, for a fixed training set, training) examples greedily decoded for exact match.
    n_eval_generate: int = 64
    # Fraction of corpus windows held out for eval_loss (corpora only).
    val_fraction: float = 0.05

    def __post_init__(self) -> None:
        if (self.task is not None) + bool(self.corpus) + (self.generate is not None) != 1:
            raise ValueError("data: give exactly one of `task`, `corpus` or `generate`")
        if self.tokenizer == "bpe" and self.task is not None and self.tokenizer_path is None:
            raise ValueError("tokenizer: 'bpe' needs a corpus to train on (or a tokenizer_path)")
        if self.bpe_vocab_size < 260:
            raise ValueError("bpe_vocab_size: must be at least 260 (256 bytes + 4 special tokens)")
        if self.n_train is not None and self.n_train < 1:
            raise ValueError("n_train: must be positive")
        if self.n_eval < 0 or self.n_eval_generate < 0:
            raise ValueError("n_eval: must be non-negative")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError("val_fraction: must be in [0, 1)")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, budget, evaluation and checkpoint cadence."""

    # Budget: exactly one of `steps` (optimizer updates) or `tokens` (converted to steps, docs/training.md).
    steps: int | None = None
    tokens: int | None = None
    # Sequences per micro-batch; one optimizer step sees batch_size * grad_accum sequences.
    batch_size: int = 64
    grad_accum: int = 1
    # Peak learning rate after warm-up, and the floor the cosine decays to.
    lr: float = 1e-3
    min_lr: float = 1e-4
    # Linear warm-up from 0 over this many steps (nanoGPT), then `schedule` down to min_lr at the last step.
    warmup_steps: int = 100
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    # AdamW; decay applies to 2-D weights only (matmuls and embeddings), never to biases or norm gains.
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = (
        0.99  # 0.99 rather than 0.999: small models with few tokens per step (nanoGPT shakespeare-char)
    )
    eps: float = 1e-8
    # Clip the global gradient norm (0 disables).
    grad_clip: float = 1.0
    # Seeds model initialisation, dropout and data order (the data *content* is data.seed).
    seed: int = 0
    # Multiply every initial weight by this (1 = GPT-2's N(0, 0.02)). A large initial norm makes a network
    # memorise first and generalise only once weight decay has shrunk it: grokking (Liu et al. 2022,
    # "Omnigrok"; Nanda et al. 2023 initialise with std 1/√d_model, ~4-6x GPT-2's at d_model 64-128).
    init_scale: float = 1.0
    # Evaluate every this many steps (and at step 0 and the final step); 0 disables evaluation.
    eval_every: int = 100
    # Step checkpoints at 0, 1, 2, 4, … up to checkpoint_every, then every checkpoint_every steps, the last.
    checkpoint_every: int = 1000
    # Refresh checkpoints/latest (resume state) every this many steps, and at every step checkpoint.
    latest_every: int = 200
    # Keep the log-spaced step checkpoints (false: only `latest`, e.g. for quick experiments).
    log_checkpoints: bool = True
    # Compile the model with torch.compile (slower start, faster steps on long runs).
    compile: bool = False
    # The compiled tanh-GELU for fp32 CPU training (emergence.models.kernels; within 5e-7 of PyTorch's kernel,
    # not bit-identical): true, false, or "auto", on when the run is long enough to win back its compile.
    fused_gelu: Literal["auto"] | bool = "auto"
    # torch.set_num_threads for this run (None leaves torch's default).
    threads: int | None = None
    # "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:1", "mps"; bitwise resume is CPU-only.
    device: str = "auto"
    # "auto": bf16 autocast on CUDA, fp32 elsewhere; "fp32"; "bf16" (autocast; weights stay fp32).
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    # Log a metrics.jsonl record every this many steps (evaluation steps are always logged).
    log_every: int = 1
    # "clm": next-token prediction with a causal GPT. "mlm": BERT's masked LM (15 % of tokens; 80/10/10)
    # with a bidirectional GPT. "mlm_nsp": masked LM + next-sentence prediction on sentence pairs of
    # data.corpus (Devlin et al. 2019; docs/objectives.md). The encoder objectives build the model with
    # causal=False and one extra vocabulary id for [MASK].
    objective: Literal["clm", "mlm", "mlm_nsp"] = "clm"

    def __post_init__(self) -> None:
        if (self.steps is None) == (self.tokens is None):
            raise ValueError("train: give exactly one of `steps` or `tokens`")
        if self.steps is not None and self.steps < 0:
            raise ValueError("steps: must be non-negative")
        if self.tokens is not None and self.tokens < 1:
            raise ValueError("tokens: must be positive")
        for name in ("batch_size", "grad_accum", "checkpoint_every", "latest_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError("lr: must be positive")
        if not (0 <= self.min_lr <= self.lr):
            raise ValueError("min_lr: must be in [0, lr]")
        if self.warmup_steps < 0:
            raise ValueError("warmup_steps: must be non-negative")
        if not (math.isfinite(self.init_scale) and self.init_scale > 0):
            raise ValueError("init_scale: must be positive")
        if self.weight_decay < 0:
            raise ValueError("weight_decay: must be non-negative")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name}: must be in [0, 1)")
        if self.eps <= 0:
            raise ValueError("eps: must be positive")
        if self.grad_clip < 0:
            raise ValueError("grad_clip: must be non-negative (0 disables)")
        if self.eval_every < 0:
            raise ValueError("eval_every: must be non-negative (0 disables)")
        if self.threads is not None and self.threads < 1:
            raise ValueError("threads: must be at least 1")

    @property
    def sequences_per_step(self) -> int:
        """Sequences contributing to one optimizer update."""
        return self.batch_size * self.grad_accum


@dataclass(frozen=True)
class RunConfig:
    """One training run: model fields, data source and training settings."""

    data: DataConfig
    train: TrainConfig
    # GPTConfig fields (`vocab_size` optional); `preset: NAME` starts from emergence.models.families.PRESETS.
    model: dict[str, Any] = field(default_factory=dict)
    # TensorBoard / MLflow besides metrics.jsonl (does not change what is trained; off by default).
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        if self.train.objective == "mlm_nsp" and self.data.task is not None:
            raise ValueError("train.objective: mlm_nsp needs data.corpus (documents of sentences)")


def load_run_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a run YAML, apply dotted overrides and build a validated RunConfig."""
    from emergence.config import apply_overrides

    raw = apply_overrides(load_yaml_dict(path), list(overrides or []))
    return run_config_from_dict(raw)


def run_config_from_dict(raw: dict[str, Any]) -> RunConfig:
    """Build a RunConfig from plain data (errors name the dotted field)."""
    return from_dict(RunConfig, raw, where="")


# Fields added after runs were first saved, left out of the resolved config at their default, so that the
# resolved config (and a study's run id, its hash) of every run written before they existed stays what it was.
OMITTED_AT_DEFAULT = {"objective": "clm", "init_scale": 1.0, "fused_gelu": "auto"}  # train section
DATA_OMITTED_AT_DEFAULT: dict[str, Any] = {"generate": None}  # data section


def run_config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    """RunConfig → plain data for YAML."""
    train = to_dict(cfg.train)
    for key, default in OMITTED_AT_DEFAULT.items():
        if train.get(key) == default:
            train.pop(key)
    data = to_dict(cfg.data)
    for key, default in DATA_OMITTED_AT_DEFAULT.items():
        if key in data and data[key] == default:
            data.pop(key)
    return {
        "model": to_dict(dict(cfg.model)),
        "data": data,
        "train": train,
        "tracking": to_dict(cfg.tracking),
    }


def replace_model(cfg: RunConfig, model: dict[str, Any]) -> RunConfig:
    """A copy of `cfg` with the model section replaced (used to store the resolved model fields)."""
    return dataclasses.replace(cfg, model=dict(model))
