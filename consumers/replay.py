"""Replay: re-read a retained range of the events topic into MLflow, for backfills and rebuilds.

The replayer reads with a consumer of its own that joins no group and commits
nothing, so the live workers' offsets never move. It writes through the same sink
as the workers, so a replay is as idempotent as a redelivery: into the store the
workers fill it adds nothing, into an empty store it rebuilds the runs exactly.

The range is fixed when the replay starts: from a time (the first record at or
after it, per partition, from Kafka's time index) or an offset (the same offset on
every partition), up to a time or offset (exclusive), else up to the log end as it
was at the start. Records appended meanwhile are the live workers' business.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from aiokafka.structs import TopicPartition

from consumers.batch import RecordRef, Rejection
from consumers.records import decode_record
from consumers.sink.base import BaseSink
from ingest.errors import InvalidEventError
from ingest.events import (
    ArtifactLogged,
    Event,
    MetricsEvent,
    ParamsLogged,
    RunCreated,
    RunEnded,
    TagsSet,
)
from ingest.kafka import (
    KafkaRecord,
    OffsetRange,
    bounded,
    events_partitions,
    kafka_consumer,
    read_ranges,
    start,
    stop,
)
from ingest.settings import KafkaSettings
from ingest.topics import events_topic

__all__ = ["ReplayBound", "ReplayPlan", "ReplaySummary", "Replayer", "parse_bound"]

logger = logging.getLogger(__name__)

ReplayBound = datetime | int
"""Where a replay starts or stops: a point in time, or an offset on every partition."""

T = TypeVar("T")


def parse_bound(text: str) -> ReplayBound:
    """``"1200"`` is an offset; ``"2026-11-26T14:00:00Z"`` a time (UTC when no zone is given).

    Raises:
        InvalidEventError: neither a whole number nor an ISO 8601 time.
    """
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidEventError(
            f"{text!r} is neither an offset (a whole number) nor an ISO 8601 time"
            " such as 2026-11-26T14:00:00Z"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ReplayPlan:
    """Per partition, the offsets to read: ``[start, stop)``."""

    ranges: dict[TopicPartition, OffsetRange]

    @property
    def total(self) -> int:
        """Records in the range (before filtering by tenant or run)."""
        return sum(stop - start for start, stop in self.ranges.values())


@dataclass
class ReplaySummary:
    """What a replay read and wrote."""

    records: int = 0
    """Records read in the range."""
    matched: int = 0
    """Events that passed the tenant and run filters (written, or counted on a dry run)."""
    runs: set[tuple[str, str]] = field(default_factory=set)
    created: int = 0
    ended: int = 0
    points: int = 0
    params: int = 0
    tags: int = 0
    dead_letters: list[Rejection] = field(default_factory=list)
    seconds: float = 0.0


class Replayer:
    """Replays a range of the events topic through a sink.

    Args:
        settings: where Kafka and the events topic are.
        sink: where events go; None for a dry run (read, filter and count only).
        tenant: replay only this tenant's events.
        run: replay only this run's events.
        batch_size: events per sink flush.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        sink: BaseSink | None,
        tenant: str | None = None,
        run: str | None = None,
        batch_size: int = 1000,
    ) -> None:
        self._settings = settings
        self._sink = sink
        self._tenant = tenant
        self._run = run
        self._batch_size = batch_size
        self._consumer = kafka_consumer(settings, max_poll_records=batch_size)

    async def __aenter__(self) -> Replayer:
        await start(self._consumer, self._settings)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await stop(self._consumer, self._settings.request_timeout_s)

    async def plan(self, start: ReplayBound, stop: ReplayBound | None = None) -> ReplayPlan:
        """Resolves the bounds to offsets on every partition of the events topics (the
        shared one and every tenant's).

        Raises:
            KafkaUnavailableError: Kafka did not answer.
            InvalidEventError: the topic does not exist.
        """
        topic = events_topic(self._settings)
        partitions = await self._call(self._partitions(topic))
        first = await self._call(self._consumer.beginning_offsets(partitions))
        end = await self._call(self._consumer.end_offsets(partitions))
        low = await self._resolve(start, first, end)
        high = end if stop is None else await self._resolve(stop, first, end)
        ranges = {tp: (low[tp], max(low[tp], high[tp])) for tp in partitions}
        return ReplayPlan(ranges)

    async def replay(
        self, plan: ReplayPlan, progress: Callable[[int], None] | None = None
    ) -> ReplaySummary:
        """Reads the planned range and writes what matches; ``progress`` gets records read.

        Raises:
            KafkaUnavailableError: Kafka stopped answering.
            IngestError: the sink could not write (retriable ones may be retried by
                running the same replay again: it is idempotent).
        """
        summary = ReplaySummary()
        started = time.monotonic()
        pending = 0
        async for _, records in read_ranges(
            self._consumer, plan.ranges, self._settings, "reading the range to replay"
        ):
            summary.records += len(records)
            pending += sum(self._take(record, summary) for record in records)
            if pending >= self._batch_size:
                await self._flush(summary)
                pending = 0
            if progress is not None:
                progress(len(records))
        await self._flush(summary)
        summary.seconds = time.monotonic() - started
        return summary

    def _take(self, record: KafkaRecord, summary: ReplaySummary) -> int:
        """Decodes and filters one record, holds it for the sink; 1 if held."""
        source = RecordRef(record.topic, record.partition, record.offset)
        try:
            event = decode_record(record, self._settings)
        except InvalidEventError as exc:
            if self._tenant is None and self._run is None:
                summary.dead_letters.append(Rejection(str(exc), None, source))
            return 0
        if (self._tenant and event.tenant_id != self._tenant) or (
            self._run and event.run_id != self._run
        ):
            return 0
        _count(event, summary)
        if self._sink is not None:
            self._sink.add(event, source)
        return 1

    async def _flush(self, summary: ReplaySummary) -> None:
        if self._sink is not None:
            summary.dead_letters.extend(await self._sink.flush())

    async def _partitions(self, topic: str) -> list[TopicPartition]:
        found = await events_partitions(self._settings)
        if not found:
            raise InvalidEventError(
                f"topic {topic!r} does not exist at {self._settings.bootstrap_servers}"
            )
        return found

    async def _resolve(
        self, bound: ReplayBound, first: dict[TopicPartition, int], end: dict[TopicPartition, int]
    ) -> dict[TopicPartition, int]:
        if isinstance(bound, int):
            return {tp: min(max(bound, first[tp]), end[tp]) for tp in first}
        millis = int(bound.timestamp() * 1000)
        found = await self._call(self._consumer.offsets_for_times(dict.fromkeys(first, millis)))
        # No record at or after the time: the range starts (or stops) at the log end.
        return {tp: end[tp] if found.get(tp) is None else found[tp].offset for tp in first}

    async def _call(self, awaitable: Awaitable[T]) -> T:
        return await bounded(
            awaitable, self._settings, "planning the replay", self._settings.request_timeout_s * 3
        )


def _count(event: Event, summary: ReplaySummary) -> None:
    summary.matched += 1
    summary.runs.add((event.tenant_id, event.run_id))
    if isinstance(event, MetricsEvent):
        summary.points += event.point_count
    elif isinstance(event, ParamsLogged):
        summary.params += len(event.params)
    elif isinstance(event, TagsSet):
        summary.tags += len(event.tags)
    elif isinstance(event, RunCreated):
        summary.created += 1
        summary.tags += len(event.tags)
    elif isinstance(event, RunEnded):
        summary.ended += 1
    elif isinstance(event, ArtifactLogged):
        summary.tags += 1  # its claim check becomes a tag of the run
