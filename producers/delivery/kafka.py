"""The async Kafka publisher: idempotent, acks=all, batched and compressed.

Every record's outcome is observed and counted; the caller (the sender) keeps each
record until it is acknowledged, so a failed one is never dropped silently. Every wait is
bounded: aiokafka's idempotent producer would otherwise retry forever while the
broker is gone.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata

from ingest import codec
from ingest.errors import KafkaUnavailableError
from ingest.events import EventEnvelope
from ingest.kafka import ACCESS_DENIALS, access_denied, ensure_topics, kafka_producer, start, stop
from ingest.kafka.compat import fail_pending
from ingest.topics import publish_topic, record_key
from producers.errors import PublishError
from producers.settings import ProducerSettings
from producers.telemetry import TelemetrySink


@dataclass
class PublisherStats:
    """Counts of records by outcome."""

    acked: int = 0
    failed: int = 0


class EventPublisher:
    """Publishes events to the events topic (or each tenant's own, with
    ``tenant_topics``), keyed per the key strategy.

    Args:
        settings: where Kafka is and how to batch.
        metrics: Prometheus counters of sent and failed records, if any.
    """

    def __init__(self, settings: ProducerSettings, metrics: TelemetrySink | None = None) -> None:
        self._settings = settings
        self._metrics = metrics
        self._producer: AIOKafkaProducer | None = None
        self._pending: set[asyncio.Future[RecordMetadata]] = set()
        self.stats = PublisherStats()

    async def start(self) -> None:
        """Connects to Kafka, and creates the topics if missing and ``create_topics`` is set
        (never with ``tenant_topics``: a tenant's topic is made with its credential, by
        ``matih-ingest tenants add``).

        Raises:
            KafkaUnavailableError: no broker answered within ``connect_timeout_s``.
            KafkaAccessDeniedError: the brokers refused the credential.
        """
        settings = self._settings
        producer = kafka_producer(
            settings.kafka,
            client_id=settings.client_id,
            linger_ms=settings.linger_ms,
            compression_type=None if settings.compression == "none" else settings.compression,
            max_batch_size=settings.max_batch_bytes,
            max_request_size=settings.max_request_bytes,
            request_timeout_ms=int(settings.delivery_timeout_s * 1000),
        )
        await start(producer, settings.kafka, settings.connect_timeout_s)
        if settings.create_topics and not settings.kafka.tenant_topics:
            try:
                await ensure_topics(settings.kafka)
            except KafkaUnavailableError:
                await stop(producer, settings.connect_timeout_s)
                raise
        self._producer = producer

    @property
    def started(self) -> bool:
        """Whether ``start`` succeeded and ``stop`` has not been called since."""
        return self._producer is not None

    async def publish(
        self, event: EventEnvelope, value: bytes | None = None
    ) -> asyncio.Future[RecordMetadata]:
        """Queues ``event`` for sending; returns the future of its acknowledgement.

        Waits only while the local batch buffer is full, at most ``delivery_timeout_s``.

        Args:
            event: the event (its tenant and run make the key and headers).
            value: ``event`` already encoded (as the spool holds it); encoded here if None.

        Raises:
            PublishError: the record could not be queued.
            KafkaAccessDeniedError: the brokers refuse this principal the event's topic.
        """
        producer = self._require_started()
        try:
            future: asyncio.Future[RecordMetadata] = await producer.send(
                publish_topic(self._settings.kafka, event.tenant_id),
                value=codec.encode(event) if value is None else value,
                key=record_key(event, self._settings.kafka.key_strategy),
                headers=codec.headers(event),
            )
        except ACCESS_DENIALS as exc:
            self.stats.failed += 1
            doing = f"writing tenant {event.tenant_id!r}'s events"
            raise access_denied(self._settings.kafka, doing, exc) from exc
        except KafkaError as exc:
            self.stats.failed += 1
            if self._metrics is not None:
                self._metrics.send_failed(event.kind, type(exc).__name__)
            raise PublishError(
                f"could not queue {event.kind} for run {event.run_id}: {exc!r}"
            ) from exc
        self._pending.add(future)
        future.add_done_callback(functools.partial(self._settle, event.kind))
        return future

    async def publish_and_wait(self, event: EventEnvelope) -> RecordMetadata:
        """Publishes ``event`` and waits until Kafka acknowledged it.

        Raises:
            PublishError: not acknowledged within ``delivery_timeout_s``.
        """
        future = await self.publish(event)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self._settings.delivery_timeout_s)
        except (TimeoutError, KafkaError) as exc:
            raise PublishError(
                f"Kafka did not acknowledge {event.kind} for run {event.run_id} within"
                f" {self._settings.delivery_timeout_s:g}s ({exc!r})"
            ) from exc

    async def flush(self, timeout: float) -> bool:
        """Waits up to ``timeout`` seconds for every queued record; True if none is left."""
        if not self._pending:
            return True
        await asyncio.wait(set(self._pending), timeout=timeout)
        return not self._pending

    async def stop(self, timeout: float) -> None:
        """Flushes for up to ``timeout`` seconds, then disconnects."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        await self.flush(timeout)
        await stop(producer, timeout)

    async def abort(self, within_s: float) -> None:
        """Disconnects at once: every record not yet acknowledged fails (the caller has
        kept them, in the spool), so stopping does not wait on a broker that is gone."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        fail_pending(producer, "the publisher was aborted")
        await stop(producer, within_s)

    def _require_started(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise PublishError("the publisher is not connected; call start() first")
        return self._producer

    def _settle(self, kind: str, future: asyncio.Future[RecordMetadata]) -> None:
        self._pending.discard(future)
        if future.cancelled() or future.exception() is not None:
            # Counted only: the sender keeps the event and logs one line per outage,
            # not one per record.
            self.stats.failed += 1
            if self._metrics is not None:
                reason = "cancelled" if future.cancelled() else type(future.exception()).__name__
                self._metrics.send_failed(kind, reason)
        else:
            self.stats.acked += 1
            if self._metrics is not None:
                self._metrics.sent(kind)
