"""The Ray executor: one study run per Ray task, on a local Ray instance or an existing cluster.

    executor: {kind: ray, options: {address: auto, num_cpus: 1, num_gpus: 0, max_retries: 2}}

- `address`: `null` starts a private local instance for this study (sized by `num_cpus_total` if given);
  `"auto"` joins the cluster started with `ray start --head`; `"ray://host:10001"` or `"host:6379"` joins a
  remote one.
- Each run is one remote task with its own CPU/GPU request; torch in the task uses `num_cpus` threads.
- `max_retries`: Ray re-executes a task whose worker process died (node lost, killed for memory). The run
  function itself resumes from the run's `latest` checkpoint, so a retried run continues, not restarts.
- Results and run ids are those of the local executor: the same run function writes the same run directory.
  On a multi-node cluster the study directory must be on a filesystem every node sees (NFS, a shared volume).

Progress: tasks run in other processes, so the runner polls each run's files, as for local worker processes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from emergence.errors import UserError
from emergence.sweep.executors import EXECUTORS, Executor, ProgressFn, ResultFn, RunFn, TickFn

log = logging.getLogger(__name__)

POLL_S = 0.5


def _remote_call(fn: RunFn, job: Any, threads: int) -> Any:
    """Body of one Ray task: pin torch's threads to the task's CPU share, then run the job."""
    import torch

    torch.set_num_threads(max(1, threads))
    return fn(job, None)


@EXECUTORS.register("ray")
class RayExecutor(Executor):
    """Runs each job as a Ray task and reports results in completion order."""

    def __init__(
        self,
        address: str | None = None,
        num_cpus: float = 1,
        num_gpus: float = 0,
        max_retries: int = 2,
        num_cpus_total: int | None = None,
        namespace: str = "emergence",
    ) -> None:
        if num_cpus <= 0:
            raise UserError(f"executor.options.num_cpus: must be positive, got {num_cpus}")
        if max_retries < 0:
            raise UserError(f"executor.options.max_retries: must be ≥ 0, got {max_retries}")
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_retries = max_retries
        self.num_cpus_total = num_cpus_total
        self.namespace = namespace

    def _connect(self) -> tuple[Any, bool]:
        try:
            import ray
        except ImportError:
            raise UserError(
                "executor 'ray' needs the 'ray' package: pip install 'emergence-lab[ray]'"
            ) from None
        if ray.is_initialized():
            return ray, False
        kwargs: dict[str, Any] = {
            "namespace": self.namespace,
            "include_dashboard": False,
            "log_to_driver": False,
            "configure_logging": False,
        }
        if self.address is not None:
            kwargs["address"] = self.address
        elif self.num_cpus_total is not None:
            kwargs["num_cpus"] = self.num_cpus_total
        try:
            ray.init(**kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(
                f"executor 'ray': cannot connect to {self.address or 'a local instance'}: {first}"
            ) from None
        return ray, True

    def run(
        self,
        fn: RunFn,
        jobs: Sequence[Any],
        on_result: ResultFn,
        *,
        progress: ProgressFn | None = None,
        on_tick: TickFn | None = None,
    ) -> None:
        ray, owned = self._connect()
        try:
            task = ray.remote(
                num_cpus=self.num_cpus,
                num_gpus=self.num_gpus,
                max_retries=self.max_retries,
                retry_exceptions=False,  # a run's own errors are recorded by the run function, not retried
            )(_remote_call)
            threads = int(self.num_cpus) if self.num_cpus >= 1 else 1
            refs = {task.remote(fn, job, threads): job for job in jobs}
            pending = list(refs)
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=POLL_S)
                for ref in done:
                    job = refs[ref]
                    try:
                        result = ray.get(ref)
                    except Exception as e:  # RayTaskError, WorkerCrashedError after retries, …
                        cause = getattr(e, "cause", None) or e
                        on_result(job, None, cause if isinstance(cause, BaseException) else e)
                    else:
                        on_result(job, result, None)
                if on_tick is not None:
                    on_tick()
        finally:
            if owned:
                with contextlib.suppress(Exception):
                    ray.shutdown()
