"""The pipeline end to end: SDK -> real Kafka -> worker -> MLflow, read back through
MLflow's own client."""

from __future__ import annotations

import time

import pytest
from mlflow.tracking import MlflowClient

from ingest.ids import run_id_time_ms
from ingest.tracking.reader import RunReader
from producers import ExperimentTracker, RunConfig
from tests.integration.support import WorkerThread

pytestmark = pytest.mark.integration

METRIC_KEYS = ("train_loss", "val_loss", "val_accuracy", "val_f1")


def value(key_index: int, step: int) -> float:
    return round(1.0 / (step + 1) + key_index * 0.1, 6)


def test_a_run_of_200_steps_lands_exactly(tracker: ExperimentTracker, worker: WorkerThread) -> None:
    """200 steps x 4 metrics, 5 params and 3 tags arrive complete and exact: counts, steps,
    values, client timestamps, stringified params, FINISHED with its end time."""
    before = time.time_ns() // 1_000_000
    with tracker.start_run(
        experiment_name="fraud-detection-v3",
        run_config=RunConfig(
            run_name="xgboost-baseline",
            tenant_id="acme-corp",
            user_id="alice@acme.com",
            description="baseline",
            tags={"model_type": "xgboost"},
        ),
    ) as run:
        run.log_params(
            {
                "learning_rate": 0.01,
                "max_depth": 6,
                "n_estimators": 200,
                "subsample": 0.8,
                "booster": "gbtree",
            }
        )
        run.set_tags({"dataset_version": "v2.1", "gpu_model": "A100"})
        for step in range(200):
            run.log_metrics({key: value(i, step) for i, key in enumerate(METRIC_KEYS)}, step=step)
    after = time.time_ns() // 1_000_000

    history = tracker.get_metric_history(run_id=run.run_id, key="val_loss")
    assert [point["step"] for point in history] == list(range(200))
    assert [point["value"] for point in history] == [value(1, step) for step in range(200)]
    assert all(before <= point["timestamp"] <= after for point in history)
    assert set(history[0]) == {"key", "value", "timestamp", "step"}

    reader = RunReader(worker.settings.mlflow.tracking_uri)
    found = reader.find_run("acme-corp", run.run_id)
    assert found is not None
    client = MlflowClient(tracking_uri=worker.settings.mlflow.tracking_uri)
    mlflow_run = client.get_run(found.info.run_id)
    for i, key in enumerate(METRIC_KEYS):
        points = client.get_metric_history(mlflow_run.info.run_id, key)
        assert len(points) == 200, key
        assert sorted((p.step, p.value) for p in points) == [(s, value(i, s)) for s in range(200)]
    assert mlflow_run.data.params == {
        "learning_rate": "0.01",
        "max_depth": "6",
        "n_estimators": "200",
        "subsample": "0.8",
        "booster": "gbtree",
    }
    tags = mlflow_run.data.tags
    assert tags["dataset_version"] == "v2.1"
    assert tags["gpu_model"] == "A100"
    assert tags["model_type"] == "xgboost"
    assert tags["mlflow.user"] == "alice@acme.com"
    assert tags["mlflow.note.content"] == "baseline"
    assert mlflow_run.info.run_name == "xgboost-baseline"
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.info.start_time == run.start_time == run_id_time_ms(run.run_id)
    assert mlflow_run.info.end_time == run.end_time
    assert before <= mlflow_run.info.end_time <= after
    experiment = client.get_experiment(mlflow_run.info.experiment_id)
    assert experiment.name == "acme-corp/fraud-detection-v3"


def test_an_exception_ends_the_run_failed_and_is_reraised(
    tracker: ExperimentTracker, worker: WorkerThread
) -> None:
    """An exception escaping the block marks the run FAILED, keeps what was logged, and
    reaches the caller unchanged."""
    with (
        pytest.raises(ZeroDivisionError),
        tracker.start_run(
            experiment_name="exp", run_config=RunConfig(tenant_id="acme-corp")
        ) as run,
    ):
        run.log_metrics({"loss": 0.5}, step=0)
        run.log_metrics({"loss": 0.4}, step=1)
        _ = 1 / 0
    history = tracker.get_metric_history(run_id=run.run_id, key="loss")
    assert [(p["step"], p["value"]) for p in history] == [(0, 0.5), (1, 0.4)]
    found = RunReader(worker.settings.mlflow.tracking_uri).find_run("acme-corp", run.run_id)
    assert found is not None
    assert found.info.status == "FAILED"


def test_keyboard_interrupt_ends_the_run_killed(
    tracker: ExperimentTracker, worker: WorkerThread
) -> None:
    with (
        pytest.raises(KeyboardInterrupt),
        tracker.start_run(
            experiment_name="exp", run_config=RunConfig(tenant_id="acme-corp")
        ) as run,
    ):
        run.log_metrics({"loss": 0.5}, step=0)
        raise KeyboardInterrupt
    assert tracker.get_metric_history(run_id=run.run_id, key="loss")[0]["value"] == 0.5
    found = RunReader(worker.settings.mlflow.tracking_uri).find_run("acme-corp", run.run_id)
    assert found is not None
    assert found.info.status == "KILLED"


def test_two_tenants_with_one_experiment_name_stay_apart(
    tracker: ExperimentTracker, worker: WorkerThread
) -> None:
    """Equal experiment names of two tenants are two MLflow experiments; neither tenant
    finds the other's run."""
    runs = {}
    for tenant, loss in (("acme-corp", 0.1), ("globex", 0.9)):
        with tracker.start_run(
            experiment_name="shared-name", run_config=RunConfig(tenant_id=tenant)
        ) as run:
            run.log_metrics({"loss": loss}, step=0)
        runs[tenant] = run
    assert (
        tracker.get_metric_history(run_id=runs["acme-corp"].run_id, key="loss")[0]["value"] == 0.1
    )
    assert tracker.get_metric_history(run_id=runs["globex"].run_id, key="loss")[0]["value"] == 0.9

    reader = RunReader(worker.settings.mlflow.tracking_uri)
    acme, globex = reader.experiment_ids("acme-corp"), reader.experiment_ids("globex")
    assert len(acme) == len(globex) == 1
    assert acme != globex
    assert reader.find_run("acme-corp", runs["globex"].run_id) is None
    assert reader.find_run("globex", runs["acme-corp"].run_id) is None
    assert (
        tracker.get_metric_history(run_id=runs["globex"].run_id, key="loss", tenant_id="acme-corp")
        == []
    )
