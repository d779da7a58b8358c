"""The worker: a FastStream Kafka app with one batch subscriber and manual acks."""

from __future__ import annotations

import logging
import time
from typing import Any, cast

from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy

from consumers.dead_letters import DeadLetterQueue
from consumers.exporter import attach_metrics
from consumers.handler import BatchHandler, ConsumedBatch
from consumers.health import WorkerHealth
from consumers.settings import ConsumerSettings
from consumers.sink.base import BaseSink
from consumers.telemetry import WorkerTelemetry
from ingest.kafka import ensure_topics
from ingest.topics import events_topic

logger = logging.getLogger(__name__)


def build_worker(
    settings: ConsumerSettings, sink: BaseSink, telemetry: WorkerTelemetry | None = None
) -> FastStream:
    """The worker app: reads the events topic in batches and writes them through ``sink``.

    Topics are created on start-up if missing. Offsets are committed only after a
    batch was written and its poison records were dead-lettered. ``telemetry`` (a new
    one when None) is updated as batches are written; it is served on
    ``settings.metrics.port``, with the group's lag, ``/healthz`` and ``/readyz``, when
    that is set.
    """
    # FastStream logs each batch received and processed; at DEBUG, so a worker's log
    # says what matters (failures, rejections, start and stop), not every batch.
    broker = KafkaBroker(
        settings.kafka.servers, client_id=settings.client_id, log_level=logging.DEBUG
    )
    dead_letters = DeadLetterQueue(settings.kafka)
    telemetry = telemetry or WorkerTelemetry()
    handler = BatchHandler(sink, settings, telemetry, dead_letters)
    health = WorkerHealth(settings.mlflow)

    @broker.subscriber(
        events_topic(settings.kafka),
        group_id=settings.kafka.consumer_group,
        group_instance_id=settings.group_instance_id,
        batch=True,
        max_records=settings.max_records,
        max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
        batch_timeout_ms=settings.batch_timeout_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,
        decoder=_undecoded,
        listener=health.listener,
        title="run-events:write-mlflow",
        description="Workers batch run events into MLflow; offsets are committed after"
        " the write, so a consistency token is readable once the group passed it.",
    )
    async def write_batch(message: KafkaMessage) -> None:
        # FastStream types the consumer by the two calls its own acks make; it is
        # aiokafka's consumer, which the handler also seeks, pauses and resumes.
        await handler(cast("ConsumedBatch", message))

    app = FastStream(broker)
    if settings.metrics.port is not None:
        attach_metrics(app, settings, telemetry, health.readiness)

    @app.on_startup
    async def prepare() -> None:
        await ensure_topics(settings.kafka)
        await dead_letters.start()

    @app.after_shutdown
    async def close_dead_letters() -> None:
        await dead_letters.stop()
        logger.info("worker stopped: %s", telemetry.summary(time.process_time()))

    return app


async def _undecoded(message: StreamMessage[Any]) -> Any:
    """Leaves the records as they are: the handler decodes and validates each one itself
    (FastStream would otherwise JSON-parse every record first, for nothing)."""
    return message.raw_message
