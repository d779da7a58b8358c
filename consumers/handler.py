"""The batch handler: decode, write through the sink, dead-letter the poison, commit.

A fetched batch is written in chunks of at most ``max_batch_bytes``, each one write
and one commit, so that a kill or a rebalance redoes under a second of work, never
the backlog. Offsets are committed only after the sink took the chunk and every dead
letter was acknowledged. A record that can never be written (not an event, a key
tenant that differs from its envelope, too large, refused by MLflow) goes to the
dead-letter topic with its reason; the rest is written. A retriable failure (store
down, dead-letter topic unreachable) rewinds each partition to its first unwritten
record and pauses it for a capped exponential backoff: the consumer keeps polling,
so it stays in its group however long the outage lasts, and other partitions go on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import TopicPartition

from consumers.batch import RecordRef, Rejection
from consumers.dead_letters import DeadLetterQueue
from consumers.records import decode_record
from consumers.settings import ConsumerSettings
from consumers.sink.base import BaseSink
from consumers.telemetry import WorkerTelemetry
from ingest.errors import IngestError, InvalidEventError
from ingest.events import Event
from ingest.kafka.records import BatchConsumer, KafkaRecord
from ingest.topics import tenant_of_key

logger = logging.getLogger(__name__)


class ConsumedBatch(Protocol):
    """What the handler needs of FastStream's batch message: the records and the
    aiokafka consumer that read them (to commit, seek and pause)."""

    @property
    def raw_message(self) -> Sequence[KafkaRecord] | KafkaRecord: ...
    @property
    def consumer(self) -> BatchConsumer: ...


@dataclass
class _Chunk:
    """Records decoded and waiting to be written together."""

    records: list[KafkaRecord]
    by_source: dict[RecordRef, KafkaRecord]
    events: list[tuple[Event, RecordRef]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    decode_cpu_s: float = 0.0


class BatchHandler:
    """Writes each consumed batch through ``sink``.

    Args:
        sink: where events go.
        settings: limits, retry backoff and key strategy.
        telemetry: what to count; a new one when None.
        dead_letters: where poison records go; None logs and counts them only.
    """

    def __init__(
        self,
        sink: BaseSink,
        settings: ConsumerSettings,
        telemetry: WorkerTelemetry | None = None,
        dead_letters: DeadLetterQueue | None = None,
    ) -> None:
        self._sink = sink
        self._settings = settings
        self.telemetry = telemetry or WorkerTelemetry()
        self._dead_letters = dead_letters
        self._failures: dict[TopicPartition, int] = {}

    @property
    def failed_tries(self) -> Mapping[TopicPartition, int]:
        """Per partition, the writes that failed in a row (read-only; cleared by a commit)."""
        return MappingProxyType(self._failures)

    async def __call__(self, message: ConsumedBatch) -> None:
        raw = message.raw_message
        records: Sequence[KafkaRecord] = raw if isinstance(raw, tuple | list) else (raw,)
        consumer = message.consumer
        # The previous chunk's write and commit, which the next chunk's decoding overlaps:
        # the store works (in a thread, or in its own server) while this thread decodes.
        writing: asyncio.Task[bool] | None = None
        chunks = list(_chunks(records, self._settings.max_batch_bytes))
        for start, stop in chunks:
            # A rebalance may have taken partitions away since the fetch: their new owner
            # reads them from the last commit, so they are not written here twice.
            assigned = consumer.assignment()
            chunk = [r for r in records[start:stop] if _partition(r) in assigned]
            if not chunk:
                continue
            decoded = self._decode(chunk)
            if writing is not None and not await writing:
                return
            rest = [r for r in records[start:] if _partition(r) in assigned]
            last = stop == chunks[-1][1]
            writing = asyncio.create_task(self._write_and_commit(consumer, decoded, rest, last))
            await asyncio.sleep(0)  # let the write reach its thread before decoding on
        if writing is not None:
            await writing

    def _decode(self, records: list[KafkaRecord]) -> _Chunk:
        chunk = _Chunk(records, {RecordRef(r.topic, r.partition, r.offset): r for r in records})
        began = time.thread_time()
        for source, record in chunk.by_source.items():
            try:
                event = decode_record(record, self._settings.kafka, self._settings.max_record_bytes)
            except InvalidEventError as exc:
                chunk.rejections.append(Rejection(str(exc), None, source))
                continue
            chunk.events.append((event, source))
        chunk.decode_cpu_s = time.thread_time() - began
        return chunk

    async def _write_and_commit(
        self, consumer: BatchConsumer, chunk: _Chunk, rest: list[KafkaRecord], last: bool
    ) -> bool:
        """Writes a decoded chunk, dead-letters its poison and commits it; False when the
        batch must stop there (a retriable failure rewound ``rest``, or a rebalance took
        the partitions away). The batch's last chunk commits the consumer's position on
        every partition it holds, so that one with nothing to read has a commit too.

        Raises:
            IngestError: a failure that is not retriable.
        """
        try:
            await self._write(chunk)
        except IngestError as exc:
            if not exc.retriable:
                raise
            self._retry_later(consumer, rest, exc)
            return False
        if not await _commit(consumer, None if last else chunk.records):
            return False
        for partition in _partitions(chunk.records):
            self._failures.pop(partition, None)
        return True

    async def _write(self, chunk: _Chunk) -> None:
        for event, source in chunk.events:
            self._sink.add(event, source)
        undecodable = len(chunk.rejections)
        started = time.perf_counter()
        rejections = chunk.rejections + await self._sink.flush()
        await self._dead_letter(rejections, chunk.by_source)
        elapsed = time.perf_counter() - started
        added = [event for event, _ in chunk.events]
        self.telemetry.batch_written(added, undecodable, rejections, chunk.decode_cpu_s, elapsed)
        _log_rejections(rejections)

    async def _dead_letter(
        self, rejections: list[Rejection], by_source: dict[RecordRef, KafkaRecord]
    ) -> None:
        if self._dead_letters is None:
            return
        reasons: dict[RecordRef, list[str]] = {}
        tenants: dict[RecordRef, str | None] = {}
        for rejection in rejections:
            if rejection.source is None or rejection.source not in by_source:
                continue
            reasons.setdefault(rejection.source, []).append(rejection.reason)
            tenants[rejection.source] = (
                rejection.event.tenant_id
                if rejection.event is not None
                else tenant_of_key(by_source[rejection.source].key)
            )
        for source, why in reasons.items():
            await self._dead_letters.send(by_source[source], "; ".join(why), tenants[source])

    def _retry_later(
        self, consumer: BatchConsumer, records: Sequence[KafkaRecord], exc: IngestError
    ) -> None:
        """Rewinds each partition to its first unwritten record and pauses it for a
        backoff that doubles per failed try, up to the maximum."""
        first: dict[TopicPartition, int] = {}
        for record in records:
            first.setdefault(_partition(record), record.offset)
        partitions = set(first)
        tries = max((self._failures.get(p, 0) for p in partitions), default=0) + 1
        for partition in partitions:
            self._failures[partition] = tries
        self.telemetry.write_failed()
        delay = min(
            self._settings.retry_backoff_s * 2 ** (tries - 1), self._settings.retry_backoff_max_s
        )
        logger.warning(
            "write failed (try %d), %s paused for %.1fs: %s",
            tries,
            ", ".join(f"{p.topic}[{p.partition}]" for p in sorted(partitions)),
            delay,
            exc,
        )
        for partition, offset in first.items():
            consumer.seek(partition, offset)
        consumer.pause(*partitions)
        asyncio.get_running_loop().call_later(delay, _resume, consumer, partitions)


def _log_rejections(rejections: Iterable[Rejection]) -> None:
    for rejection in rejections:
        event, where = rejection.event, rejection.source
        logger.error(
            "rejected %s event%s%s: %s",
            "undecodable" if event is None else event.kind,
            f" of run {event.run_id} (tenant {event.tenant_id})" if event is not None else "",
            f" at {where.topic}[{where.partition}]@{where.offset}" if where else "",
            rejection.reason,
        )


def _partition(record: KafkaRecord) -> TopicPartition:
    return TopicPartition(record.topic, record.partition)


def _partitions(records: Iterable[KafkaRecord]) -> set[TopicPartition]:
    return {_partition(r) for r in records}


def _chunks(records: Sequence[KafkaRecord], max_bytes: int) -> Iterator[tuple[int, int]]:
    """Consecutive ``[start, stop)`` slices of ``records`` of at most ``max_bytes`` of
    values each (at least one record), so that a commit follows every few seconds of
    work whatever a record carries."""
    start, size = 0, 0
    for index, record in enumerate(records):
        value = len(record.value or b"")
        if index > start and size + value > max_bytes:
            yield start, index
            start, size = index, 0
        size += value
    if start < len(records):
        yield start, len(records)


async def _commit(consumer: BatchConsumer, records: Iterable[KafkaRecord] | None) -> bool:
    """Commits the offsets after ``records``, per partition, or with None every position
    the consumer holds (all it fetched has been written); False when a rebalance took
    the partitions away meanwhile (their new owner rewrites from the last commit, which
    the idempotent writes make harmless), so the rest of the batch is left to it."""
    offsets: dict[TopicPartition, int] | None = None
    if records is not None:
        offsets = {}
        for record in records:
            partition = _partition(record)
            offsets[partition] = max(offsets.get(partition, 0), record.offset + 1)
    try:
        await consumer.commit(offsets)
    except (CommitFailedError, IllegalStateError) as exc:
        logger.info("partitions were reassigned during a write, leaving them: %s", exc)
        return False
    return True


def _resume(consumer: BatchConsumer, partitions: set[TopicPartition]) -> None:
    # A rebalance may have taken some away meanwhile; resume only what is still ours.
    assigned = consumer.assignment()
    consumer.resume(*(p for p in partitions if p in assigned))
