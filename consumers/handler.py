"""The batch handler: decode, write through the sink, then commit.

Offsets are committed only after the sink took the write. An event that can never
be written is logged with its reason and source and counted, and the rest of its
batch is written. A retriable failure rewinds the batch (nothing committed) and
backs off, capped and exponential, before the batch is read again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from consumers.batch import RecordRef, Rejection
from consumers.metrics import WorkerMetrics
from consumers.settings import ConsumerSettings
from consumers.sink.base import BaseSink
from consumers.stats import WorkerStats
from ingest import codec
from ingest.errors import IngestError, InvalidEventError
from ingest.events import Event
from ingest.settings import KeyStrategy

logger = logging.getLogger(__name__)


class AckableBatch(Protocol):
    """What the handler needs of FastStream's batch message."""

    raw_message: Any

    async def ack(self) -> None: ...
    async def nack(self) -> None: ...


class BatchHandler:
    """Writes each consumed batch through ``sink``.

    Args:
        sink: where events go.
        settings: retry backoff and key strategy.
        stats: counters to update.
        metrics: Prometheus metrics to update, if any.
    """

    def __init__(
        self,
        sink: BaseSink,
        settings: ConsumerSettings,
        stats: WorkerStats,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self._sink = sink
        self._settings = settings
        self._stats = stats
        self._metrics = metrics
        self._failures = 0

    async def __call__(self, message: AckableBatch) -> None:
        records: Sequence[Any] = message.raw_message
        if not isinstance(records, tuple | list):
            records = (records,)
        rejections: list[Rejection] = []
        added: list[Event] = []
        for record in records:
            source = RecordRef(record.topic, record.partition, record.offset)
            try:
                event = self._decode(record)
            except InvalidEventError as exc:
                rejections.append(Rejection(str(exc), None, source))
                continue
            self._sink.add(event, source)
            added.append(event)
        undecodable = len(rejections)
        started = time.perf_counter()
        try:
            rejections += await self._sink.flush()
        except IngestError as exc:
            if not exc.retriable:
                raise
            await self._retry_later(message, exc)
            return
        await message.ack()
        self._failures = 0
        self._record(len(records), rejections)
        if self._metrics is not None:
            elapsed = time.perf_counter() - started
            self._metrics.batch_written(added, undecodable, rejections, elapsed)

    def _decode(self, record: Any) -> Event:
        event = codec.decode(record.value)
        key = record.key.decode(errors="replace") if record.key else ""
        tenant = key.split("/", 1)[0] if self._settings.kafka.key_strategy is KeyStrategy.RUN else key
        if key and tenant != event.tenant_id:
            raise InvalidEventError(
                f"record key tenant {tenant!r} differs from the event's tenant_id"
                f" {event.tenant_id!r}; an event is written only to its key's tenant"
            )
        return event

    async def _retry_later(self, message: AckableBatch, exc: IngestError) -> None:
        self._failures += 1
        self._stats.retries += 1
        if self._metrics is not None:
            self._metrics.write_failed()
        delay = min(
            self._settings.retry_backoff_s * 2 ** (self._failures - 1),
            self._settings.retry_backoff_max_s,
        )
        logger.warning("write failed (try %d), retrying in %.1fs: %s", self._failures, delay, exc)
        await message.nack()
        await asyncio.sleep(delay)

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
