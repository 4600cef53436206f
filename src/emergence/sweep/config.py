"""The study configuration: what a study YAML file may say.

A study is a model family × seeds × tasks under one training budget, evaluated and analysed the same way:

    name: default
    family:   {members: [...]} or {geometric: {min_params: 1e3, max_params: 1e5, n: 5}}, plus shared `base`
    seeds:    [0, 1]
    tasks:    [{name: addition, options: {digits: 2, reverse: true}}]
    budget:   {kind: steps, steps: 600}      # or tokens, tokens_per_param (tokens ∝ params), flops
    train:    {lr: 3e-3, batch_size: 64}     # TrainConfig fields shared by every run
    eval:     {shots: [0], n_examples: 200}  # EvalConfig fields
    analysis: {}                             # AnalysisConfig fields
    executor: {kind: local, workers: 1, threads_per_worker: 0}
    mechanisms: {enabled: false, steps: final}   # + MechanismsConfig fields
    finetune: {enabled: false, methods: [lora]}  # + FinetuneSettings fields (sweep.adaptation)
    tracking: {tensorboard: false}           # TrackingConfig fields, passed to every run's trainer

`train`, `data`, `eval` and `analysis` are owned by their modules' configs (TrainConfig, DataConfig,
EvalConfig, AnalysisConfig): this file keeps them as mappings and `validate_study` builds them, so that the
field names and defaults have one source of truth and an error still names the dotted field
(`eval.shots[1]: …`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from emergence.config import apply_overrides, from_dict, load_yaml_dict
from emergence.errors import UserError

BudgetKind = Literal["steps", "tokens", "tokens_per_param", "flops"]


@dataclass(frozen=True)
class TaskSpec:
    """One task of the study: trained on (its train split joins the data mixture) and evaluated."""

    name: str  # a registered task (`emergence tasks` lists them)
    options: dict[str, Any] = field(default_factory=dict)  # passed to make_task(name, **options)
    weight: float = 1.0  # share of this task's examples in the training mixture
    # Evaluated but never trained on: its train split stays out of the mixture (generalisation to unseen
    # tasks or task variants); results mark its rows `held_out`.
    held_out: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name: must not be empty")
        if not (self.weight > 0 and math.isfinite(self.weight)):
            raise ValueError(f"weight: must be a positive number, got {self.weight}")


@dataclass(frozen=True)
class GeometricSpec:
    """Members spaced geometrically in non-embedding parameters between two counts."""

    min_params: float  # non-embedding parameters of the smallest member
    max_params: float  # ... and of the largest
    n: int  # number of members
    # What grows: "width" (d_model at fixed depth), "depth" (layers at fixed width), "both" (together).
    scale: Literal["width", "depth", "both"] = "both"
    aspect: float = 32.0  # scale "both": target d_model / n_layer
    n_layer: int = 4  # scale "width": the fixed depth
    d_model: int = 128  # scale "depth": the fixed width
    d_head: int = 16  # head width; n_head = d_model / d_head

    def __post_init__(self) -> None:
        if not self.min_params > 0:
            raise ValueError(f"min_params: must be positive, got {self.min_params}")
        if not self.max_params >= self.min_params:
            raise ValueError(
                f"max_params: must be at least min_params ({self.min_params}), got {self.max_params}"
            )
        if self.n < 1:
            raise ValueError(f"n: must be at least 1, got {self.n}")


@dataclass(frozen=True)
class HFMemberSpec:
    """One local Hugging Face model (or one checkpoint of it): an evaluation-only run, never trained here.

    Entries sharing a `name` are one member's checkpoints (a curve over training, like the Pythia suite's
    `step1000` … `step143000` revisions); different names are different sizes (the scale axis).
    """

    name: str  # the member name in the results
    # A model directory, or (with cache_dir) a repository name in a local Hugging Face cache. Read offline
    # only: downloading is the user's business.
    path: str
    revision: str | None = None  # a branch/tag in the local cache, e.g. "step3000"
    subfolder: str | None = None  # a checkpoint subdirectory inside `path`, e.g. "checkpoints/step3000"
    cache_dir: str | None = None  # the Hugging Face cache holding `path` (None: `path` is a directory)
    step: int | None = None  # training step of this checkpoint; None: parsed from "stepN", else 0
    tokens_seen: float | None = None  # training tokens up to this checkpoint, when known (gives flops)
    n_params: int | None = None  # None: counted from the loaded model

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "/\\"):
            raise ValueError(f"name: must be a plain name, got {self.name!r}")
        if not self.path:
            raise ValueError("path: must not be empty")
        if self.step is not None and self.step < 0:
            raise ValueError(f"step: must be ≥ 0, got {self.step}")
        if self.tokens_seen is not None and not self.tokens_seen >= 0:
            raise ValueError(f"tokens_seen: must be ≥ 0, got {self.tokens_seen}")
        if self.n_params is not None and self.n_params < 1:
            raise ValueError(f"n_params: must be positive, got {self.n_params}")


@dataclass(frozen=True)
class FamilyConfig:
    """The model family: members to train (a list or a geometric rule) and/or local Hugging Face models."""

    # Each member is a preset name ("tiny") or a mapping of model fields, with optional `name`, `preset`
    # (start from a GPT preset, then override), `train` (TrainConfig fields for this member only, e.g. its
    # lr) and `arch` (gpt, the default; lstm; lstm_vae: then the fields are LSTMConfig / LSTMVAEConfig's).
    members: tuple[str | dict[str, Any], ...] = ()
    geometric: GeometricSpec | None = None
    # Model fields every member shares (n_ctx, dropout, act…); vocab_size comes from the tokenizer. A member
    # of another architecture takes only the base fields its config has (n_ctx, dropout, …).
    base: dict[str, Any] = field(default_factory=dict)
    # Local Hugging Face models evaluated as they are (no training), beside or instead of trained members.
    hf: tuple[HFMemberSpec, ...] = ()

    def __post_init__(self) -> None:
        if self.members and self.geometric is not None:
            raise ValueError("give either members (an explicit list) or geometric (a rule), not both")
        if not self.members and self.geometric is None and not self.hf:
            raise ValueError("give members (an explicit list), geometric (a rule) or hf (local models)")

    @property
    def trains(self) -> bool:
        """Whether any member is trained here (an hf-only family is evaluation only)."""
        return bool(self.members) or self.geometric is not None


@dataclass(frozen=True)
class BudgetConfig:
    """How long each member trains: fixed steps, fixed tokens, or a compute rule."""

    kind: BudgetKind = "steps"
    steps: int | None = None  # kind steps: optimizer steps for every member
    tokens: float | None = None  # kind tokens: training tokens for every member
    # kind tokens_per_param: tokens = tokens_per_param × non-embedding params (Chinchilla-style, ~20).
    tokens_per_param: float | None = None
    # kind flops: the same compute for every member, tokens = flops / flops_per_token (≈ 6N + 12·L·T·D).
    flops: float | None = None
    # Data size varied: every member trains at each multiple of the budget above (e.g. [0.25, 0.5, 1]), so
    # that a Chinchilla fit L(N, D) sees several D per N; result rows then carry `budget_multiplier`.
    multipliers: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        needed = getattr(self, self.kind)
        if needed is None:
            raise ValueError(f"{self.kind}: required when kind is {self.kind!r}")
        if not needed > 0:
            raise ValueError(f"{self.kind}: must be positive, got {needed}")
        # An amount of another kind would be ignored silently (budget.steps=300 on a tokens_per_param study)
        for other in ("steps", "tokens", "tokens_per_param", "flops"):
            if other != self.kind and getattr(self, other) is not None:
                raise ValueError(
                    f"{other}: set, but kind is {self.kind!r}; to train by {other}, replace the whole "
                    f"section: budget={{kind: {other}, {other}: …}}"
                )
        if not self.multipliers or any(not (m > 0 and math.isfinite(m)) for m in self.multipliers):
            raise ValueError(f"multipliers: need positive numbers, got {list(self.multipliers)}")
        if len(set(self.multipliers)) != len(self.multipliers):
            raise ValueError(f"multipliers: duplicates in {list(self.multipliers)}")


@dataclass(frozen=True)
class ExecutorConfig:
    """Where runs execute; `kind` names a registered executor."""

    kind: str = "local"
    workers: int = 1  # 1 runs in this process (simplest to debug); N > 1 uses N worker processes
    # Torch threads per worker; 0 shares the machine's cores among the workers. 1 by default: the lab's small
    # models gain nothing from intra-op threads; on a busy machine extra threads spin (measured 10x slower).
    threads_per_worker: int = 1
    options: dict[str, Any] = field(default_factory=dict)  # extra keyword arguments for other executors

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers: must be at least 1, got {self.workers}")
        if self.threads_per_worker < 0:
            raise ValueError(
                f"threads_per_worker: must be 0 (auto) or positive, got {self.threads_per_worker}"
            )


@dataclass(frozen=True)
class StudyConfig:
    """A whole study: family × seeds × tasks, one budget, one evaluation and analysis, one executor."""

    name: str  # also the default output directory, runs/<name>
    family: FamilyConfig
    # Trained on and evaluated; with a corpus (`data.corpus` / `data.generate`) evaluated only, and optional.
    tasks: tuple[TaskSpec, ...] = ()
    budget: BudgetConfig | None = None  # required when the family has members to train
    seeds: tuple[int, ...] = (0,)
    description: str = ""
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields shared by every run
    data: dict[str, Any] = field(default_factory=dict)  # DataConfig fields other than the tasks
    eval: dict[str, Any] = field(default_factory=dict)  # EvalConfig fields
    analysis: dict[str, Any] = field(default_factory=dict)  # AnalysisConfig fields
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    # MechanismsConfig fields plus `enabled` (default false) and `steps` ("final" | "all" checkpoints): when
    # enabled, the study measures mechanisms on its runs' checkpoints after the analysis, before the report.
    mechanisms: dict[str, Any] = field(default_factory=dict)
    # TrackingConfig fields (TensorBoard / MLflow) given to every run's trainer; not part of the run id, since
    # where the training curve is mirrored does not change what is trained.
    tracking: dict[str, Any] = field(default_factory=dict)
    # `enabled`, `methods`, `tasks` and FinetuneSettings fields: fine-tune every run's final checkpoint on
    # choice tasks and add rows with an `adaptation` column (sweep.adaptation; docs/studies.md).
    finetune: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "/\\") or self.name in {".", ".."}:
            raise ValueError(f"name: must be a plain directory name, got {self.name!r}")
        if not self.tasks and not (self.data.get("corpus") or self.data.get("generate") is not None):
            raise ValueError("tasks: give at least one task (or a corpus: data.corpus / data.generate)")
        if not self.seeds:
            raise ValueError("seeds: give at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: duplicates in {list(self.seeds)}")
        if len({_task_key(t) for t in self.tasks}) != len(self.tasks):
            raise ValueError("tasks: the same task with the same options is listed twice")
        on_corpus = bool(self.data.get("corpus")) or self.data.get("generate") is not None
        if not on_corpus and all(t.held_out for t in self.tasks):  # a corpus study trains on the corpus
            raise ValueError("tasks: every task is held out; at least one must be trained on")
        if self.budget is None and self.family.trains:
            raise ValueError("budget: required when the family has members to train")


def _task_key(t: TaskSpec) -> str:
    return f"{t.name}:{sorted(t.options.items())!r}"


def parse_study(data: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> StudyConfig:
    """Build a StudyConfig from plain data plus dotted overrides; errors name the field."""
    if overrides:
        data = apply_overrides(data, list(overrides))
    data = dict(data)
    tasks = data.get("tasks")
    # Shorthands: `tasks: addition`, `tasks: [addition, {name: modular, options: {p: 13}}]`.
    if isinstance(tasks, str | dict):
        tasks = [tasks]
    if isinstance(tasks, list):
        data["tasks"] = [{"name": t} if isinstance(t, str) else t for t in tasks]
    family = data.get("family")
    hf = family.get("hf") if isinstance(family, dict) else None
    for i, item in enumerate(hf if isinstance(hf, list) else []):
        # The field every entry needs, named the way a user reads it (from_dict would name the constructor).
        for key in ("name", "path"):
            if isinstance(item, dict) and not item.get(key):
                raise UserError(f"family.hf[{i}].{key}: required (see docs/integrations/pythia.md)")
    return from_dict(StudyConfig, data)


def load_study(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> StudyConfig:
    """Read a study YAML file, apply overrides and validate everything down to the module configs."""
    data = load_yaml_dict(path)
    data.setdefault("name", Path(path).stem)
    cfg = parse_study(data, overrides)
    validate_study(cfg)
    return cfg


MechanismsSteps = Literal["all", "final"]


@dataclass(frozen=True)
class MechanismsSection:
    """The study's `mechanisms:` section read apart: whether to measure, which checkpoints, and how."""

    enabled: bool
    steps: MechanismsSteps
    config: Any  # emergence.analysis.mechanisms.MechanismsConfig


