"""The router keeps every record Kafka failed: it goes to the spool with the rest."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import RecordMetadata

from ingest import codec
from ingest.events import EventEnvelope, MetricsLogged
from ingest.ids import new_run_id
from ingest.settings import KafkaSettings
from producers import ProducerMetrics, ProducerSettings
from producers.delivery.buffer import EventBuffer, RunIdentity
from producers.delivery.router import EventRouter


class ControlledPublisher:
    """Stands in for Kafka: each publish returns a future the test settles."""

    def __init__(self) -> None:
        self.started = True
        self.futures: list[asyncio.Future[RecordMetadata]] = []

    async def publish(
        self, event: EventEnvelope, value: bytes | None = None
    ) -> asyncio.Future[RecordMetadata]:
        future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future

    async def abort(self, within_s: float) -> None:
        self.started = False


async def test_a_record_kafka_fails_is_spooled_not_lost_and_the_gauge_shows_it(
    tmp_path: Path,
) -> None:
    settings = ProducerSettings(
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1", topic="t.events"),
        spool_dir=tmp_path / "spool",
    )
    buffer = EventBuffer(max_items=100, full_wait_s=0)
    metrics = ProducerMetrics()
    publisher = ControlledPublisher()
    router = EventRouter(settings, buffer, metrics, publisher)  # type: ignore[arg-type]
    run = RunIdentity("acme-corp", new_run_id(), "exp")

    buffer.add_metrics(run, 282, 1_000, [("loss", 0.5)])
    await router.step()
    (sent,) = publisher.futures
    sent.set_exception(KafkaConnectionError())  # the broker went away mid-flight
    await asyncio.sleep(0)  # the done callback runs
    await router.step()  # the outage: everything unacknowledged goes to the spool

    assert router.spool is not None
    (record,) = router.spool.read(10)
    event = codec.decode(record.value)
    assert isinstance(event, MetricsLogged)
    assert [(p.step, p.value) for p in event.metrics] == [(282, 0.5)]
    registry = metrics.registry
    assert registry.get_sample_value("matih_ingest_producer_spool_events") == 1
    assert (
        registry.get_sample_value("matih_ingest_producer_spool_bytes")
        == router.spool.size_bytes
        > 0
    )
    router.spool.close()
