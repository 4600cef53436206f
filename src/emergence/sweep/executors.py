"""Executors: where the runs of a study execute.

An executor takes a list of jobs and a picklable top-level function `fn(job, progress) -> result` and calls
`on_result(job, result, error)` in the parent process as each job finishes, in completion order. Failure
isolation inside a run (an exception, a NaN loss) is the run function's business: it records the failure and
returns normally. What the executor adds is isolation from the *process* dying (a worker killed for memory):
the jobs it was running are reported with an error, and the others carry on in a fresh pool.

Executors are registered in `EXECUTORS` under the name a study's `executor.kind` uses, so a cluster executor
(Ray: one run per remote task) can be added beside `local` without touching the runner.

`local` with `workers: 1` runs everything in this process (simplest to debug, and the run function gets a
progress callback); with `workers: N > 1` it uses a process pool (forkserver on Linux, spawn elsewhere: never
plain fork, which would copy torch's thread pools and locks) and the parent polls progress from run files.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing as mp
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from emergence.registry import Registry

ProgressFn = Callable[[dict[str, Any]], None]
RunFn = Callable[[Any, ProgressFn | None], Any]
ResultFn = Callable[[Any, Any, BaseException | None], None]
TickFn = Callable[[], None]

# How often the parent wakes up to poll progress while worker processes run.
POLL_S = 0.5
# A job requeued after its pool broke this many times is reported as the culprit instead of requeued again.
MAX_REQUEUES = 2
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


def make_executor(kind: str, **options: Any) -> Executor:
    """Build a registered executor by name (unknown names get a did-you-mean UserError)."""
    return EXECUTORS.get(kind)(**options)


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
        requeued = [0] * len(jobs)
        while remaining:
            leftover = self._one_pool(fn, jobs, remaining, on_result, on_tick)
            remaining = []
            for i in leftover:
                requeued[i] += 1
                if requeued[i] > MAX_REQUEUES:  # it keeps going down with its pool: it is the culprit
                    on_result(jobs[i], None, RuntimeError(WORKER_DIED))
                else:
                    remaining.append(i)

    def _one_pool(
        self, fn: RunFn, jobs: Sequence[Any], indices: list[int], on_result: ResultFn, on_tick: TickFn | None
    ) -> list[int]:
        """Run some jobs in one pool; if it breaks, report the jobs it was running and return the others."""
        ctx = mp.get_context(self.start_method)
        if self.start_method == "forkserver":
            # Import torch and the run code once in the fork server; each worker then starts as a cheap fork.
            ctx.set_forkserver_preload(["torch", "emergence.sweep.runner"])
        pool = cf.ProcessPoolExecutor(
            max_workers=min(self.workers, len(indices)),
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(self.threads,),
        )
        futures = {pool.submit(fn, jobs[i], None): i for i in indices}
        pending = set(futures)
        started: set[cf.Future[Any]] = set()
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
                started |= {f for f in pending if f.running()}
                if on_tick is not None and not broken:
                    on_tick()
        finally:
            pool.shutdown(wait=not broken, cancel_futures=True)
        if not broken:
            return []
        # A worker died (killed for memory, a crash in native code). The jobs seen running go down with it;
        # the others get a fresh pool (a job that crashed between two polls is requeued a bounded number of
        # times).
        leftover: list[int] = []
        for fut, i in futures.items():
            exc = fut.exception() if fut.done() else None
            if fut.done() and not isinstance(exc, BrokenProcessPool):
                continue
            if fut in started:
                on_result(jobs[i], None, RuntimeError(WORKER_DIED))
            else:
                leftover.append(i)
        return leftover