def mechanisms_section(cfg: StudyConfig) -> MechanismsSection:
    """Validate `mechanisms:` (errors name `mechanisms.<field>`) and split off `enabled` and `steps`."""
    from emergence.analysis.mechanisms import MechanismsConfig

    fields = dict(cfg.mechanisms)
    enabled = fields.pop("enabled", False)
    steps = fields.pop("steps", "final")
    if not isinstance(enabled, bool):
        raise UserError(f"mechanisms.enabled: expected true or false, got {enabled!r}")
    if steps not in ("all", "final"):
        raise UserError(f"mechanisms.steps: expected 'all' or 'final', got {steps!r}")
    return MechanismsSection(enabled, steps, from_dict(MechanismsConfig, fields, where="mechanisms"))


def validate_study(cfg: StudyConfig) -> None:
    """Check the sections owned by other modules (tasks, train, eval, analysis, executor) without running."""
    from emergence.analysis.emergence import AnalysisConfig
    from emergence.evaluate import EvalConfig
    from emergence.sweep.executors import executor_kwargs
    from emergence.tasks import make_task

    for i, t in enumerate(cfg.tasks):
        try:
            make_task(t.name, **t.options)
        except UserError as e:
            raise UserError(f"tasks[{i}]: {e}") from None
        except (TypeError, ValueError) as e:
            raise UserError(f"tasks[{i}].options: {e}") from None
    from_dict(EvalConfig, cfg.eval, where="eval")
    from_dict(AnalysisConfig, cfg.analysis, where="analysis")
    mechanisms_section(cfg)
    from emergence.sweep.adaptation import validate_finetune

    validate_finetune(cfg)
    from emergence.tracking import TrackingConfig

    from_dict(TrackingConfig, cfg.tracking, where="tracking")
    ex = cfg.executor
    try:
        # Imports a plugin executor's module (not its cluster library) and checks its options by signature.
        executor_kwargs(ex.kind, ex.workers, ex.threads_per_worker, ex.options)
    except UserError as e:
        message = str(e)
        raise UserError(message if message.startswith("executor.") else f"executor.kind: {message}") from None
    for i, h in enumerate(cfg.family.hf):
        # Only what can be checked without loading: the model itself is read when its run starts.
        if h.cache_dir is None and not Path(h.path).expanduser().is_dir():
            raise UserError(f"family.hf[{i}].path: no such directory: {h.path}")
        if h.cache_dir is not None and not Path(h.cache_dir).expanduser().is_dir():
            raise UserError(f"family.hf[{i}].cache_dir: no such directory: {h.cache_dir}")
    # train/data/family are checked by building every run's config (plan.plan_study), which names the member.
