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
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from consumers.dead_letters import DeadLetterQueue
from consumers.exporter import attach_metrics
from consumers.handler import BatchHandler, ConsumedBatch
from consumers.health import WorkerHealth
from consumers.settings import ConsumerSettings
from consumers.sink.base import BaseSink
from consumers.telemetry import WorkerTelemetry
from ingest.kafka import check_read_access, ensure_topics, security_options
from ingest.settings import KafkaSettings, SaslMechanism
from ingest.topics import events_pattern

logger = logging.getLogger(__name__)


def build_worker(
    settings: ConsumerSettings, sink: BaseSink, telemetry: WorkerTelemetry | None = None
) -> FastStream:
    """The worker app: reads the events topics in batches and writes them through ``sink``.

    It subscribes by pattern to the shared events topic and every tenant topic
    (``ingest.topics.events_pattern``); a tenant topic created later is joined within
    ``settings.topic_refresh_ms``.

    Topics are created on start-up if missing. Offsets are committed only after a
    batch was written and its poison records were dead-lettered. ``telemetry`` (a new
    one when None) is updated as batches are written; it is served on
    ``settings.metrics.port``, with the group's lag, ``/healthz`` and ``/readyz``, when
    that is set.
    """
    # FastStream logs each batch received and processed; at DEBUG, so a worker's log
    # says what matters (failures, rejections, start and stop), not every batch.
    broker = KafkaBroker(
        settings.kafka.servers,
        client_id=settings.client_id,
        log_level=logging.DEBUG,
        security=worker_security(settings.kafka),
        metadata_max_age_ms=settings.topic_refresh_ms,
    )
    dead_letters = DeadLetterQueue(settings.kafka)
    telemetry = telemetry or WorkerTelemetry()
    handler = BatchHandler(sink, settings, telemetry, dead_letters)
    health = WorkerHealth(settings.mlflow)

    @broker.subscriber(
        pattern=events_pattern(settings.kafka),
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
        if settings.kafka.sasl:  # rights exist only where principals do
            await check_read_access(settings.kafka, settings.kafka.consumer_group)
        await dead_letters.start()

    @app.after_shutdown
    async def close_dead_letters() -> None:
        await dead_letters.stop()
        logger.info("worker stopped: %s", telemetry.summary(time.process_time()))

    return app


_SASL = {
    SaslMechanism.SCRAM_SHA_512: SASLScram512,
    SaslMechanism.SCRAM_SHA_256: SASLScram256,
    SaslMechanism.PLAIN: SASLPlaintext,
}


def worker_security(kafka: KafkaSettings) -> BaseSecurity | None:
    """FastStream's form of the settings' protocol, identity and CA (the same
    connection options as every other client's: ``ingest.kafka.security_options``)."""
    if not kafka.sasl and not kafka.tls:
        return None
    ssl_context = security_options(kafka).get("ssl_context")
    if not kafka.sasl:
        return BaseSecurity(ssl_context=ssl_context, use_ssl=True)
    assert kafka.username is not None  # the settings refuse SASL without both
    assert kafka.password is not None
    return _SASL[kafka.sasl_mechanism](
        kafka.username,
        kafka.password.get_secret_value(),
        ssl_context=ssl_context,
        use_ssl=kafka.tls,
    )


async def _undecoded(message: StreamMessage[Any]) -> Any:
    """Leaves the records as they are: the handler decodes and validates each one itself
    (FastStream would otherwise JSON-parse every record first, for nothing)."""
    return message.raw_message
