"""Consumer lag: how far a group is behind, in records and in seconds, per partition and tenant.

Where the group has committed, the offsets are the ones ``kafka-consumer-groups
--describe`` shows: the committed offset (OffsetFetch) against the log-end offset
(ListOffsets, latest), and the lag is their difference.

Where it has committed nothing, Kafka's tool prints no lag ("-"); here the lag
counts from the log start (ListOffsets, earliest), because that is where the
group's first read begins: every group of this project consumes with
``auto_offset_reset="earliest"``. Otherwise a group that has not committed yet (a
worker busy with its first batch, or no worker at all) would look caught up while
every record of the partition waits. Every partition of the group's topics is
counted, also those it neither holds nor has committed to: the topics are the ones
it has committed to or holds, and those the caller names (the events topic, for the
workers' group), so a group that never committed anything is still measured.

Lag in seconds is the age of the oldest unconsumed record: now minus the timestamp
of the record where the group's next read begins (kminion's and Burrow's "how old
is what is waiting", read exactly rather than interpolated as kafka-lag-exporter
does).

With the record key = tenant, one partition carries several tenants; the roll-up
per tenant reads the unconsumed records' keys, at most ``scan_cap`` records per
partition. Past the cap, the tenant figures cover only what was read, and the
sample says so (``tenants_capped``).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from aiokafka.structs import TopicPartition

from ingest.kafka import (
    OffsetRange,
    bounded,
    existing_partitions,
    kafka_admin,
    kafka_consumer,
    read_ranges,
    start,
    stop,
)
from ingest.kafka.compat import group_owners
from ingest.settings import KafkaSettings
from ingest.topics import tenant_of_key, tenant_of_topic

__all__ = ["GroupLag", "LagMonitor", "PartitionLag", "TenantLag"]

T = TypeVar("T")

NO_KEY = "(no key)"
"""The tenant figures' name for records without a key."""


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """A group's position in one partition."""

    topic: str
    partition: int
    committed: int | None
    """The group's committed offset; None when it has committed none here."""
    log_end: int
    owner: str | None
    """The member id holding the partition, None when no live member does."""
    oldest_timestamp_ms: int | None = None
    """Timestamp of the oldest unconsumed record; None when nothing waits."""
    log_start: int = 0
    """The first offset the partition still holds (moves up as retention deletes)."""

    @property
    def position(self) -> int:
        """Where the group's next read begins: the committed offset, or without one the
        log start (``auto_offset_reset="earliest"``)."""
        return self.log_start if self.committed is None else self.committed

    @property
    def from_log_start(self) -> bool:
        """True when the lag is counted from the log start: the group committed nothing."""
        return self.committed is None

    @property
    def lag(self) -> int:
        """Records not yet consumed: from the committed offset, or from the log start."""
        return max(self.log_end - self.position, 0)

    def lag_seconds(self, now_ms: int) -> float:
        """Age of the oldest unconsumed record, in seconds; 0 when nothing waits."""
        if not self.lag or self.oldest_timestamp_ms is None:
            return 0.0
        return max(now_ms - self.oldest_timestamp_ms, 0) / 1000


@dataclass(frozen=True, slots=True)
class TenantLag:
    """One tenant's unconsumed records, over every partition its records are on."""

    tenant: str
    lag: int
    oldest_timestamp_ms: int

    def lag_seconds(self, now_ms: int) -> float:
        """Age of the tenant's oldest unconsumed record, in seconds."""
        return max(now_ms - self.oldest_timestamp_ms, 0) / 1000


@dataclass(frozen=True)
class GroupLag:
    """One sample of a group's lag."""

    group: str
    state: str
    members: int
    sampled_at_ms: int
    partitions: list[PartitionLag]
    tenants: list[TenantLag] = field(default_factory=list)
    tenants_capped: bool = False
    """True when some partition had more unconsumed records than were scanned."""

    @property
    def total_lag(self) -> int:
        """Unconsumed records over every partition, committed to or not."""
        return sum(p.lag for p in self.partitions)

    @property
    def uncommitted(self) -> int:
        """Partitions on which the group has committed nothing (counted from the log start)."""
        return sum(p.from_log_start for p in self.partitions)

    @property
    def max_lag_seconds(self) -> float:
        """The age of the oldest unconsumed record of the group."""
        return max((p.lag_seconds(self.sampled_at_ms) for p in self.partitions), default=0.0)


