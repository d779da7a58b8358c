"""Real Kafka and a real MLflow store for the integration tests.

The broker: ``KAFKA_BOOTSTRAP_SERVERS`` if set; else the project's own local broker
(deploy/kafka, started fresh on ``MATIH_TEST_KAFKA_PORT``, default 19092, and stopped
after the session); else a testcontainers Kafka where a Docker engine runs.
Each test gets its own topic, consumer group and sqlite MLflow store. PostgreSQL
(deploy/postgres, on ``MATIH_TEST_PG_PORT``, default 55432) is started for the tests
that ask for it, with a fresh database per test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy
from mlflow.tracking import MlflowClient

from consumers import ConsumerSettings
from ingest.settings import KafkaSettings, MlflowSettings, WritePath
from producers import ExperimentTracker, ProducerSettings
from tests.integration.outage import OutageBroker
from tests.integration.secure import SecureBroker
from tests.integration.support import POSTGRES_SCRIPT, WorkerThread

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = ROOT / "deploy" / "kafka" / "kafka.sh"


SECURE_SUITE = os.environ.get("MATIH_TEST_KAFKA_SECURE") == "1"
"""Run the suite against the broker in secure mode (SASL_SSL, ACLs), as its super-user."""


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> Iterator[str]:
    """host:port of a real Kafka broker for this test session (the secure broker with
    ``MATIH_TEST_KAFKA_SECURE=1``)."""
    if SECURE_SUITE:
        secure: SecureBroker = request.getfixturevalue("secure_broker")
        yield secure.admin().bootstrap_servers
        return
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
def kafka_settings(kafka_bootstrap: str, request: pytest.FixtureRequest) -> KafkaSettings:
    """A topic and consumer group of this test's own (on the secure broker, as its
    super-user, with ``MATIH_TEST_KAFKA_SECURE=1``)."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    own = {"topic": f"{name}.events", "consumer_group": f"{name}-workers"}
    if SECURE_SUITE:
        secure: SecureBroker = request.getfixturevalue("secure_broker")
        return secure.admin(**own)
    return KafkaSettings(bootstrap_servers=kafka_bootstrap, **own)


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty sqlite MLflow store with its tables: creating them takes ~7 s on 2 cores."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def new_sqlite_store(tmp_path: Path, mlflow_template: Path) -> Callable[[str], str]:
    """Makes fresh sqlite MLflow stores of this test's own (copies of the empty template):
    ``new_sqlite_store(name)`` returns the new store's tracking URI."""

    def create(name: str) -> str:
        path = tmp_path / f"{name}.db"
        shutil.copy(mlflow_template, path)
        return f"sqlite:///{path}"

    return create


@pytest.fixture
def mlflow_settings(
    request: pytest.FixtureRequest, tmp_path: Path, new_sqlite_store: Callable[[str], str]
) -> MlflowSettings:
    """A fresh sqlite MLflow store of this test's own, written by the bulk path unless the
    test asks (an indirect ``WritePath`` parameter) for the store-API path, as with an
    ``http://`` server, where MLflow picks the run ids."""
    return MlflowSettings(
        tracking_uri=new_sqlite_store("mlflow"),
        artifact_root=str(tmp_path / "artifacts"),
        write_path=getattr(request, "param", WritePath.AUTO),
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a running PostgreSQL server (started from deploy/postgres)."""
    env = {**os.environ, "PG_PORT": os.environ.get("MATIH_TEST_PG_PORT", "55432")}
    subprocess.run([str(POSTGRES_SCRIPT), "start"], check=True, env=env)
    url = subprocess.run(
        [str(POSTGRES_SCRIPT), "url"], check=True, env=env, capture_output=True, text=True
    ).stdout.strip()
    try:
        yield url.rsplit("/", 1)[0]
    finally:
        subprocess.run([str(POSTGRES_SCRIPT), "stop"], check=False, env=env)


@pytest.fixture
def new_postgres_store(postgres_server: str) -> Callable[[str], str]:
    """Makes fresh PostgreSQL databases of this test's own: ``new_postgres_store(name)``
    returns the new database's tracking URI (MLflow creates its tables on first use)."""

    def create(name: str) -> str:
        database = f"mlflow_{name}_{uuid.uuid4().hex[:10]}"
        engine = sqlalchemy.create_engine(
            f"{postgres_server}/postgres", isolation_level="AUTOCOMMIT"
        )
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f'create database "{database}"'))
        engine.dispose()
        return f"{postgres_server}/{database}"

    return create


@pytest.fixture
def postgres_uri(new_postgres_store: Callable[[str], str]) -> str:
    """A PostgreSQL database of this test's own."""
    return new_postgres_store("test")


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
    running = WorkerThread(consumer_settings)
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


@pytest.fixture(scope="session")
def secure_broker() -> Iterator[SecureBroker]:
    """A broker in secure mode (SASL_SSL, SCRAM, ACLs enforced), fresh, for the session."""
    broker = SecureBroker()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
