"""Tiny study configs for the sweep tests."""

from __future__ import annotations

from typing import Any

import pytest


def tiny_study_dict(**changes: Any) -> dict[str, Any]:
    """A two-member, two-seed study small enough for a unit test."""
    data: dict[str, Any] = {
        "name": "tiny",
        "family": {
            "base": {"n_ctx": 16},
            "members": [
                {"name": "small", "n_layer": 1, "n_head": 1, "d_model": 8},
                {"name": "large", "n_layer": 1, "n_head": 2, "d_model": 16},
            ],
        },
        "seeds": [0, 1],
        "tasks": [{"name": "addition", "options": {"digits": 1}}],
        "budget": {"kind": "steps", "steps": 4},
        "train": {"batch_size": 4, "warmup_steps": 1},
        "eval": {},
        "executor": {"kind": "local", "workers": 1},
    }
    data.update(changes)
    return data


@pytest.fixture
def study_dict() -> dict[str, Any]:
    """A fresh tiny study mapping."""
    return tiny_study_dict()
