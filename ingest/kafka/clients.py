"""The one place that builds aiokafka clients from ``KafkaSettings``, and starts and
stops them without hanging on a broker that is gone.

Defaults are the project's: consumers never auto-commit and begin at the earliest
record; producers are idempotent with ``acks=all``; every request is bounded by
``request_timeout_s``. Callers override what their role needs.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, TypeAlias, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from ingest.kafka.errors import KAFKA_FAILURES, bounded
from ingest.settings import KafkaSettings

__all__ = ["KafkaClient", "kafka_admin", "kafka_consumer", "kafka_producer", "start", "stop"]

logger = logging.getLogger(__name__)

KafkaClient: TypeAlias = AIOKafkaProducer | AIOKafkaConsumer | AIOKafkaAdminClient
C = TypeVar("C", AIOKafkaProducer, AIOKafkaConsumer, AIOKafkaAdminClient)


def _common(settings: KafkaSettings) -> dict[str, Any]:
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "request_timeout_ms": int(settings.request_timeout_s * 1000),
    }


def kafka_producer(settings: KafkaSettings, **options: Any) -> AIOKafkaProducer:
    """An idempotent ``acks=all`` producer; ``options`` are aiokafka's, and win."""
    return AIOKafkaProducer(
        **{**_common(settings), "acks": "all", "enable_idempotence": True, **options}
    )


def kafka_consumer(
    settings: KafkaSettings, group_id: str | None = None, **options: Any
) -> AIOKafkaConsumer:
    """A consumer that commits only when told to and, without a commit, begins at the
    earliest record; with ``group_id=None`` it joins no group and never commits."""
    return AIOKafkaConsumer(
        **{
            **_common(settings),
            "group_id": group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            **options,
        }
    )


def kafka_admin(settings: KafkaSettings) -> AIOKafkaAdminClient:
    """An admin client (topics, groups, offsets)."""
    return AIOKafkaAdminClient(**_common(settings))


async def start(client: C, settings: KafkaSettings, timeout: float | None = None) -> C:
    """Connects ``client``, bounded; on failure leaves nothing open.

    Raises:
        KafkaUnavailableError: no broker answered within ``timeout`` (the request
            timeout by default).
    """
    try:
        await bounded(client.start(), settings, "connecting", timeout)
    except BaseException:  # cancelled while connecting too: close what was opened
        await stop(client, 0.5)
        raise
    return client


async def stop(client: KafkaClient, timeout: float) -> None:
    """Disconnects ``client``, waiting at most ``timeout`` s; a failure is logged, not raised
    (nothing can be done about a broker that is gone while closing)."""
    closing = client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop()
    try:
        await asyncio.wait_for(closing, timeout)
    except KAFKA_FAILURES as exc:
        logger.warning("Kafka client did not stop cleanly within %gs: %r", timeout, exc)
