"""The worker: a FastStream Kafka app with one batch subscriber and manual acks."""

from __future__ import annotations

import logging
import time
from typing import Any

from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy

from consumers.dead_letters import DeadLetterQueue
from consumers.exporter import attach_metrics
from consumers.handler import BatchHandler
from consumers.health import WorkerHealth
from consumers.metrics import WorkerMetrics
from consumers.settings import ConsumerSettings
from consumers.sink.base import BaseSink
from consumers.stats import WorkerStats
from ingest.topics import ensure_topics, events_topic

logger = logging.getLogger(__name__)


def build_worker(
    settings: ConsumerSettings,
    sink: BaseSink,
    stats: WorkerStats | None = None,
    metrics: WorkerMetrics | None = None,
    health: WorkerHealth | None = None,
) -> FastStream:
    """The worker app: reads the events topic in batches and writes them through ``sink``.

    Topics are created on start-up if missing. Offsets are committed only after a
    batch was written and its poison records were dead-lettered. With ``metrics``, they
    are updated as batches are written and served on ``settings.metrics.port``, with the
    group's lag; with ``health`` too, the same port answers ``/healthz`` and ``/readyz``.
    """
    broker = KafkaBroker(settings.kafka.servers, client_id=settings.client_id)
    dead_letters = DeadLetterQueue.for_settings(settings.kafka)
    stats = stats or WorkerStats()
    handler = BatchHandler(sink, settings, stats, dead_letters, metrics)

    @broker.subscriber(
        events_topic(settings.kafka),
        group_id=settings.kafka.consumer_group,
        batch=True,
        max_records=settings.max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,
        decoder=_undecoded,
        listener=health.listener if health is not None else None,
    )
    async def write_batch(message: KafkaMessage) -> None:
        await handler(message)

    app = FastStream(broker)
    if metrics is not None:
        attach_metrics(app, settings, metrics, health.readiness if health is not None else None)

    @app.on_startup
    async def prepare() -> None:
        await ensure_topics(settings.kafka)
        await dead_letters.start()

    @app.after_shutdown
    async def close_dead_letters() -> None:
        await dead_letters.stop()
        logger.info("worker stopped: %s", stats.summary(time.process_time()))

    return app


async def _undecoded(message: StreamMessage[Any]) -> Any:
    """Leaves the records as they are: the handler decodes and validates each one itself
    (FastStream would otherwise JSON-parse every record first, for nothing)."""
    return message.raw_message
