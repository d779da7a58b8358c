"""Helpers for the integration tests: workers (thread or process), publishing and
waiting, lag, MLflow snapshots."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiokafka.structs import TopicPartition
from mlflow.tracking import MlflowClient

from consumers import ConsumerSettings, MlflowSink, build_worker
from consumers.telemetry import WorkerTelemetry
from ingest.events import EventEnvelope
from ingest.kafka import admin_client, kafka_consumer, kafka_producer, start, topic_partitions
from ingest.settings import KafkaSettings
from ingest.tracking.consistency import Position, wait_committed
from ingest.tracking.reader import RunReader
from producers import EventPublisher, ProducerSettings
from tests.integration.secure import kafka_env

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_SCRIPT = ROOT / "deploy" / "postgres" / "postgres.sh"


class WorkerThread:
    """Runs a real worker (FastStream app + MLflow sink) on an event loop of its own."""

    def __init__(
        self, settings: ConsumerSettings, telemetry: WorkerTelemetry | None = None
    ) -> None:
        self.settings = settings
        self.telemetry = telemetry or WorkerTelemetry()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._app = build_worker(settings, MlflowSink(settings.mlflow), self.telemetry)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._app.start(), self._loop).result(60)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._app.stop(), self._loop).result(60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def snapshot(tracking_uri: str, tenant_id: str) -> dict[str, Any]:
    """Everything MLflow holds for a tenant's runs, keyed by producer run id: to compare
    a store before and after (no second run, no second metric row)."""
    reader = RunReader(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_ids = reader.experiment_ids(tenant_id)
    result: dict[str, Any] = {}
    if not experiment_ids:
        return result
    for run in client.search_runs(experiment_ids, max_results=10_000):
        history = {
            key: sorted(
                (m.step, m.timestamp, m.value)
                for m in client.get_metric_history(run.info.run_id, key)
            )
            for key in run.data.metrics
        }
        result[run.data.tags["matih.run_id"]] = {
            "mlflow_run_id": run.info.run_id,
            "status": run.info.status,
            "start_time": run.info.start_time,
            "end_time": run.info.end_time,
            "params": run.data.params,
            "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.log")},
            "history": history,
        }
    return result


async def publish(
    settings: ProducerSettings, events: list[EventEnvelope], raw: Sequence[tuple[bytes, bytes]] = ()
) -> list[Position]:
    """Publishes ``events`` (and raw ``(key, value)`` records) in order; returns where
    each landed."""
    publisher = EventPublisher(settings)
    await publisher.start()
    try:
        positions = []
        for event in events:
            metadata = await publisher.publish_and_wait(event)
            positions.append(Position(metadata.topic, metadata.partition, metadata.offset))
        if raw:
            producer = await start(kafka_producer(settings.kafka), settings.kafka)
            try:
                for key, value in raw:
                    metadata = await producer.send_and_wait(
                        settings.kafka.topic, value=value, key=key
                    )
                    positions.append(Position(metadata.topic, metadata.partition, metadata.offset))
            finally:
                await producer.stop()
        return positions
    finally:
        await publisher.stop(timeout=5)


async def publish_and_wait_written(
    settings: ProducerSettings,
    events: list[EventEnvelope],
    raw: Sequence[tuple[bytes, bytes]] = (),
    timeout: float = 60,
) -> None:
    """Publishes, then waits until the worker group committed past every record."""
    positions = await publish(settings, events, raw)
    assert await wait_committed(settings.kafka, positions, timeout), "the worker did not catch up"


class WorkerProcess:
    """A worker as its own OS process (``matih-ingest worker``), to kill for real."""

    def __init__(self, settings: ConsumerSettings, log_path: Path, **env: str) -> None:
        self.settings = settings
        self._log_path = log_path
        self._env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "MATIH_KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "MATIH_KAFKA_TOPIC": settings.kafka.topic,
            "MATIH_KAFKA_CONSUMER_GROUP": settings.kafka.consumer_group,
            "MATIH_MLFLOW_TRACKING_URI": settings.mlflow.tracking_uri,
            "MATIH_MLFLOW_ARTIFACT_ROOT": settings.mlflow.artifact_root,
            "MATIH_CONSUMER_MAX_RECORDS": str(settings.max_records),
            "MATIH_CONSUMER_BATCH_TIMEOUT_MS": str(settings.batch_timeout_ms),
            **kafka_env(settings.kafka),
            **env,
        }
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "ingest.cli.main", "worker"],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self._process is not None
        self._process.send_signal(sig)
        self._process.wait(30)

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self.kill(signal.SIGTERM)


async def end_offsets(kafka: KafkaSettings) -> dict[TopicPartition, int]:
    """The log-end offset of every partition of the events topic."""
    partitions = await topic_partitions(kafka, kafka.topic)
    consumer = await start(kafka_consumer(kafka), kafka)
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return ends


async def group_lag(kafka: KafkaSettings) -> int:
    """Events in the topic that the worker group has not committed yet."""
    ends = await end_offsets(kafka)
    partitions = list(ends)
    async with admin_client(kafka) as admin:
        committed = await admin.list_consumer_group_offsets(
            kafka.consumer_group, partitions=partitions
        )
    return sum(
        end - max(committed[p].offset, 0) if p in committed else end for p, end in ends.items()
    )


def metric_rows(tracking_uri: str, tenant_id: str, run_id: str, key: str) -> int:
    """How many rows of ``key`` MLflow holds for the run (0 while it does not exist)."""
    run = RunReader(tracking_uri).find_run(tenant_id, run_id)
    if run is None:
        return 0
    return len(MlflowClient(tracking_uri).get_metric_history(run.info.run_id, key))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MlflowServer:
    """An ``mlflow server`` that can be stopped and started again on the same store (its
    own sqlite store in ``folder``, or ``backend_store_uri``: the UI over a worker's)."""

    def __init__(self, folder: Path, backend_store_uri: str | None = None) -> None:
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self._folder = folder
        self._backend = backend_store_uri or f"sqlite:///{folder / 'server.db'}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
                "--backend-store-uri",
                self._backend,
                "--default-artifact-root",
                str(self._folder / "artifacts"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2):
                    return
            except OSError:
                assert time.monotonic() < deadline, "mlflow server did not start in time"
                assert self._process.poll() is None, "mlflow server exited"
                time.sleep(0.5)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(30)
            self._process = None


async def wait_consumed(worker: WorkerThread, count: int, within_s: float = 60) -> None:
    """Waits until ``worker`` consumed ``count`` records (it commits what it consumed)."""
    deadline = time.monotonic() + within_s
    while worker.telemetry.consumed < count:
        assert time.monotonic() < deadline, (
            f"worker consumed {worker.telemetry.consumed} of {count}"
        )
        await asyncio.sleep(0.1)
