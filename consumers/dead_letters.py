"""Dead letters: records that can never be written, set aside with the reason.

A dead letter is the original record (key, value, headers) on the dead-letter
topic, with headers that say what was wrong, where it came from and when. The
worker commits a poisoned record's offset only after its dead letter was
acknowledged, so nothing vanishes between the two topics.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from consumers.errors import DeadLetterError
from ingest.errors import IngestError
from ingest.kafka import KafkaRecord, bounded, kafka_producer, start, stop
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


def dead_letter_headers(
    record: KafkaRecord, reason: str, tenant_id: str | None
) -> list[tuple[str, bytes]]:
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
        kafka: the cluster; ``request_timeout_s`` bounds connecting and each
            acknowledgement.
    """

    def __init__(self, kafka: KafkaSettings) -> None:
        self.topic = dead_letter_topic(kafka)
        self._kafka = kafka
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connects, bounded by the timeout.

        Raises:
            DeadLetterError: no broker answered in time.
        """
        producer = kafka_producer(self._kafka, max_request_size=4 * 1024 * 1024)
        try:
            self._producer = await start(producer, self._kafka)
        except IngestError as exc:
            raise DeadLetterError(f"could not connect the dead-letter producer: {exc}") from exc

    async def stop(self) -> None:
        """Disconnects, bounded by the timeout (nothing is pending: each send was awaited)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await stop(producer, self._kafka.request_timeout_s)

    async def send(self, record: KafkaRecord, reason: str, tenant_id: str | None) -> None:
        """Publishes ``record`` as a dead letter and waits until Kafka acknowledged it.

        Raises:
            DeadLetterError: not acknowledged in time (retriable: the source record is
                not committed and is read again).
        """
        if self._producer is None:
            raise DeadLetterError("the dead-letter producer is not connected")
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        await bounded(
            self._producer.send_and_wait(
                self.topic,
                value=record.value,
                key=record.key,
                headers=dead_letter_headers(record, reason, tenant_id),
            ),
            self._kafka,
            f"dead-lettering {where}",
            error=DeadLetterError,
        )
