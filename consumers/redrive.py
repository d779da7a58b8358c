"""Reading dead letters back, and re-driving them into the events topic after a fix.

Re-driving publishes each dead letter's original key, value and headers to the
topic it came from, and remembers how far it got in a consumer group of its own
(``<worker group>.redrive``), so a dead letter is re-driven once; one that fails
again comes back to the dead-letter topic with its new reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from consumers.dead_letters import (
    DLQ_HEADERS,
    ERROR_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
    TENANT_HEADER,
    TIME_HEADER,
)
from ingest.kafka import (
    KafkaRecord,
    OffsetRange,
    bounded,
    kafka_consumer,
    kafka_producer,
    read_ranges,
    start,
    stop,
    topic_partitions,
)
from ingest.settings import KafkaSettings
from ingest.topics import dead_letter_topic


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter: where it sits, why it is there, and the original record."""

    partition: int
    offset: int
    error: str
    tenant_id: str
    time: str
    source: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def original_headers(self) -> list[tuple[str, bytes]]:
        """The record's headers as they were before it was dead-lettered."""
        return [(k, v) for k, v in self.headers if k not in DLQ_HEADERS]

    @property
    def source_topic(self) -> str:
        """The topic the record was first read from."""
        return self.source.rsplit("[", 1)[0]


def redrive_group(kafka: KafkaSettings) -> str:
    """The consumer group that remembers what was re-driven."""
    return f"{kafka.consumer_group}.redrive"


class DeadLetterReader:
    """Reads the dead letters present when it opens, oldest first per partition.

    Args:
        kafka: the cluster and events topic.
        group: start after this group's committed offsets (from the start where it
            has none), and let ``commit`` move them; from the beginning when None.

    Use as ``async with DeadLetterReader(kafka) as reader: async for letter in reader.letters()``.
    """

    def __init__(self, kafka: KafkaSettings, group: str | None = None) -> None:
        self._kafka = kafka
        self._group = group
        self._consumer: AIOKafkaConsumer | None = None
        self._ranges: dict[TopicPartition, OffsetRange] = {}

    async def __aenter__(self) -> DeadLetterReader:
        """Connects and fixes the range to read: from the group's commit (or the log
        start) up to the log end now.

        Raises:
            KafkaUnavailableError: Kafka did not answer within the request timeout.
        """
        kafka = self._kafka
        partitions = await topic_partitions(kafka, dead_letter_topic(kafka))
        consumer = await start(kafka_consumer(kafka, group_id=self._group), kafka)
        self._consumer = consumer
        if partitions:
            doing = "reading the dead-letter offsets"
            ends = await bounded(consumer.end_offsets(partitions), kafka, doing)
            starts = await bounded(consumer.beginning_offsets(partitions), kafka, doing)
            if self._group is not None:
                committed = await bounded(self._committed(consumer, partitions), kafka, doing)
                starts.update(committed)
            self._ranges = {tp: (starts[tp], ends[tp]) for tp in partitions}
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._consumer is not None:
            await stop(self._consumer, self._kafka.request_timeout_s)

    async def letters(self, tenant_id: str | None = None) -> AsyncIterator[DeadLetter]:
        """Yields the dead letters (only ``tenant_id``'s, if given) up to the end seen at
        open, oldest first per partition.

        Raises:
            KafkaUnavailableError: Kafka stopped answering.
        """
        consumer = self._require()
        async for _, records in read_ranges(
            consumer, self._ranges, self._kafka, "reading dead letters"
        ):
            for record in records:
                letter = _letter(record)
                if tenant_id is None or letter.tenant_id == tenant_id:
                    yield letter

    async def commit(self, letter: DeadLetter) -> None:
        """Moves the group past ``letter``.

        Raises:
            KafkaUnavailableError: Kafka did not take the commit in time.
        """
        partition = TopicPartition(dead_letter_topic(self._kafka), letter.partition)
        offsets = {partition: OffsetAndMetadata(letter.offset + 1, "")}
        await bounded(self._require().commit(offsets), self._kafka, "committing re-drive progress")

    @staticmethod
    async def _committed(
        consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        found = {tp: await consumer.committed(tp) for tp in partitions}
        return {tp: offset for tp, offset in found.items() if offset is not None}

    def _require(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("use DeadLetterReader in 'async with'")
        return self._consumer


async def redrive(
    kafka: KafkaSettings, tenant_id: str | None = None, dry_run: bool = False
) -> list[DeadLetter]:
    """Re-publishes the dead letters not re-driven yet; returns them.

    The re-drive group's offset moves past each letter once it was acknowledged. With
    ``tenant_id`` only that tenant's letters are re-published and the group does not
    move (the others stay pending); re-driving one twice is harmless, as writes are
    idempotent.
    """
    producer = await start(kafka_producer(kafka), kafka)
    done: list[DeadLetter] = []
    try:
        async with DeadLetterReader(kafka, group=redrive_group(kafka)) as reader:
            async for letter in reader.letters(tenant_id):
                if dry_run:
                    done.append(letter)
                    continue
                await bounded(
                    producer.send_and_wait(
                        letter.source_topic,
                        value=letter.value,
                        key=letter.key,
                        headers=letter.original_headers,
                    ),
                    kafka,
                    f"re-driving the dead letter at {letter.partition}@{letter.offset}",
                )
                done.append(letter)
                if tenant_id is None:
                    await reader.commit(letter)
    finally:
        await stop(producer, kafka.request_timeout_s)
    return done


def _letter(record: KafkaRecord) -> DeadLetter:
    headers = tuple(record.headers or ())
    found = dict(headers)

    def text(name: str) -> str:
        value: bytes = found.get(name, b"")
        return value.decode(errors="replace")

    return DeadLetter(
        partition=record.partition,
        offset=record.offset,
        error=text(ERROR_HEADER),
        tenant_id=text(TENANT_HEADER),
        time=text(TIME_HEADER),
        source=f"{text(SOURCE_TOPIC_HEADER)}[{text(SOURCE_PARTITION_HEADER)}]@{text(SOURCE_OFFSET_HEADER)}",
        key=record.key,
        value=record.value,
        headers=headers,
    )
