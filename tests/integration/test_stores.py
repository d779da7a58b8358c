"""The worker writes the same runs to every kind of MLflow store it supports:
PostgreSQL (production) and an ``http://`` MLflow tracking server (sqlite is the
default, covered everywhere else)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from consumers import ConsumerSettings
from ingest.reader import RunReader
from ingest.settings import KafkaSettings, MlflowSettings
from producers import ExperimentTracker, ProducerSettings, RunConfig
from tests.integration.support import MlflowServer, WorkerThread

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def http_uri(tmp_path: Path) -> Iterator[str]:
    """An ``mlflow server`` on a free port over its own sqlite store."""
    server = MlflowServer(tmp_path)
    server.start()
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.mark.parametrize("store", ["postgres_uri", "http_uri"])
def test_a_run_lands_the_same_in_every_store(
    store: str, request: pytest.FixtureRequest, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    tracking_uri: str = request.getfixturevalue(store)
    mlflow = MlflowSettings(tracking_uri=tracking_uri, artifact_root=str(tmp_path / "artifacts"))
    worker = WorkerThread(ConsumerSettings(kafka=kafka_settings, mlflow=mlflow))
    worker.start()
    try:
        with ExperimentTracker(ProducerSettings(kafka=kafka_settings, mlflow=mlflow)) as tracker:
            with tracker.start_run(
                experiment_name="stores", run_config=RunConfig(tenant_id="acme-corp", run_name="s")
            ) as run:
                run.log_params({"lr": 0.01})
                for step in range(50):
                    run.log_metrics({"loss": 1 / (step + 1), "acc": step / 50}, step=step)
            history = tracker.get_metric_history(run_id=run.run_id, key="loss")
    finally:
        worker.stop()
    assert [(p["step"], p["value"]) for p in history] == [(s, 1 / (s + 1)) for s in range(50)]
    found = RunReader(tracking_uri).find_run("acme-corp", run.run_id)
    assert found is not None
    stored = MlflowClient(tracking_uri).get_run(found.info.run_id)
    assert stored.info.status == "FINISHED"
    assert stored.data.params == {"lr": "0.01"}
    assert stored.data.metrics == {"loss": 1 / 50, "acc": 49 / 50}
