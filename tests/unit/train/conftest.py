"""Fixtures for the trainer tests: a tiny addition run config and a tiny GPT."""

from __future__ import annotations

from typing import Any

import pytest

from emergence.train.config import RunConfig, run_config_from_dict


def tiny_config(**train: Any) -> RunConfig:
    """A 1-layer, 32-wide GPT on 2-digit reversed addition: trains a few steps in well under a second."""
    return run_config_from_dict(
        {
            "model": {"n_layer": 1, "n_head": 2, "d_model": 32, "n_ctx": 12},
            "data": {
                "task": "addition",
                "task_options": {"digits": 2, "reverse_answer": True},
                "n_train": 200,
                "n_eval": 16,
                "n_eval_generate": 8,
            },
            "train": {
                "steps": 6,
                "batch_size": 8,
                "lr": 3e-3,
                "warmup_steps": 2,
                "eval_every": 3,
                "checkpoint_every": 4,
                "latest_every": 2,
                **train,
            },
        }
    )


@pytest.fixture
def tiny() -> RunConfig:
    """The default tiny run config."""
    return tiny_config()
