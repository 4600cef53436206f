"""The Ray executor on a local Ray instance that the test starts: results, failures, worker loss."""

from __future__ import annotations

import os

import pytest

ray = pytest.importorskip("ray")

from emergence.sweep.ray_executor import RayExecutor  # noqa: E402


def square(job: int, progress) -> int:
    if job == 3:
        raise ValueError("run 3 failed")
    return job * job


def die_once(job: str, progress) -> str:
    """Kill the worker process the first time (a marker file remembers), succeed on Ray's retry."""
    if not os.path.exists(job):
        open(job, "w").close()
        os._exit(1)
    return "survived"


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="emergence-test")
    yield
    ray.shutdown()


def test_results_errors_and_ticks(local_ray) -> None:
    seen: dict[int, object] = {}
    ticks = []
    RayExecutor(num_cpus=1).run(
        square,
        [1, 2, 3, 4],
        lambda job, res, err: seen.__setitem__(job, err or res),
        on_tick=lambda: ticks.append(1),
    )
    assert {k: v for k, v in seen.items() if k != 3} == {1: 1, 2: 4, 4: 16}
    assert isinstance(seen[3], ValueError) and "run 3 failed" in str(seen[3])
    assert ticks


def test_worker_loss_is_retried(local_ray, tmp_path) -> None:
    out: dict[str, object] = {}
    marker = str(tmp_path / "died")
    RayExecutor(num_cpus=1, max_retries=1).run(die_once, [marker], lambda j, r, e: out.__setitem__(j, e or r))
    assert out[marker] == "survived"


def test_worker_loss_without_retries_is_reported(local_ray, tmp_path) -> None:
    out: dict[str, object] = {}
    marker = str(tmp_path / "died")
    RayExecutor(num_cpus=1, max_retries=0).run(die_once, [marker], lambda j, r, e: out.__setitem__(j, e or r))
    assert isinstance(out[marker], BaseException)