class LagMonitor:
    """Samples the lag of consumer groups; one admin client and one group-less reader.

    The reader never joins a group nor commits: sampling never moves a group's offsets.

    Args:
        settings: where Kafka is; ``request_timeout_s`` bounds each call.
        scan_cap: most unconsumed records read per partition for the tenant roll-up.
    """

    def __init__(self, settings: KafkaSettings, scan_cap: int = 10_000) -> None:
        self._settings = settings
        self._scan_cap = scan_cap
        self._admin = kafka_admin(settings)
        self._reader = kafka_consumer(settings)

    async def start(self) -> None:
        """Connects.

        Raises:
            KafkaUnavailableError: Kafka did not answer within the request timeout.
        """
        try:
            await start(self._admin, self._settings)
            await start(self._reader, self._settings)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Disconnects."""
        await stop(self._reader, self._settings.request_timeout_s)
        await stop(self._admin, self._settings.request_timeout_s)

    async def __aenter__(self) -> LagMonitor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def sample(self, group: str, topics: Iterable[str] = ()) -> GroupLag:
        """The lag of ``group`` now, on every partition of its topics.

        Args:
            group: the consumer group.
            topics: topics the group consumes, counted even where it has committed
                nothing and holds nothing (the events topic, for the workers' group:
                with every tenant topic).
                Topics it has committed to or holds are always counted.

        Raises:
            KafkaUnavailableError: Kafka did not answer within the request timeout.
        """
        # One bound for the whole sample, not only for each of its calls: while a dead
        # broker is still in the cluster's metadata each call can take the whole request
        # timeout, and an operator asking for the lag must get an answer (ERR, with the
        # reason) in about that time, not after every call timed out in turn.
        return await self._call(self._sample(group, topics), group)

    async def _sample(self, group: str, topics: Iterable[str]) -> GroupLag:
        offsets = await self._call(self._admin.list_consumer_group_offsets(group), group)
        committed = {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
        state, owners = group_owners(
            await self._call(self._admin.describe_consumer_groups([group]), group)
        )
        known = {tp.topic for tp in (*committed, *owners)}
        every = await existing_partitions(self._admin, self._settings, known | set(topics))
        tps = sorted(set(committed) | set(owners) | every)
        starts: dict[TopicPartition, int] = (
            await self._call(self._reader.beginning_offsets(tps), group) if tps else {}
        )
        ends: dict[TopicPartition, int] = (
            await self._call(self._reader.end_offsets(tps), group) if tps else {}
        )
        now_ms = time.time_ns() // 1_000_000
        # Where the group's next read begins: its commit, else the log start (earliest).
        positions = {tp: committed.get(tp, starts[tp]) for tp in tps}
        waiting = {tp: (positions[tp], ends[tp]) for tp in tps if ends[tp] > positions[tp]}
        oldest, tenants, capped = await self._scan(waiting) if waiting else ({}, [], False)
        partitions = [
            PartitionLag(
                tp.topic,
                tp.partition,
                committed.get(tp),
                ends[tp],
                owners.get(tp),
                oldest.get(tp),
                starts[tp],
            )
            for tp in tps
        ]
        members = len(set(owners.values()))
        return GroupLag(group, state, members, now_ms, partitions, tenants, capped)

    async def _scan(
        self, waiting: dict[TopicPartition, OffsetRange]
    ) -> tuple[dict[TopicPartition, int], list[TenantLag], bool]:
        """Reads the unconsumed records (up to the cap per partition): the oldest
        timestamp per partition, and per tenant the count and oldest timestamp."""
        stops = {
            tp: (start, min(end, start + self._scan_cap)) for tp, (start, end) in waiting.items()
        }
        oldest: dict[TopicPartition, int] = {}
        last: dict[TopicPartition, int] = {}
        counts: dict[str, int] = defaultdict(int)
        tenant_oldest: dict[str, int] = {}
        ranges = read_ranges(
            self._reader,
            stops,
            self._settings,
            "reading unconsumed records",
            self._settings.request_timeout_s,
        )
        async for tp, records in ranges:
            oldest.setdefault(tp, records[0].timestamp)
            last[tp] = records[-1].offset
            for record in records:
                # A tenant topic says whose its records are; the shared one, the key.
                tenant = tenant_of_topic(self._settings, tp.topic) or tenant_of_key(record.key)
                tenant = tenant or NO_KEY
                counts[tenant] += 1
                tenant_oldest[tenant] = min(
                    tenant_oldest.get(tenant, record.timestamp), record.timestamp
                )
        self._reader.unsubscribe()  # no fetching in the background between samples
        unread = any(last.get(tp, start - 1) < stop - 1 for tp, (start, stop) in stops.items())
        capped = any(stops[tp][1] < end for tp, (_, end) in waiting.items())
        tenants = [TenantLag(t, counts[t], tenant_oldest[t]) for t in sorted(counts)]
        return oldest, tenants, capped or unread

    async def _call(self, awaitable: Awaitable[T], group: str) -> T:
        return await bounded(awaitable, self._settings, f"reading the lag of {group!r}")
