"""Dead letters: records that can never be written, set aside with the reason.

A dead letter is the original record (key, value, headers) on the dead-letter
topic, with headers that say what was wrong, where it came from and when. The
worker commits a poisoned record's offset only after its dead letter was
acknowledged, so nothing vanishes between the two topics.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from consumers.errors import DeadLetterError
from ingest.settings import KafkaSettings
from ingest.topics import dead_letter_topic

ERROR_HEADER = "matih-dlq-error"
SOURCE_TOPIC_HEADER = "matih-dlq-source-topic"
SOURCE_PARTITION_HEADER = "matih-dlq-source-partition"
SOURCE_OFFSET_HEADER = "matih-dlq-source-offset"
TENANT_HEADER = "matih-dlq-tenant"
TIME_HEADER = "matih-dlq-time"
DLQ_HEADERS = frozenset(
    {
        ERROR_HEADER,
        SOURCE_TOPIC_HEADER,
        SOURCE_PARTITION_HEADER,
        SOURCE_OFFSET_HEADER,
        TENANT_HEADER,
        TIME_HEADER,
    }
)
MAX_ERROR_BYTES = 4096


def dead_letter_headers(record: Any, reason: str, tenant_id: str | None) -> list[tuple[str, bytes]]:
    """The record's own headers plus the dead-letter headers (a re-dead-lettered record
    keeps only its newest reason)."""
    own = [(key, value) for key, value in (record.headers or ()) if key not in DLQ_HEADERS]
    return [
        *own,
        (ERROR_HEADER, reason.encode()[:MAX_ERROR_BYTES]),
        (SOURCE_TOPIC_HEADER, record.topic.encode()),
        (SOURCE_PARTITION_HEADER, str(record.partition).encode()),
        (SOURCE_OFFSET_HEADER, str(record.offset).encode()),
        (TENANT_HEADER, (tenant_id or "").encode()),
        (TIME_HEADER, datetime.now(UTC).isoformat().encode()),
    ]


class DeadLetterQueue:
    """Publishes dead letters and waits for Kafka's acknowledgement, bounded.

    Args:
        bootstrap_servers: the Kafka cluster.
        topic: the dead-letter topic (``dead_letter_topic(settings)``).
        timeout_s: bound on connecting and on each acknowledgement.
    """

    def __init__(self, bootstrap_servers: str, topic: str, timeout_s: float) -> None:
        self.topic = topic
        self._bootstrap_servers = bootstrap_servers
        self._timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None

    @classmethod
    def for_settings(cls, kafka: KafkaSettings) -> DeadLetterQueue:
        """The dead-letter queue of the events topic in ``kafka`` settings."""
        return cls(kafka.bootstrap_servers, dead_letter_topic(kafka), kafka.request_timeout_s)

    async def start(self) -> None:
        """Connects, bounded by the timeout."""
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=int(self._timeout_s * 1000),
            max_request_size=4 * 1024 * 1024,
        )
        try:
            await asyncio.wait_for(self._producer.start(), self._timeout_s)
        except (TimeoutError, KafkaError, OSError) as exc:
            raise DeadLetterError(f"could not connect the dead-letter producer: {exc!r}") from exc

    async def stop(self) -> None:
        """Disconnects, bounded by the timeout."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        with contextlib.suppress(TimeoutError, KafkaError, OSError):  # nothing is pending
            await asyncio.wait_for(producer.stop(), self._timeout_s)

    async def send(self, record: Any, reason: str, tenant_id: str | None) -> None:
        """Publishes ``record`` as a dead letter and waits until Kafka acknowledged it.

        Raises:
            DeadLetterError: not acknowledged in time (retriable: the source record is
                not committed and is read again).
        """
        if self._producer is None:
            raise DeadLetterError("the dead-letter producer is not connected")
        try:
            future = await self._producer.send(
                self.topic,
                value=record.value,
                key=record.key,
                headers=dead_letter_headers(record, reason, tenant_id),
            )
            await asyncio.wait_for(future, self._timeout_s)
        except (TimeoutError, KafkaError, OSError) as exc:
            raise DeadLetterError(
                f"could not dead-letter {record.topic}[{record.partition}]@{record.offset}: {exc!r}"
            ) from exc
