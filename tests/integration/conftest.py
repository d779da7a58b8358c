"""Real Kafka and a real MLflow store for the integration tests.

The broker: ``KAFKA_BOOTSTRAP_SERVERS`` if set; else the project's own local broker
(deploy/kafka, started fresh on ``MATIH_TEST_KAFKA_PORT``, default 19092, and stopped
after the session); else a testcontainers Kafka where a Docker engine runs.
Each test gets its own topic, consumer group and sqlite MLflow store.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from consumers import ConsumerSettings, WorkerStats
from ingest.settings import KafkaSettings, MlflowSettings
from producers import ExperimentTracker, ProducerSettings
from tests.integration.outage import OutageBroker
from tests.integration.support import WorkerThread

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = ROOT / "deploy" / "kafka" / "kafka.sh"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """host:port of a real Kafka broker for this test session."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    if shutil.which("java") and shutil.which("mvn"):
        port = os.environ.get("MATIH_TEST_KAFKA_PORT", "19092")
        data = ROOT / ".data" / f"kafka-test-{port}"
        shutil.rmtree(data, ignore_errors=True)
        env = {**os.environ, "KAFKA_PORT": port, "KAFKA_DATA_DIR": str(data)}
        subprocess.run([str(KAFKA_SCRIPT), "start"], check=True, env=env)
        try:
            yield f"127.0.0.1:{port}"
        finally:
            subprocess.run([str(KAFKA_SCRIPT), "stop"], check=False, env=env)
        return
    from testcontainers.kafka import KafkaContainer  # noqa: PLC0415 - needs Docker, used only then

    with KafkaContainer() as container:
        yield container.get_bootstrap_server()


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """A topic and consumer group of this test's own."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    return KafkaSettings(
        bootstrap_servers=kafka_bootstrap, topic=f"{name}.events", consumer_group=f"{name}-workers"
    )


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty sqlite MLflow store with its tables: creating them takes ~7 s on 2 cores."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_settings(tmp_path: Path, mlflow_template: Path) -> MlflowSettings:
    """A fresh sqlite MLflow store of this test's own (a copy of the empty template)."""
    shutil.copy(mlflow_template, tmp_path / "mlflow.db")
    return MlflowSettings(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_root=str(tmp_path / "artifacts"),
    )


@pytest.fixture
def consumer_settings(
    kafka_settings: KafkaSettings, mlflow_settings: MlflowSettings
) -> ConsumerSettings:
    return ConsumerSettings(kafka=kafka_settings, mlflow=mlflow_settings, batch_timeout_ms=100)


@pytest.fixture
def producer_settings(
    kafka_settings: KafkaSettings, mlflow_settings: MlflowSettings, tmp_path: Path
) -> ProducerSettings:
    """Publishing to this test's topic; a spool, if one is needed, in its tmp_path."""
    return ProducerSettings(
        kafka=kafka_settings, mlflow=mlflow_settings, linger_ms=5, spool_dir=tmp_path / "spool"
    )


@pytest.fixture
def worker(consumer_settings: ConsumerSettings) -> Iterator[WorkerThread]:
    """A running worker (FastStream app, MLflow sink) on this test's topic and store."""
    running = WorkerThread(consumer_settings, WorkerStats())
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def tracker(producer_settings: ProducerSettings) -> Iterator[ExperimentTracker]:
    """An SDK tracker publishing to this test's topic."""
    with ExperimentTracker(producer_settings) as running:
        yield running


@pytest.fixture(scope="module")
def outage_broker() -> Iterator[OutageBroker]:
    """A broker of this module's own (fresh data), for tests that stop and restart it."""
    broker = OutageBroker()
    broker.remove()
    broker.start()
    try:
        yield broker
    finally:
        broker.remove()
