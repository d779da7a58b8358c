"""What the project reads of a consumed Kafka record, and of the consumer that read it.

aiokafka's ``ConsumerRecord`` and ``AIOKafkaConsumer`` satisfy these protocols; unit
tests pass small fakes. Code past the Kafka boundary is typed against them, not ``Any``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from aiokafka.structs import TopicPartition

__all__ = ["BatchConsumer", "ConsumedRecord", "KafkaRecord"]


class KafkaRecord(Protocol):
    """A record as it was read: where it sits, and its key, value and headers."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


class ConsumedRecord(KafkaRecord, Protocol):
    """A record with the timestamp Kafka keeps for it (milliseconds since the epoch)."""

    @property
    def timestamp(self) -> int: ...


class BatchConsumer(Protocol):
    """What the batch handler does with the consumer that read a batch."""

    def assignment(self) -> set[TopicPartition]: ...
    def seek(self, partition: TopicPartition, offset: int) -> None: ...
    def pause(self, *partitions: TopicPartition) -> None: ...
    def resume(self, *partitions: TopicPartition) -> None: ...
    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None: ...
