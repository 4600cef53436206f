"""Executors: where the runs of a study execute.

An executor takes a list of jobs and a picklable top-level function `fn(job, progress) -> result` and calls
`on_result(job, result, error)` in the parent process as each job finishes, in completion order. Failure
isolation inside a run (an exception, a NaN loss) is the run function's business: it records the failure and
returns normally. What the executor adds is isolation from the *process* dying (a worker killed for memory):
the jobs the broken pool was running are run again one at a time, the one that kills its worker again is
reported with an error, and the others carry on in a fresh pool.

Executors are registered in `EXECUTORS` under the name a study's `executor.kind` uses, so a cluster executor
(Ray: one run per remote task) can be added beside `local` without touching the runner.

`local` with `workers: 1` runs everything in this process (simplest to debug, and the run function gets a
progress callback); with `workers: N > 1` it uses a process pool (forkserver on Linux, spawn elsewhere: never
plain fork, which would copy torch's thread pools and locks) and the parent polls progress from run files.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import importlib
import inspect
import multiprocessing as mp
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from emergence.errors import UserError
from emergence.registry import Registry, unknown_name_message

ProgressFn = Callable[[dict[str, Any]], None]
RunFn = Callable[[Any, ProgressFn | None], Any]
ResultFn = Callable[[Any, Any, BaseException | None], None]
TickFn = Callable[[], None]

# How often the parent wakes up to poll progress while worker processes run.
POLL_S = 0.5
WORKER_DIED = "worker process died (killed or crashed) while running"


class Executor(ABC):
    """Runs jobs and reports each one's result (or the error that prevented it) to `on_result`."""

    @abstractmethod
    def run(
        self,
        fn: RunFn,
        jobs: Sequence[Any],
        on_result: ResultFn,
        *,
        progress: ProgressFn | None = None,
        on_tick: TickFn | None = None,
    ) -> None:
        """Execute every job; `progress` reaches in-process runs, `on_tick` is called while waiting."""

    @property
    def in_process(self) -> bool:
        """True when jobs run in this process (the progress callback reaches them directly)."""
        return False


EXECUTORS: Registry[Callable[..., Executor]] = Registry("executor")


# Executors that live in their own module and register themselves when it is imported. The module is imported
# only when a study asks for the kind, so that `local` studies never import (or need) the cluster library;
# the registration inside the module stays the single source of truth for the name.
PLUGIN_MODULES: dict[str, str] = {"ray": "emergence.sweep.ray_executor"}


def executor_factory(kind: str) -> Callable[..., Executor]:
    """The factory registered as `kind`, importing its plugin module on first use (did-you-mean if none)."""
    if kind not in EXECUTORS and kind in PLUGIN_MODULES:
        importlib.import_module(PLUGIN_MODULES[kind])
    if kind not in EXECUTORS:
        # Unknown: offer the plugin names too, though their modules are not imported yet.
        raise UserError(unknown_name_message("executor", kind, [*EXECUTORS.names(), *PLUGIN_MODULES]))
    return EXECUTORS.get(kind)


def executor_kwargs(
    kind: str, workers: int, threads_per_worker: int, options: dict[str, Any]
) -> dict[str, Any]:
    """Keyword arguments for `kind`'s factory: `options`, plus workers/threads where the factory takes them.

    `workers` and `threads_per_worker` are study-level fields that mean something to `local`; a cluster
    executor sizes itself through its own options (Ray: num_cpus per run), so they are passed only to a
    factory that accepts them. Options the factory does not take are a UserError naming them.
    """
    factory = executor_factory(kind)
    params = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = dict(options)
    for name, value in (("workers", workers), ("threads_per_worker", threads_per_worker)):
        if name in kwargs:
            raise UserError(f"executor.options.{name}: set executor.{name} instead")
        if takes_any or name in params:
            kwargs[name] = value
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as e:
        accepted = sorted(n for n in params if n not in ("self", "workers", "threads_per_worker"))
        raise UserError(f"executor.options: {e} (executor {kind!r} takes {', '.join(accepted)})") from None
    return kwargs


def make_executor(kind: str, **options: Any) -> Executor:
    """Build a registered executor by name (unknown names get a did-you-mean UserError)."""
    return executor_factory(kind)(**options)


def resolve_threads(workers: int, threads_per_worker: int) -> int:
    """Torch threads per worker; 0 means share this machine's cores evenly between the workers."""
    if threads_per_worker > 0:
        return threads_per_worker
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, workers))


