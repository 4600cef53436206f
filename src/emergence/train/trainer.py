"""The training loop: `train_run(config, run_dir)` trains one model with log-spaced checkpoints and resumes.

    resolve config ─► tokenizer ─► model (seeded) ─► objective ─► AdamW (decay on 2-D weights only)
                                                         │
    for step in [start, total):   lr = warm-up+cosine(step)
        objective.step_batches ─► objective.losses (each component's sum / its count over the whole step)
        ─► backward ─► clip grad norm ─► optimizer step ─► metrics.jsonl ─► eval ─► checkpoints

The objective (`train.objective`) is `clm` (`objectives.CausalObjective`) or an encoder objective, `mlm` /
`mlm_nsp` (`train.encoder.EncoderObjective`: a bidirectional model, masked batches, an NSP head and segment
embedding that train beside the model and are saved in every checkpoint as `heads.safetensors`).

Determinism: model initialisation and dropout use torch's global generator, seeded per run inside
`torch.random.fork_rng` (the caller's RNG state is untouched); data order uses a `torch.Generator` of its own.
Both states, the optimizer, the sampler position and the step are saved in `checkpoints/latest/`, so a run
resumed after an interruption ends with the same weights, bit for bit on CPU, as one that was never stopped.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import Any

import torch

from emergence.config import load_yaml_dict, to_dict
from emergence.errors import UserError
from emergence.io import append_jsonl, read_jsonl, write_text, write_yaml
from emergence.models.build import architecture, build_model, model_fields
from emergence.models.gpt import mlp_elements_per_step
from emergence.models.kernels import fused_gelu, use_fused_gelu
from emergence.runtime import tune_allocator
from emergence.tracking import Tracker, flatten
from emergence.train import checkpoint as ckpt
from emergence.train import distributed
from emergence.train.config import RunConfig, run_config_to_dict
from emergence.train.data import Batch, TrainData, derive_seed
from emergence.train.heldout import sentence_rows
from emergence.train.losses import OBJECTIVES
from emergence.train.objectives import CausalObjective
from emergence.train.schedule import lr_at

log = logging.getLogger(__name__)

# Test aid: exit the process abruptly (no clean-up, like a power cut) right after this optimizer step.
CRASH_ENV = "EMERGENCE_CRASH_AFTER_STEP"
CRASH_EXIT_CODE = 75
# Fields that may differ between an interrupted run and its resumption (they do not change the result).
RESUME_EXEMPT = (("train", "threads"), ("train", "device"), ("train", "precision"))


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the run cannot continue."""


# ---------------------------------------------------------------------------------------------- set-up


def resolve_model(
    model: dict[str, Any], vocab_size: int, tokenizer: Any | None = None, *, encoder: bool = False
) -> Any:
    """The model config of a model section (`arch`: gpt, lstm, lstm_vae): a GPT `preset` expanded,
    `vocab_size` from the tokenizer if absent, and a VAE's special ids from the tokenizer if given.

    `encoder`: a masked-LM model, bidirectional (`causal` false unless the config insists, which is an error)
    with one more vocabulary id for [MASK] (`vocab_size` is then the tokenizer's + 1).
    """
    from emergence.models.build import ARCH_KEY, DEFAULT_ARCH, model_config, split_arch
    from emergence.models.families import PRESETS

    arch, fields = split_arch(model)
    name = fields.pop("preset", None)
    if name is not None:
        if arch != DEFAULT_ARCH:
            raise UserError(f"model.preset: presets are GPT shapes; give the {arch} fields instead")
        if name not in PRESETS:
            from emergence.registry import unknown_name_message

            raise UserError(f"model.preset: {unknown_name_message('preset', name, PRESETS)}")
        fields = {**PRESETS[name], **fields}
    if encoder:
        if arch != DEFAULT_ARCH:
            raise UserError(f"train.objective: masked-LM trains a GPT encoder, not model.arch {arch}")
        if fields.setdefault("causal", False) is not False:
            raise UserError("model.causal: a masked-LM objective needs a bidirectional model (causal: false)")
        vocab_size += 1  # the [MASK] id, one past the tokenizer's vocabulary (train.mlm.mask_token_id)
    given = fields.setdefault("vocab_size", vocab_size)
    if isinstance(given, int) and given < vocab_size:
        raise UserError(
            f"model.vocab_size: {given} is smaller than the tokenizer's vocabulary ({vocab_size})"
        )
    if arch == "lstm_vae" and tokenizer is not None:
        # The VAE finds sentence ends and padding by id; they are the tokenizer's, never the user's guess.
        for key in ("pad_id", "bos_id", "eos_id"):
            given = fields.setdefault(key, getattr(tokenizer, key))
            if given != getattr(tokenizer, key):
                raise UserError(f"model.{key}: {given} is not the tokenizer's ({getattr(tokenizer, key)})")
        fields.setdefault("dropout_token", tokenizer.pad_id)
    return model_config({**fields, ARCH_KEY: arch})


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups as nanoGPT: decay every ≥2-D tensor (matmuls, embeddings), not biases or norm gains."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():  # tied parameters appear once
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(model: torch.nn.Module, cfg: Any) -> torch.optim.AdamW:
    """AdamW over `param_groups` with the run's betas and eps (the fused kernel: ~4x faster steps on CPU)."""
    return torch.optim.AdamW(
        param_groups(model, cfg.weight_decay),
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
        eps=cfg.eps,
        fused=True,
    )


