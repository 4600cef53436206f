"""Live progress for a study: runs done / total, and for each running run its step and loss.

A background thread polls each running run's `metrics.jsonl` tail (cheap: the last few KiB of one file per
running run, twice a second), so runs in this process and in worker processes show alike; a run function may
also push events (`on_progress`). Progress goes to stderr; stdout keeps the line that says where the report
is.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from emergence.sweep.executors import ProgressFn
from emergence.sweep.store import read_status

_TAIL_BYTES = 4096
POLL_S = 0.5


class StudyProgress:
    """A rich progress display (or nothing, when disabled) fed by events and polling."""

    def __init__(
        self,
        study: str,
        jobs: Sequence[Any],
        skipped: Sequence[Any],
        enabled: bool = True,
        on_event: ProgressFn | None = None,
    ) -> None:
        self.jobs = list(jobs)
        self.on_event = on_event
        self.enabled = enabled
        self._finished: set[str] = {j.spec.run_id for j in skipped}
        self._lines: dict[str, TaskID] = {}
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=self.console,
            disable=not enabled,
            transient=False,
        )
        self._overall = self.progress.add_task(
            f"[bold]{study}[/] runs", total=len(self.jobs), completed=len(self._finished), info=""
        )
        # Runs train in this process or in workers alike; a background thread reads their logs.
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll_forever, name="study-progress", daemon=True)
        if skipped and enabled:
            self.console.print(f"{len(skipped)} of {len(self.jobs)} runs already done or failed: skipped")

    def __enter__(self) -> StudyProgress:
        self.progress.__enter__()
        if self.enabled:
            self._poller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._poller.is_alive():
            self._poller.join(timeout=2 * POLL_S)
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def _poll_forever(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self.poll()
            except Exception:  # a display glitch must never stop a study
                continue

    def _line(self, job: Any) -> TaskID:
        rid = job.spec.run_id
        if rid not in self._lines:
            label = f"  {job.spec.member} seed {job.spec.seed} [dim]{rid}[/]"
            total = job.spec.run_config.get("train", {}).get("steps")
            self._lines[rid] = self.progress.add_task(label, total=total, info="starting")
        return self._lines[rid]

    def _job(self, run_id: str) -> Any:
        return next((j for j in self.jobs if j.spec.run_id == run_id), None)

    def on_progress(self, event: dict[str, Any]) -> None:
        """An in-process event from the trainer (step, steps, loss) or the evaluator (phase)."""
        if self.on_event is not None:
            self.on_event(event)
        job = self._job(str(event.get("run_id", "")))
        if job is not None:
            self._update(job, event)

    def _update(self, job: Any, event: dict[str, Any]) -> None:
        line = self._line(job)
        total = event.get("steps") or event.get("total_steps")
        info = []
        loss = event.get("loss", event.get("train_loss"))
        if isinstance(loss, int | float) and math.isfinite(loss):
            info.append(f"loss {loss:.3f}")
        if event.get("phase"):
            info.append(str(event["phase"]))
        kwargs: dict[str, Any] = {"info": "  ".join(info)}
        if isinstance(event.get("step"), int):
            kwargs["completed"] = event["step"]
        if isinstance(total, int) and total > 0:
            kwargs["total"] = total
        self.progress.update(line, **kwargs)

    def poll(self) -> None:
        """Read the latest training record of every run that a worker process is running."""
        for job in self.jobs:
            rid = job.spec.run_id
            if rid in self._finished:
                continue
            if read_status(job.run_dir, rid).state != "running":
                continue
            rec = last_record(job.run_dir / "metrics.jsonl")
            self._update(job, {"run_id": rid, **(rec or {"phase": "starting"})})

    def finished(self, job: Any, result: dict[str, Any]) -> None:
        """A run finished (done or failed): advance the overall bar and drop its line."""
        rid = job.spec.run_id
        self._finished.add(rid)
        if rid in self._lines:
            self.progress.remove_task(self._lines.pop(rid))
        self.progress.advance(self._overall)
        state = result.get("state", "failed")
        if self.on_event is not None:
            self.on_event({"run_id": rid, "state": state, "error": result.get("error")})
        if state == "failed":
            self.progress.console.print(
                f"[red]failed[/] {job.spec.member} seed {job.spec.seed} ({rid}): {result.get('error')}"
            )
        elif self.enabled:
            self.progress.console.print(f"[green]done[/]   {job.spec.member} seed {job.spec.seed} ({rid})")


def last_record(path: Path) -> dict[str, Any] | None:
    """The last complete JSON line of a log, reading only its tail."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - _TAIL_BYTES))
            tail = f.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            return rec
    return None
