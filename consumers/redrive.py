"""Reading dead letters back, and re-driving them into the events topic after a fix.

Re-driving publishes each dead letter's original key, value and headers to the
topic it came from, and remembers how far it got in a consumer group of its own
(``<worker group>.redrive``), so a dead letter is re-driven once; one that fails
again comes back to the dead-letter topic with its new reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
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
from ingest.settings import KafkaSettings
from ingest.topics import dead_letter_topic, topic_partitions


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
        self._ends: dict[TopicPartition, int] = {}

    async def __aenter__(self) -> DeadLetterReader:
        kafka = self._kafka
        partitions = await topic_partitions(kafka, dead_letter_topic(kafka))
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap_servers,
            group_id=self._group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=int(kafka.request_timeout_s * 1000),
        )
        await asyncio.wait_for(consumer.start(), kafka.request_timeout_s)
        self._consumer = consumer
        if partitions:
            consumer.assign(partitions)
            self._ends = await consumer.end_offsets(partitions)
            if self._group is None:
                await consumer.seek_to_beginning(*partitions)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def letters(self, tenant_id: str | None = None) -> AsyncIterator[DeadLetter]:
        """Yields the dead letters (only ``tenant_id``'s, if given) up to the end seen at open."""
        consumer = self._require()
        for partition, end in self._ends.items():
            while await consumer.position(partition) < end:
                batch = await consumer.getmany(partition, timeout_ms=1000)
                for record in batch.get(partition, ()):
                    if record.offset >= end:
                        break
                    letter = _letter(record)
                    if tenant_id is None or letter.tenant_id == tenant_id:
                        yield letter

    async def commit(self, letter: DeadLetter) -> None:
        """Moves the group past ``letter``."""
        partition = TopicPartition(dead_letter_topic(self._kafka), letter.partition)
        await self._require().commit({partition: OffsetAndMetadata(letter.offset + 1, "")})

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
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers, acks="all", enable_idempotence=True
    )
    await asyncio.wait_for(producer.start(), kafka.request_timeout_s)
    done: list[DeadLetter] = []
    try:
        async with DeadLetterReader(kafka, group=redrive_group(kafka)) as reader:
            async for letter in reader.letters(tenant_id):
                if dry_run:
                    done.append(letter)
                    continue
                await producer.send_and_wait(
                    letter.source_topic,
                    value=letter.value,
                    key=letter.key,
                    headers=letter.original_headers,
                )
                done.append(letter)
                if tenant_id is None:
                    await reader.commit(letter)
    finally:
        await producer.stop()
    return done


def _letter(record: Any) -> DeadLetter:
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