def _diff(a: Any, b: Any, where: str = "") -> str | None:
    """The first dotted field where two plain-data configs differ, as 'field: old vs new'."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            d = _diff(a.get(k), b.get(k), f"{where}.{k}" if where else str(k))
            if d:
                return d
        return None
    return None if a == b else f"{where}: {a!r} vs {b!r}"


def _comparable(cfg: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(cfg))  # deep copy, tuples → lists (as YAML reads them back)
    for section, key in RESUME_EXEMPT:
        out.get(section, {}).pop(key, None)
    out.pop("tracking", None)  # where metrics are mirrored does not change the run
    return out


def resolve_device(device: str) -> str:
    """ "auto" → "cuda" when a GPU is visible, else "cpu"; anything else as given (checked)."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"train.device: {device!r} requested but no CUDA device is available")
    return device


def resolve_precision(precision: str, device: str) -> torch.dtype | None:
    """The autocast dtype (None: plain fp32). "auto" is bf16 on CUDA and fp32 elsewhere."""
    if precision == "auto":
        precision = "bf16" if device.startswith("cuda") else "fp32"
    return torch.bfloat16 if precision == "bf16" else None


# ---------------------------------------------------------------------------------------------- the run


def train_run(
    config: RunConfig,
    run_dir: str | os.PathLike[str],
    *,
    progress: bool = True,
    on_checkpoint: Callable[[int, Path], None] | None = None,
    corpus_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Train (or resume, or find finished) the run in `run_dir`; return a summary dict.

    Writes `run_dir/config.yaml` (resolved), `metrics.jsonl` and `checkpoints/`. If `checkpoints/latest`
    exists it must come from the same resolved config (else UserError) and training continues from it.
    `on_checkpoint(step, path)` is called after each permanent step checkpoint is written. A generated
    corpus (`data.generate`) is materialised in `corpus_dir` (default `run_dir/corpus`; a study shares one).
    """
    run_dir = Path(run_dir)
    tc = config.train
    tune_allocator()  # every step frees and reallocates the same activations: keep them mapped
    dctx = distributed.context_from_env()
    distributed.check_batch(dctx, tc.batch_size)
    with ExitStack() as stack:
        if tc.threads is not None:
            old_threads = torch.get_num_threads()
            torch.set_num_threads(tc.threads)
            stack.callback(torch.set_num_threads, old_threads)
        device = distributed.init(dctx, resolve_device(tc.device))
        stack.callback(distributed.shutdown, dctx)
        devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
        stack.enter_context(torch.random.fork_rng(devices=devices))
        summary = _Run(
            config, run_dir, progress, on_checkpoint, device=device, dist=dctx, corpus_dir=corpus_dir
        ).run()
    return summary


class _Run:
    """State of one training run (split out of `train_run` so each phase reads on its own)."""

    def __init__(
        self,
        config: RunConfig,
        run_dir: Path,
        progress: bool,
        on_checkpoint: Callable[[int, Path], None] | None,
        device: str = "cpu",
        dist: distributed.DistContext | None = None,
        corpus_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        from emergence.tasks import make_task
        from emergence.tokenizers import load_tokenizer

        self.cfg = config
        self.tc = config.train
        self.run_dir = run_dir
        self.ckpt_dir = run_dir / "checkpoints"
        self.metrics_path = run_dir / "metrics.jsonl"
        self.dist = dist or distributed.DistContext()
        self.main = self.dist.is_main  # rank 0 writes checkpoints, logs and the progress bar
        self.progress = progress and self.main
        self.on_checkpoint = on_checkpoint
        self.device = device
        self.autocast_dtype = resolve_precision(self.tc.precision, device)

        if self.main:
            ckpt.recover_checkpoints(self.ckpt_dir)
        distributed.barrier(self.dist)
        latest = self.ckpt_dir / ckpt.LATEST
        self.resume_from: Path | None = latest if (latest / ckpt.MANIFEST).exists() else None

        dc = config.data
        if dc.generate is not None:
            from emergence.corpus.generated import materialize_data

            # Read from the materialised file; config.yaml and the run id keep the generator's config.
            dc = materialize_data(dc, corpus_dir if corpus_dir is not None else run_dir / "corpus")
        self.task = make_task(dc.task, **dc.task_options) if dc.task is not None else None
        if self.resume_from is not None:
            # The saved tokenizer, not a rebuilt one: a retrained BPE must not shift ids under the model.
            ckpt.verify_checkpoint(self.resume_from)
            self.tokenizer = load_tokenizer(self.resume_from / ckpt.TOKENIZER_FILE)
        else:
            from emergence.train.data import build_tokenizer

            self.tokenizer = build_tokenizer(dc, self.task)
        from emergence.train.encoder import is_encoder

        self.encoder = is_encoder(self.tc.objective)
        if self.encoder and self.dist.enabled:
            raise UserError(
                f"train.objective: {self.tc.objective} trains in one process only (not under torchrun)"
            )
        self.model_cfg = resolve_model(
            config.model, self.tokenizer.vocab_size, self.tokenizer, encoder=self.encoder
        )
        self.data = TrainData(dc, self.model_cfg.n_ctx, self.tokenizer, self.task, self.tc.seed)
        self.total_steps = (
            self.tc.steps
            if self.tc.steps is not None
            else self.data.steps_for_tokens(self.tc.tokens or 0, self.tc.sequences_per_step)
        )
        resolved = run_config_to_dict(config)
        resolved["model"] = model_fields(self.model_cfg)
        if self.task is not None:
            resolved["data"]["task_options"] = to_dict(self.task.options)  # defaults filled in
        self.resolved = {"model": resolved.pop("model"), **resolved}
        self._check_same_run()
        if self.main:
            write_yaml(run_dir / "config.yaml", self.resolved)

    def _check_same_run(self) -> None:
        sources = [self.run_dir / "config.yaml"]
        if self.resume_from is not None:
            sources.insert(0, self.resume_from / ckpt.CONFIG_FILE)
        for src in sources:
            if src.exists():
                diff = _diff(_comparable(load_yaml_dict(src)), _comparable(self.resolved))
                if diff:
                    raise UserError(
                        f"{self.run_dir} holds a run with a different config ({diff}); "
                        "use another --out directory or delete the old run"
                    )

    # -- model and optimizer

    def _build(self) -> None:
        torch.manual_seed(derive_seed(self.tc.seed, "init"))
        self.model = build_model(self.model_cfg).to(self.device)
        if self.tc.init_scale != 1.0:
            with torch.no_grad():
                for p in self.model.parameters():  # tied weights appear once
                    p.mul_(self.tc.init_scale)
        self.model.train()
        if self.encoder:
            from emergence.train.encoder import EncoderObjective

            # Built right after the model under the same seeded RNG: the NSP head's init is fixed too.
            self.objective = EncoderObjective(
                self.tc.objective, self.data, self.tokenizer, self.model_cfg, self.tc.seed
            )
        else:
            self.objective = CausalObjective(self.data, OBJECTIVES.get("clm"))
        self.objective.modules.to(self.device).train()
        # What the optimizer and the gradient clip see: the model, then the objective's heads (if any).
        self.trainable: torch.nn.Module = (
            torch.nn.ModuleDict({"model": self.model, **self.objective.modules})
            if len(self.objective.modules)
            else self.model
        )
        self.optimizer = make_optimizer(self.trainable, self.tc)
        # The encoder objectives call model.hidden (not forward), so they run the plain module.
        self.forward = torch.compile(self.model) if self.tc.compile and not self.encoder else self.model
        self.fused_gelu = self.device == "cpu" and use_fused_gelu(
            self.tc.fused_gelu,
            mlp_elements_per_step(self.model_cfg, self.tc.sequences_per_step),
            self.total_steps,
        )
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [torch.device(self.device).index] if self.device.startswith("cuda") else None
            self.forward = DistributedDataParallel(self.forward, device_ids=ids)
        self.elbo = architecture(self.model_cfg).objective == "elbo"
        if self.elbo and self.dist.enabled:
            raise UserError("model.arch: lstm_vae trains on one process (its ELBO bypasses DDP's forward)")
        self.step = 0
        self.tokens_seen = 0

    def _resume(self, path: Path) -> None:
        manifest = ckpt.verify_checkpoint(path)
        ckpt.load_model_weights(self.model, path)
        if len(self.objective.modules):
            from emergence.train.encoder import load_heads

            load_heads(self.objective.modules, path)
        from emergence.io import read_json

        ckpt.optimizer_from_files(
            self.optimizer, ckpt.read_tensors(path, "optimizer"), read_json(path / "optimizer.json")
        )
        state = read_json(path / "state.json")
        rng = ckpt.read_tensors(path, "rng")
        torch.set_rng_state(rng["torch_cpu"])
        if "torch_cuda" in rng and self.device.startswith("cuda"):
            torch.cuda.set_rng_state(rng["torch_cuda"], self.device)
        self.data.load_state(state["data"], {k[5:]: v for k, v in rng.items() if k.startswith("data_")})
        self.step = int(manifest["step"])
        self.tokens_seen = int(manifest["tokens_seen"])
        if state.get("total_steps") != self.total_steps:
            raise UserError(
                f"{path}: saved for {state.get('total_steps')} steps, this config has {self.total_steps}"
            )
        # Drop log records past the resumed step: they will be written again by the replayed steps.
        if self.main:
            kept = [r for r in read_jsonl(self.metrics_path) if int(r.get("step", -1)) <= self.step]
            write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))
        log.info("resumed %s at step %d/%d", self.run_dir, self.step, self.total_steps)

    # -- checkpoints

    def _save(self, path: Path, resume_state: bool) -> None:
        tensors: dict[str, dict[str, torch.Tensor]] = {}
        json_files: dict[str, Any] = {}
        if len(self.objective.modules):
            from emergence.train.encoder import HEADS_STEM, heads_tensors

            tensors[HEADS_STEM] = heads_tensors(self.objective.modules)
        if resume_state:
            opt_tensors, opt_meta = ckpt.optimizer_to_files(self.optimizer)
            data_scalars, data_tensors = self.data.state()
            rng = {"torch_cpu": torch.get_rng_state()}
            if self.device.startswith("cuda"):
                rng["torch_cuda"] = torch.cuda.get_rng_state(self.device)
            rng.update({f"data_{k}": v for k, v in data_tensors.items()})
            tensors.update({"optimizer": opt_tensors, "rng": rng})
            json_files = {
                "optimizer": opt_meta,
                "state": {"step": self.step, "total_steps": self.total_steps, "data": data_scalars},
            }
        ckpt.save_checkpoint(
            path,
            model=self.model,
            config=self.resolved,
            tokenizer=self.tokenizer,
            step=self.step,
            tokens_seen=self.tokens_seen,
            tensors=tensors,
            json_files=json_files,
        )

    def _checkpoint(self) -> None:
        """Write the step checkpoint and/or `latest` due at the current step (rank 0; the others wait)."""
        if self.main:
            self._write_checkpoints()
        distributed.barrier(self.dist)

    def _write_checkpoints(self) -> None:
        s, tc = self.step, self.tc
        permanent = ckpt.is_checkpoint_step(s, self.total_steps, tc.checkpoint_every)
        if permanent and tc.log_checkpoints:
            path = self.ckpt_dir / ckpt.step_dir_name(s)
            self._save(path, resume_state=False)
            if self.on_checkpoint is not None:
                self.on_checkpoint(s, path)
        if permanent or s % tc.latest_every == 0:
            self._save(self.ckpt_dir / ckpt.LATEST, resume_state=True)

    # -- one optimizer step

    def _train_step(self, batches: list[Any], lr: float) -> tuple[float, float, dict[str, float]]:
        """One optimizer update → (loss, gradient norm, extra metrics: encoder or ELBO parts)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        d = self.dist
        if d.enabled:  # each rank keeps a disjoint row shard of every micro-batch of the global batch
            batches = [
                Batch(
                    distributed.shard_rows(b.x, d),
                    distributed.shard_rows(b.y, d),
                    distributed.shard_rows(b.mask, d),
                    int((distributed.shard_rows(b.x, d) != self.tokenizer.pad_id).sum()),
                )
                for b in batches
            ]
        if self.elbo:
            loss, extra = self._elbo_step(batches)
            return loss, self._finish_step(loss, lr), extra
        # Divide each component by its count over the whole (global) step, so accumulation and sharding give
        # the exact mean however the counted units split; DDP averages gradients over ranks, hence `world`.
        counts = [self.objective.counts(b) for b in batches]
        totals = {k: distributed.all_sum(sum(c[k] for c in counts), d, self.device) for k in counts[0]}
        scales = {k: d.world / max(n, 1.0) for k, n in totals.items()}
        sums = dict.fromkeys(totals, 0.0)
        stats: dict[str, float] = {}
        for i, b in enumerate(batches):
            b = b.to(self.device)
            last = i == len(batches) - 1
            # DDP: synchronise gradients once, on the step's last micro-batch.
            sync = nullcontext() if (last or not d.enabled) else self.forward.no_sync()
            with sync:
                with torch.autocast(
                    device_type=torch.device(self.device).type,
                    dtype=self.autocast_dtype or torch.float32,
                    enabled=self.autocast_dtype is not None,
                ):
                    parts, part_stats = self.objective.losses(self.forward, b)
                terms = [parts[k] * scales[k] for k in parts]
                total_term = terms[0]
                for t in terms[1:]:
                    total_term = total_term + t
                total_term.backward()
            for k, v in parts.items():
                sums[k] += float(v.detach())
            for k, v in part_stats.items():
                stats[k] = stats.get(k, 0.0) + v
        means = {k: distributed.all_sum(sums[k], d, self.device) / max(totals[k], 1.0) for k in sums}
        loss = sum(means.values())
        parts_out: dict[str, float] = {}
        if self.encoder:  # losses reported separately (clm records keep their old keys)
            parts_out = {f"{k}_loss": v for k, v in means.items()}
            if "nsp_correct" in stats:
                parts_out["nsp_accuracy"] = stats["nsp_correct"] / max(totals["nsp"], 1.0)
        return loss, self._finish_step(loss, lr), parts_out

    def _elbo_step(self, batches: list[Batch]) -> tuple[float, dict[str, float]]:
        """Forward/backward of the negative ELBO (Bowman et al. 2016) over the step's micro-batches.

        `elbo` returns per-sentence means; weighting each micro-batch by its rows gives the exact mean over
        the step's sentences however they split. β comes from the KL schedule at this step (`kl_beta`).
        """
        rows = sum(b.x.shape[0] for b in batches)
        sums = {"loss": 0.0, "recon": 0.0, "kl": 0.0}
        tokens = 0
        beta = 0.0
        for b in batches:
            b = b.to(self.device)
            full = sentence_rows(b)  # (B, T+1)
            # Word dropout and z noise draw from the global (saved) RNG; fp32 (no autocast) on every device.
            out = self.model.elbo(full, step=self.step)
            n = full.shape[0]
            (out["loss"] * (n / rows)).backward()
            for key in sums:
                sums[key] += float(out[key].detach()) * n
            tokens += int((full[:, 1:] != self.tokenizer.pad_id).sum())
            beta = float(out["beta"])
        recon, kl = sums["recon"] / rows, sums["kl"] / rows
        extra = {
            "recon": recon,
            "kl": kl,
            "beta": beta,
            "elbo": -(recon + kl),
            "recon_per_token": sums["recon"] / max(tokens, 1),
        }
        return sums["loss"] / rows, extra

    def _finish_step(self, loss: float, lr: float) -> float:
        """Refuse a non-finite loss, clip the gradient, step the optimizer; return the gradient norm."""
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"training diverged: loss is {loss} at step {self.step + 1} (lr {lr:.3g}); "
                "lower train.lr or set train.grad_clip"
            )
        max_norm = self.tc.grad_clip if self.tc.grad_clip > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.trainable.parameters(), max_norm))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def _eval_record(self) -> dict[str, float]:
        if self.tc.eval_every == 0 or not self.main:
            return {}
        if self.step % self.tc.eval_every and self.step != self.total_steps:
            return {}
        return self.objective.evaluate(self.model, self.tc.batch_size, self.device)

    # -- the loop

    def run(self) -> dict[str, Any]:
        self._build()
        resumed_at = None
        if self.resume_from is not None:
            self._resume(self.resume_from)
            resumed_at = self.step
        elif self.main:
            self.metrics_path.unlink(missing_ok=True)  # a log without a checkpoint belongs to no weights
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tracker = (
            Tracker.create(self.cfg.tracking, self.run_dir, self.run_dir.name, flatten(self.resolved))
            if self.main
            else Tracker([])
        )
        try:
            with fused_gelu(self.fused_gelu):
                return self._loop(resumed_at, tracker)
        finally:
            tracker.close()

    def _loop(self, resumed_at: int | None, tracker: Tracker) -> dict[str, Any]:
        start = time.perf_counter()
        crash_at = int(os.environ[CRASH_ENV]) if os.environ.get(CRASH_ENV, "").strip() else None
        last: dict[str, Any] = {}
        if resumed_at is None:
            rec = {"step": 0, "tokens_seen": 0, **self._eval_record()}
            if len(rec) > 2 and self.main:
                append_jsonl(self.metrics_path, rec)
                tracker.log_metrics(0, rec)
            self._checkpoint()

        with _ProgressBar(self.progress, self.total_steps, self.step) as bar:
            while self.step < self.total_steps:
                s = self.step
                lr = lr_at(
                    s,
                    lr=self.tc.lr,
                    min_lr=self.tc.min_lr,
                    warmup_steps=self.tc.warmup_steps,
                    total_steps=self.total_steps,
                    schedule=self.tc.schedule,
                )
                t0 = time.perf_counter()
                batches = self.objective.step_batches(s, self.tc.batch_size, self.tc.grad_accum)
                loss, grad_norm, parts = self._train_step(batches, lr)
                n_tokens = sum(b.n_tokens for b in batches)
                self.step += 1
                self.tokens_seen += n_tokens
                now = time.perf_counter()
                # Throughput of this step's data + forward/backward/update (evaluation and saving excluded).
                tokens_per_s = n_tokens / max(now - t0, 1e-9)
                rec = {
                    "step": self.step,
                    "loss": loss,
                    **parts,
                    "lr": lr,
                    "grad_norm": grad_norm,
                    "tokens_seen": self.tokens_seen,
                    "tokens_per_s": tokens_per_s,
                    "time_s": now - start,
                }
                ev = self._eval_record()
                rec.update(ev)
                if self.main and (ev or self.step % self.tc.log_every == 0 or self.step == self.total_steps):
                    append_jsonl(self.metrics_path, rec)
                    tracker.log_metrics(self.step, rec)
                last = rec
                if ev:
                    log.info(
                        "step %d/%d loss %.4f %s",
                        self.step,
                        self.total_steps,
                        loss,
                        " ".join(f"{k} {v:.4g}" for k, v in ev.items()),
                    )
                bar(self.step, loss, tokens_per_s)
                if crash_at is not None and self.step == crash_at:
                    os._exit(CRASH_EXIT_CODE)
                self._checkpoint()

        records = read_jsonl(self.metrics_path)
        final = last or (records[-1] if records else {})
        evals = [r for r in records if any(k.startswith("eval_") for k in r)]
        return {
            "run_dir": str(self.run_dir),
            "steps": self.total_steps,
            "tokens_seen": self.tokens_seen,
            "final_loss": final.get("loss"),
            "eval": {
                k: v for k, v in (evals[-1] if evals else {}).items() if k.startswith(("eval_", "train_"))
            },
            "resumed_from_step": resumed_at,
            "wall_s": time.perf_counter() - start,
            "checkpoints": [str(p) for _, p in ckpt.list_checkpoints(self.run_dir)],
        }


class _ProgressBar:
    """A rich progress bar (loss, tokens/s) on a terminal; a no-op when disabled or not a TTY."""

    def __init__(self, enabled: bool, total: int, done: int) -> None:
        from rich.console import Console

        console = Console(stderr=True)
        self.enabled = enabled and console.is_terminal
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TextColumn("{task.fields[tps]} tok/s"),
                TimeRemainingColumn(),
                console=console,
            )
            self.task = self.progress.add_task("train", total=total, completed=done, loss="-", tps="-")

    def __enter__(self) -> Callable[[int, float, float], None]:
        if not self.enabled:
            return lambda *_: None
        self.progress.start()

        def update(step: int, loss: float, tps: float) -> None:
            self.progress.update(self.task, completed=step, loss=f"{loss:.4f}", tps=f"{tps:,.0f}")

        return update

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.progress.stop()