def _init_worker(threads: int) -> None:
    """Worker start-up: a fixed torch thread count so that N workers do not oversubscribe the cores."""
    import torch

    torch.set_num_threads(threads)
    # Inter-op threads can only be set before any parallel work; a fresh worker has done none.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


def _was_started(job: Any, fut: cf.Future[Any]) -> bool:
    """Whether a job of a broken pool had begun: its `started_marker()` if any, else the future's flag."""
    marker = getattr(job, "started_marker", None)
    if callable(marker):
        return bool(marker())
    return fut.running()


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """This machine: in-process for one worker, a process pool for several."""

    def __init__(
        self, workers: int = 1, threads_per_worker: int = 0, start_method: str | None = None
    ) -> None:
        if workers < 1:
            raise ValueError("workers: must be at least 1")
        self.workers = workers
        self.threads = resolve_threads(workers, threads_per_worker)
        self.start_method = start_method or ("forkserver" if sys.platform.startswith("linux") else "spawn")

    @property
    def in_process(self) -> bool:
        return self.workers == 1

    def run(
        self,
        fn: RunFn,
        jobs: Sequence[Any],
        on_result: ResultFn,
        *,
        progress: ProgressFn | None = None,
        on_tick: TickFn | None = None,
    ) -> None:
        if self.workers == 1:
            self._run_inline(fn, jobs, on_result, progress)
        else:
            self._run_pool(fn, jobs, on_result, on_tick)

    def _run_inline(
        self, fn: RunFn, jobs: Sequence[Any], on_result: ResultFn, progress: ProgressFn | None
    ) -> None:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            for job in jobs:
                try:
                    result = fn(job, progress)
                except Exception as e:  # the run function isolates run failures; this is a bug in it
                    on_result(job, None, e)
                else:
                    on_result(job, result, None)
        finally:
            torch.set_num_threads(before)

    def _run_pool(self, fn: RunFn, jobs: Sequence[Any], on_result: ResultFn, on_tick: TickFn | None) -> None:
        remaining = list(range(len(jobs)))
        while remaining:
            suspects, remaining = self._one_pool(fn, jobs, remaining, on_result, on_tick, self.workers)
            # A worker died (killed for memory, a crash in native code) and the pool went down with every job
            # it was running. Run each of those alone: the one that breaks its own pool is the culprit.
            for i in suspects:
                again, _ = self._one_pool(fn, jobs, [i], on_result, on_tick, 1)
                if again:
                    on_result(jobs[i], None, RuntimeError(WORKER_DIED))

    def _one_pool(
        self,
        fn: RunFn,
        jobs: Sequence[Any],
        indices: list[int],
        on_result: ResultFn,
        on_tick: TickFn | None,
        workers: int,
    ) -> tuple[list[int], list[int]]:
        """Run some jobs in one pool; if it breaks, return (jobs it was running, jobs it had not started)."""
        ctx = mp.get_context(self.start_method)
        if self.start_method == "forkserver":
            # Import torch and the run code once in the fork server; each worker then starts as a cheap fork.
            ctx.set_forkserver_preload(["torch", "emergence.sweep.runner"])
        pool = cf.ProcessPoolExecutor(
            max_workers=min(workers, len(indices)),
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(self.threads,),
        )
        futures = {pool.submit(fn, jobs[i], None): i for i in indices}
        pending = set(futures)
        broken = False
        try:
            while pending and not broken:
                done, pending = cf.wait(pending, timeout=POLL_S, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    exc = fut.exception()
                    if isinstance(exc, BrokenProcessPool):
                        broken = True
                    else:
                        on_result(jobs[futures[fut]], None if exc else fut.result(), exc)
                if on_tick is not None and not broken:
                    on_tick()
        finally:
            pool.shutdown(wait=not broken, cancel_futures=True)
        if not broken:
            return [], []
        unfinished = [
            (fut, i)
            for fut, i in futures.items()
            if not fut.done() or isinstance(fut.exception(), BrokenProcessPool)
        ]
        # With one worker and one job there is nothing to tell apart: it is the culprit.
        if len(indices) == 1:
            return [i for _, i in unfinished], []
        # Jobs handed to a worker have a status file saying so; the pool's own "running" flag also covers
        # jobs merely queued for a worker, so the run's status is the better witness when there is one.
        started = [i for fut, i in unfinished if _was_started(jobs[i], fut)]
        return started, [i for _, i in unfinished if i not in started]
