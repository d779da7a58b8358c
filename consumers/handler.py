"""The batch handler: decode, write through the sink, dead-letter the poison, commit.

Offsets are committed only after the sink took the write and every dead letter was
acknowledged. A record that can never be written (not an event, a key tenant that
differs from its envelope, too large, refused by MLflow) goes to the dead-letter
topic with its reason; the rest of its batch is written. A retriable failure
(store down, dead-letter topic unreachable) rewinds the batch and pauses its
partitions for a capped exponential backoff: the consumer keeps polling, so it
stays in its group however long the outage lasts, and other partitions go on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from aiokafka.structs import TopicPartition

from consumers.batch import RecordRef, Rejection
from consumers.dead_letters import DeadLetterQueue
from consumers.metrics import WorkerMetrics
from consumers.records import decode_record
from consumers.settings import ConsumerSettings
from consumers.sink.base import BaseSink
from consumers.stats import WorkerStats
from ingest.errors import IngestError, InvalidEventError
from ingest.events import Event

logger = logging.getLogger(__name__)


class AckableBatch(Protocol):
    """What the handler needs of FastStream's batch message."""

    raw_message: Any
    consumer: Any

    async def ack(self) -> None: ...
    async def nack(self) -> None: ...


class BatchHandler:
    """Writes each consumed batch through ``sink``.

    Args:
        sink: where events go.
        settings: limits, retry backoff and key strategy.
        stats: counters to update.
        dead_letters: where poison records go; None logs and counts them only.
        metrics: Prometheus metrics to update, if any.
    """

    def __init__(
        self,
        sink: BaseSink,
        settings: ConsumerSettings,
        stats: WorkerStats,
        dead_letters: DeadLetterQueue | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self._sink = sink
        self._settings = settings
        self._stats = stats
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._failures: dict[TopicPartition, int] = {}

    async def __call__(self, message: AckableBatch) -> None:
        records: Sequence[Any] = message.raw_message
        if not isinstance(records, tuple | list):
            records = (records,)
        by_source = {RecordRef(r.topic, r.partition, r.offset): r for r in records}
        rejections: list[Rejection] = []
        added: list[Event] = []
        for source, record in by_source.items():
            try:
                event = decode_record(
                    record, self._settings.kafka.key_strategy, self._settings.max_record_bytes
                )
            except InvalidEventError as exc:
                rejections.append(Rejection(str(exc), None, source))
                continue
            self._sink.add(event, source)
            added.append(event)
        undecodable = len(rejections)
        started = time.perf_counter()
        try:
            rejections += await self._sink.flush()
            await self._dead_letter(rejections, by_source)
        except IngestError as exc:
            if not exc.retriable:
                raise
            await self._retry_later(message, records, exc)
            return
        await message.ack()
        for partition in _partitions(records):
            self._failures.pop(partition, None)
        self._record(len(records), rejections)
        if self._metrics is not None:
            elapsed = time.perf_counter() - started
            self._metrics.batch_written(added, undecodable, rejections, elapsed)

    async def _dead_letter(
        self, rejections: list[Rejection], by_source: dict[RecordRef, Any]
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
                else _key_tenant(by_source[rejection.source])
            )
        for source, why in reasons.items():
            await self._dead_letters.send(by_source[source], "; ".join(why), tenants[source])

    async def _retry_later(
        self, message: AckableBatch, records: Sequence[Any], exc: IngestError
    ) -> None:
        partitions = _partitions(records)
        tries = max((self._failures.get(p, 0) for p in partitions), default=0) + 1
        for partition in partitions:
            self._failures[partition] = tries
        self._stats.retries += 1
        if self._metrics is not None:
            self._metrics.write_failed()
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
        await message.nack()  # rewinds each partition to the batch's first record
        consumer = message.consumer
        consumer.pause(*partitions)
        asyncio.get_running_loop().call_later(delay, _resume, consumer, partitions)

    def _record(self, consumed: int, rejections: list[Rejection]) -> None:
        stats = self._stats
        stats.batches += 1
        stats.consumed += consumed
        stats.rejected += len(rejections)
        for rejection in rejections:
            kind = getattr(rejection.event, "kind", "undecodable")
            stats.rejected_by_kind[str(kind)] += 1
            where = rejection.source
            logger.error(
                "rejected %s event%s%s: %s",
                kind,
                f" of run {rejection.event.run_id} (tenant {rejection.event.tenant_id})"
                if rejection.event is not None
                else "",
                f" at {where.topic}[{where.partition}]@{where.offset}" if where else "",
                rejection.reason,
            )


def _partitions(records: Iterable[Any]) -> set[TopicPartition]:
    return {TopicPartition(r.topic, r.partition) for r in records}


def _key_tenant(record: Any) -> str | None:
    return record.key.decode(errors="replace").split("/", 1)[0] if record.key else None


def _resume(consumer: Any, partitions: set[TopicPartition]) -> None:
    # A rebalance may have taken some away meanwhile; resume only what is still ours.
    assigned = consumer.assignment()
    consumer.resume(*(p for p in partitions if p in assigned))
