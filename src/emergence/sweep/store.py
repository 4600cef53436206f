"""The status store: one `status.json` per run, written atomically, plus a study-wide summary.

A run moves through

    pending ──► running ──► done
                   │  └───► failed   (exception or NaN loss: one-line error + traceback file)
                   └──────► (process killed: stays "running" on disk, read back as interrupted)

"running" on disk with no live owner means the study was interrupted; the next `emergence run` resumes it (the
trainer continues from `checkpoints/latest`). Only the runner and the worker that owns a run write its status.
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from emergence.io import read_json, write_json, write_text

State = Literal["pending", "running", "done", "failed"]
STATES: tuple[str, ...] = ("pending", "running", "done", "failed")

STATUS_FILE = "status.json"
TRACEBACK_FILE = "error.txt"
RESULTS_FILE = "results.parquet"


@dataclass
class RunStatus:
    """What `status.json` holds for one run."""

    run_id: str
    state: State = "pending"
    member: str = ""
    seed: int = 0
    # Whether training finished: a done run whose eval settings changed is re-evaluated without training.
    trained: bool = False
    eval_key: str = ""
    error: str | None = None
    traceback_file: str | None = None
    pid: int | None = None
    host: str | None = None
    started: float | None = None
    finished: float | None = None
    wall_s: float | None = None
    # CPU seconds of the last attempt in its process (training + evaluation): unlike wall time, not inflated
    # by other work on a shared machine.
    cpu_s: float | None = None
    attempts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain data for `status.json`."""
        return {
            "run_id": self.run_id,
            "state": self.state,
            "member": self.member,
            "seed": self.seed,
            "trained": self.trained,
            "eval_key": self.eval_key,
            "error": self.error,
            "traceback_file": self.traceback_file,
            "pid": self.pid,
            "host": self.host,
            "started": self.started,
            "finished": self.finished,
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "attempts": self.attempts,
            "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunStatus:
        """Inverse of `to_json`, tolerant of missing keys (older files)."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if known.get("state") not in STATES:
            known["state"] = "pending"
        return cls(**known)


def status_path(run_dir: Path) -> Path:
    """Where a run's status lives."""
    return Path(run_dir) / STATUS_FILE


def read_status(run_dir: Path, run_id: str) -> RunStatus:
    """A run's status; a missing or unreadable file reads as pending."""
    p = status_path(run_dir)
    if not p.exists():
        return RunStatus(run_id=run_id)
    try:
        data = read_json(p)
    except (
        Exception
    ):  # a hand-edited or foreign file: treat the run as not started rather than crash the study
        return RunStatus(run_id=run_id)
    if not isinstance(data, dict):
        return RunStatus(run_id=run_id)
    status = RunStatus.from_json(data)
    status.run_id = run_id
    return status


def write_status(run_dir: Path, status: RunStatus) -> None:
    """Atomically write a run's status."""
    write_json(status_path(run_dir), status.to_json())


def mark_running(run_dir: Path, status: RunStatus) -> RunStatus:
    """Record that this process now owns the run."""
    status.state = "running"
    status.error = None
    status.traceback_file = None
    status.pid = os.getpid()
    status.host = os.uname().nodename
    status.started = time.time()
    status.finished = None
    status.wall_s = None
    status.attempts += 1
    write_status(run_dir, status)
    return status


def mark_done(run_dir: Path, status: RunStatus) -> RunStatus:
    """Record a finished run (its results file is already in place)."""
    status.state = "done"
    status.error = None
    status.traceback_file = None
    _finish(status)
    (Path(run_dir) / TRACEBACK_FILE).unlink(missing_ok=True)
    write_status(run_dir, status)
    return status


def mark_failed(run_dir: Path, status: RunStatus, exc: BaseException | str) -> RunStatus:
    """Record a failure: the one-line error in status.json, the full traceback in `error.txt`."""
    if isinstance(exc, BaseException):
        line = f"{type(exc).__name__}: {exc}".strip().splitlines()[0] if str(exc) else type(exc).__name__
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    else:
        line, text = (exc.strip().splitlines() or ["failed"])[0], exc
    status.state = "failed"
    status.error = line[:500]
    write_text(Path(run_dir) / TRACEBACK_FILE, text if text.endswith("\n") else text + "\n")
    status.traceback_file = TRACEBACK_FILE
    _finish(status)
    write_status(run_dir, status)
    return status


def _finish(status: RunStatus) -> None:
    status.finished = time.time()
    status.wall_s = None if status.started is None else round(status.finished - status.started, 3)
    status.pid = None
