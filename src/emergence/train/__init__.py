"""Training: run configs, data batches with loss masks, schedule, checkpoints and the training loop."""

from __future__ import annotations

from emergence.train.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from emergence.train.config import DataConfig, RunConfig, TrainConfig, load_run_config
from emergence.train.trainer import TrainingDiverged, train_run

__all__ = [
    "DataConfig",
    "RunConfig",
    "TrainConfig",
    "TrainingDiverged",
    "list_checkpoints",
    "load_checkpoint",
    "load_run_config",
    "save_checkpoint",
    "train_run",
]
