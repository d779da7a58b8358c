"""The gateway's connection to Kafka: connect, reconnect, publish and wait for the ack.

The gateway starts, and serves reads, while Kafka is down; writes then answer 503
(``KafkaUnavailableError``) at once instead of hanging, and a background task
keeps reconnecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.structs import RecordMetadata

from ingest.api.settings import ApiSettings
from ingest.errors import KafkaUnavailableError
from ingest.events import EventEnvelope
from ingest.kafka import kafka_errors
from ingest.kafka.backoff import reconnect_delay
from ingest.tracking.consistency import Position
from producers import EventPublisher, ProducerSettings, ProducerTelemetry, PublishError

logger = logging.getLogger(__name__)


class GatewayPublisher:
    """Publishes the gateway's events and reports where each landed.

    Args:
        settings: Kafka location and the gateway's time bounds.
        metrics: counters of sent and failed records, served on ``/metrics``.
    """

    def __init__(self, settings: ApiSettings, metrics: ProducerTelemetry | None = None) -> None:
        self._settings = settings
        self._producer_settings = ProducerSettings(
            kafka=settings.kafka,
            mlflow=settings.mlflow,
            client_id="matih-ingest-gateway",
            linger_ms=2,
            connect_timeout_s=settings.connect_timeout_s,
            delivery_timeout_s=settings.publish_timeout_s,
        )
        self._publisher = EventPublisher(self._producer_settings, metrics)
        self._connecting: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """Whether writes can be published now."""
        return self._publisher.started

    async def start(self) -> None:
        """Connects, or, if Kafka does not answer, keeps trying in the background."""
        if not await self._connect_once():
            self._connecting = asyncio.create_task(self._reconnect(), name="gateway-kafka-connect")

    async def send(self, events: list[EventEnvelope]) -> Position:
        """Publishes ``events`` in order and waits for all their acks; the last one's position.

        Raises:
            KafkaUnavailableError: not connected, or not all acknowledged in time.
        """
        if not self._publisher.started:
            raise KafkaUnavailableError(
                f"not connected to Kafka at {self._settings.kafka.bootstrap_servers}"
            )
        bound = self._settings.publish_timeout_s
        try:
            with kafka_errors(self._settings.kafka, "acknowledging the write", within_s=bound):
                futures = [await self._publisher.publish(event) for event in events]
                done: list[RecordMetadata] = await asyncio.wait_for(
                    asyncio.gather(*(asyncio.shield(f) for f in futures)), bound
                )
        except PublishError as exc:
            raise KafkaUnavailableError(
                f"Kafka at {self._settings.kafka.bootstrap_servers} did not take the write ({exc})"
            ) from exc
        last = done[-1]
        return Position(last.topic, last.partition, last.offset)

    async def stop(self) -> None:
        """Stops reconnecting, flushes (bounded) and disconnects."""
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        await self._publisher.stop(timeout=self._settings.publish_timeout_s)

    async def _connect_once(self) -> bool:
        try:
            await self._publisher.start()  # creates missing topics too
        except KafkaUnavailableError as exc:
            await self._publisher.stop(timeout=1.0)
            logger.warning("%s; writes answer 503 until Kafka is back", exc)
            return False
        logger.info("gateway publishing to %s", self._settings.kafka.bootstrap_servers)
        return True

    async def _reconnect(self) -> None:
        attempt = 0
        while True:
            await asyncio.sleep(reconnect_delay(attempt))
            if await self._connect_once():
                return
            attempt += 1
