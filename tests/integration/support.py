"""Helpers for the integration tests: a worker on a thread, MLflow snapshots."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from mlflow.tracking import MlflowClient

from consumers import ConsumerSettings, MlflowSink, WorkerStats, build_worker
from ingest.consistency import Position, wait_committed
from ingest.events import EventEnvelope
from ingest.reader import RunReader
from producers import EventPublisher, ProducerSettings


class WorkerThread:
    """Runs a real worker (FastStream app + MLflow sink) on an event loop of its own."""

    def __init__(self, settings: ConsumerSettings, stats: WorkerStats) -> None:
        self.settings = settings
        self.stats = stats
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._app = build_worker(settings, MlflowSink(settings.mlflow), stats)

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
                (m.step, m.timestamp, m.value) for m in client.get_metric_history(run.info.run_id, key)
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
    """Publishes ``events`` (and raw ``(key, value)`` records) in order; returns where each landed."""
    publisher = EventPublisher(settings)
    await publisher.start()
    try:
        positions = []
        for event in events:
            metadata = await publisher.publish_and_wait(event)
            positions.append(Position(metadata.topic, metadata.partition, metadata.offset))
        if raw:
            producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers)
            await producer.start()
            try:
                for key, value in raw:
                    metadata = await producer.send_and_wait(settings.kafka.topic, value=value, key=key)
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
