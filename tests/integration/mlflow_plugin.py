"""Helpers of the MLflow plugin's tests: a ``matih://`` tracking URI wired to this test's
topic, group and store, and what MLflow's client reads back, without ids and times."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from consumers import ConsumerSettings
from tests.integration.secure import kafka_env

PARENT_TAG = "mlflow.parentRunId"


def matih_uri(
    settings: ConsumerSettings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[str, str]:
    """A ``matih://`` URI of a tenant of this test's own, publishing to the worker's topic
    and reading its store (the rest through the ``MATIH_*`` environment, as a trainer
    would set it); returns the URI and the tenant."""
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    for name, value in {
        **kafka_env(settings.kafka),
        "MATIH_KAFKA_TOPIC": settings.kafka.topic,
        "MATIH_KAFKA_CONSUMER_GROUP": settings.kafka.consumer_group,
        "MATIH_MLFLOW_TRACKING_URI": settings.mlflow.tracking_uri,
        "MATIH_MLFLOW_ARTIFACT_ROOT": settings.mlflow.artifact_root,
        "MATIH_PRODUCER_SPOOL_DIR": str(tmp_path / "spool"),
        "MATIH_PRODUCER_LINGER_MS": "5",
    }.items():
        monkeypatch.setenv(name, value)
    return f"matih://{settings.kafka.bootstrap_servers}?tenant={tenant}", tenant


def read_back(tracking_uri: str, experiment_name: str) -> list[dict[str, Any]]:
    """Every run of the experiment as MLflow's client reads it through ``tracking_uri``,
    ids and times left out: a nested run names its parent by the parent's run name."""
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    assert experiment is not None, f"no experiment {experiment_name!r} at {tracking_uri}"
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    names = {run.info.run_id: run.info.run_name for run in runs}
    result = []
    for run in runs:
        info, data = run.info, run.data
        assert info.end_time is None or info.end_time >= info.start_time
        tags = dict(data.tags)
        if PARENT_TAG in tags:
            tags[PARENT_TAG] = names[tags[PARENT_TAG]]
        result.append(
            {
                "name": info.run_name,
                "status": info.status,
                "ended": info.end_time is not None,
                "params": dict(data.params),
                "metrics": dict(data.metrics),
                "tags": tags,
                "history": {
                    key: [
                        (m.step, m.value)
                        for m in sorted(
                            client.get_metric_history(info.run_id, key),
                            key=lambda m: (m.step, m.timestamp),
                        )
                    ]
                    for key in data.metrics
                },
            }
        )
    return sorted(result, key=lambda run: str(run["name"]))


def run_script(tracking_uri: str, experiment_name: str) -> list[str]:
    """A training script in MLflow's fluent API, as users write it; returns the run ids
    that ``mlflow.active_run()`` gave."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment_name)
    seen = []
    with mlflow.start_run(run_name="parent", description="the sweep") as parent:
        seen.append(mlflow.active_run().info.run_id)  # type: ignore[union-attr]
        mlflow.log_param("learning_rate", 0.01)
        mlflow.log_params({"max_depth": 6, "optimizer": "adam"})
        mlflow.set_tag("team", "fraud")
        mlflow.set_tags({"dataset": "v2.1", "attempt": 3})
        for step in range(30):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
            mlflow.log_metrics({"acc": step / 30, "f1": step / 40}, step=step)
        MlflowClient().log_batch(
            parent.info.run_id,
            metrics=[mlflow.entities.Metric("lr", 0.1 / (s + 1), 0, s) for s in range(5)],
            params=[mlflow.entities.Param("batch_size", "64")],
            tags=[mlflow.entities.RunTag("gpu", "A100")],
        )
        with mlflow.start_run(run_name="child-a", nested=True):
            seen.append(mlflow.active_run().info.run_id)  # type: ignore[union-attr]
            mlflow.log_metric("child_loss", 0.5, step=1)
            mlflow.log_param("fold", 1)
        with mlflow.start_run(run_name="child-b", nested=True):
            mlflow.log_metric("child_loss", 0.25, step=2)
            mlflow.end_run("KILLED")
    with pytest.raises(ZeroDivisionError), mlflow.start_run(run_name="broken"):
        mlflow.log_param("divisor", 0)
        mlflow.log_metric("before_failure", 1.0)
        _ = 1 / 0
    mlflow.start_run(run_name="explicit")
    mlflow.log_metric("negative", -1.5)
    mlflow.log_metric("big_step", 2.0, step=2**40)
    mlflow.end_run(status="FAILED")
    return seen
