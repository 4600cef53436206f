"""Tracking backends write real TensorBoard events and MLflow runs, from a background thread."""

from __future__ import annotations

import pytest

from emergence.tracking import Tracker, TrackingConfig, flatten


def test_disabled_tracker_is_inert(tmp_path) -> None:
    t = Tracker.create(TrackingConfig(), tmp_path, "r")
    assert not t.enabled
    t.log_metrics(1, {"loss": 1.0})
    t.close()
    assert list(tmp_path.iterdir()) == []


def test_tensorboard_events_readable(tmp_path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    t = Tracker.create(TrackingConfig(tensorboard=True), tmp_path, "r", {"train.lr": 0.1})
    for step in range(5):
        t.log_metrics(step, {"loss": 5.0 - step, "note": "not a number"})
    t.close()
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert acc.Tags()["scalars"] == ["loss"]
    assert [e.value for e in acc.Scalars("loss")] == [5.0, 4.0, 3.0, 2.0, 1.0]
    assert not t.errors


def test_mlflow_sqlite_run(tmp_path) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "run"
    t = Tracker.create(
        TrackingConfig(mlflow=True, mlflow_uri=uri, experiment="e"), run_dir, "tiny", {"lr": 0.1}
    )
    t.log_metrics(0, {"loss": 2.0})
    t.log_metrics(1, {"loss": 1.5})
    art = tmp_path / "report.html"
    art.write_text("<html></html>")
    t.log_artifact(art)
    t.close()
    assert not t.errors
    client = MlflowClient(tracking_uri=uri)
    run = client.search_runs([client.get_experiment_by_name("e").experiment_id])[0]
    assert run.data.params == {"lr": "0.1"}
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == [2.0, 1.5]
    assert run.info.status == "FINISHED"
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["report.html"]


def test_flatten() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}
