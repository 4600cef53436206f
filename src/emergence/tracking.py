"""Experiment tracking: TensorBoard event files and MLflow runs, written off the training hot path.

The trainer calls `Tracker.log_metrics(step, {...})`, which only puts the record on a queue; a daemon thread
hands it to the backends. So a slow MLflow store never stalls a training step.

    tracker = Tracker.create(TrackingConfig(mlflow=True), run_dir, run_name="tiny-s0", params=flat_config)
    tracker.log_metrics(step, {"loss": 2.3, "lr": 1e-3})
    tracker.log_artifact("runs/default/report.html")
    tracker.close()

MLflow: the default store is SQLite beside the study (`sqlite:///…/mlflow.db`); MLflow 3 keeps the plain
file store (`file:` URIs) in maintenance mode behind `MLFLOW_ALLOW_FILE_STORE=true`, which a `file:` URI here
sets for this process.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from emergence.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackingConfig:
    """Where metrics go besides `metrics.jsonl`."""

    tensorboard: bool = False  # event files under <run_dir>/tensorboard
    mlflow: bool = False  # one MLflow run per training run
    mlflow_uri: str | None = None  # None → sqlite:///<run_dir>/../mlflow.db (shared by a study's runs)
    experiment: str = "emergence"  # MLflow experiment name


class _Backend(Protocol):
    def metrics(self, step: int, values: Mapping[str, float]) -> None: ...
    def artifact(self, path: Path) -> None: ...
    def close(self) -> None: ...


class _TensorBoard:
    def __init__(self, log_dir: Path, params: Mapping[str, Any]) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError(
                "tracking.tensorboard needs the 'tensorboard' package: pip install tensorboard"
            ) from None
        self.writer = SummaryWriter(log_dir=str(log_dir))
        if params:
            text = "\n".join(f"    {k}: {v}" for k, v in sorted(params.items()))
            self.writer.add_text("config", text, 0)

    def metrics(self, step: int, values: Mapping[str, float]) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)

    def artifact(self, path: Path) -> None:
        # TensorBoard has no artifact store; the run directory already holds the file.
        pass

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


class _MLflow:
    def __init__(self, uri: str, experiment: str, run_name: str, params: Mapping[str, Any]) -> None:
        try:
            from mlflow.entities import Param
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise UserError("tracking.mlflow needs the 'mlflow' package: pip install mlflow") from None
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        exp = self.client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(experiment)
        self.run_id = self.client.create_run(exp_id, run_name=run_name).info.run_id
        # MLflow caps a param value at 6000 characters and a batch at 100 params.
        plist = [Param(str(k)[:250], str(v)[:6000]) for k, v in sorted(params.items())]
        for i in range(0, len(plist), 100):
            self.client.log_batch(self.run_id, params=plist[i : i + 100])

    def metrics(self, step: int, values: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        batch = [Metric(k, float(v), ts, step) for k, v in values.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


_STOP = object()


class Tracker:
    """Fan-out of metrics to tracking backends through a background thread."""

    def __init__(self, backends: list[_Backend]) -> None:
        self._backends = backends
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []
        if backends:
            self._thread = threading.Thread(target=self._work, name="emergence-tracker", daemon=True)
            self._thread.start()

    @classmethod
    def create(
        cls, cfg: TrackingConfig, run_dir: Path, run_name: str, params: Mapping[str, Any] | None = None
    ) -> Tracker:
        """Build the backends the config asks for (none → a tracker that drops everything)."""
        params = params or {}
        backends: list[_Backend] = []
        if cfg.tensorboard:
            backends.append(_TensorBoard(Path(run_dir) / "tensorboard", params))
        if cfg.mlflow:
            uri = cfg.mlflow_uri or f"sqlite:///{(Path(run_dir).resolve().parent / 'mlflow.db')}"
            backends.append(_MLflow(uri, cfg.experiment, run_name, params))
        return cls(backends)

    @property
    def enabled(self) -> bool:
        return bool(self._backends)

    def log_metrics(self, step: int, values: Mapping[str, Any]) -> None:
        """Queue numeric values for every backend (non-numbers are dropped); returns at once."""
        if not self._backends:
            return
        clean = {
            k: float(v) for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)
        }
        if clean:
            self._queue.put(("metrics", step, clean))

    def log_artifact(self, path: str | Path) -> None:
        """Queue a file to store with the run (MLflow)."""
        if self._backends:
            self._queue.put(("artifact", Path(path)))

    def close(self, timeout: float = 60.0) -> None:
        """Drain the queue and close the backends."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        self._thread = None

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            for b in self._backends:
                try:
                    if item[0] == "metrics":
                        b.metrics(item[1], item[2])
                    else:
                        b.artifact(item[1])
                except Exception as e:  # a tracking failure must never kill training
                    msg = f"{type(b).__name__}: {e}"
                    if msg not in self.errors:
                        log.warning("tracking backend failed: %s", msg)
                        self.errors.append(msg)
        for b in self._backends:
            try:
                b.close()
            except Exception as e:
                self.errors.append(f"{type(b).__name__} close: {e}")


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 1}} → {"train.lr": 1}, for params tables."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
