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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocol
from aiokafka.structs import TopicPartition

from ingest.settings import KafkaSettings
from ingest.topics import bounded

__all__ = ["GroupLag", "LagMonitor", "PartitionLag", "TenantLag"]

_SCAN_POLL_MS = 500


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
        timeout_ms = int(settings.request_timeout_s * 1000)
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=timeout_ms
        )
        self._reader = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=timeout_ms,
        )

    async def start(self) -> None:
        """Connects.

        Raises:
            KafkaUnavailableError: Kafka did not answer within the request timeout.
        """
        await self._call(self._admin.start(), "connect")
        await self._call(self._reader.start(), "connect")

    async def close(self) -> None:
        """Disconnects."""
        await self._reader.stop()
        await self._admin.close()

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
                nothing and holds nothing (the events topic, for the workers' group).
                Topics it has committed to or holds are always counted.

        Raises:
            KafkaUnavailableError: Kafka did not answer within the request timeout.
        """
        offsets = await self._call(self._admin.list_consumer_group_offsets(group), group)
        committed = {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
        state, owners = await self._members(group)
        known = {tp.topic for tp in (*committed, *owners)}
        tps = sorted(
            set(committed) | set(owners) | await self._partitions(known | set(topics), group)
        )
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

    async def _partitions(self, topics: set[str], group: str) -> set[TopicPartition]:
        """Every partition of ``topics`` that exists; a missing topic has none."""
        if not topics:
            return set()
        # All topics' metadata, not the named ones': a metadata request that names a
        # topic asks the broker to create it, and looking must never create anything.
        described = await self._call(self._admin.describe_topics(), group)
        return {
            TopicPartition(t["topic"], p["partition"])
            for t in described
            if t["topic"] in topics and not t["error_code"]
            for p in t["partitions"]
        }

    async def _members(self, group: str) -> tuple[str, dict[TopicPartition, str]]:
        """The group's state and, per partition, the member holding it."""
        responses = await self._call(self._admin.describe_consumer_groups([group]), group)
        owners: dict[TopicPartition, str] = {}
        state = "Unknown"
        for response in responses:
            for described in response.groups:
                error_code, _, state = described[0], described[1], described[2]
                if error_code:
                    continue
                for member in described[5]:
                    member_id, assignment = member[0], member[4]
                    if not assignment:
                        continue
                    for tp in ConsumerProtocol.ASSIGNMENT.decode(assignment).partitions():
                        owners[tp] = member_id
        return state, owners

    async def _scan(
        self, waiting: dict[TopicPartition, tuple[int, int]]
    ) -> tuple[dict[TopicPartition, int], list[TenantLag], bool]:
        """Reads the unconsumed records (up to the cap per partition): the oldest
        timestamp per partition, and per tenant the count and oldest timestamp."""
        stops = {tp: min(end, start + self._scan_cap) for tp, (start, end) in waiting.items()}
        capped = any(stops[tp] < end for tp, (_, end) in waiting.items())
        reader = self._reader
        reader.assign(list(waiting))
        for tp, (start, _) in waiting.items():
            reader.seek(tp, start)
        oldest: dict[TopicPartition, int] = {}
        counts: dict[str, int] = defaultdict(int)
        tenant_oldest: dict[str, int] = {}
        remaining = set(waiting)
        deadline = time.monotonic() + self._settings.request_timeout_s
        while remaining and time.monotonic() < deadline:
            batches = await reader.getmany(*remaining, timeout_ms=_SCAN_POLL_MS)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= stops[tp]:
                        remaining.discard(tp)
                        break
                    oldest.setdefault(tp, record.timestamp)
                    tenant = _tenant(record.key)
                    counts[tenant] += 1
                    tenant_oldest[tenant] = min(
                        tenant_oldest.get(tenant, record.timestamp), record.timestamp
                    )
                if records and records[-1].offset >= stops[tp] - 1:
                    remaining.discard(tp)
        reader.unsubscribe()  # no fetching in the background between samples
        tenants = [TenantLag(t, counts[t], tenant_oldest[t]) for t in sorted(counts)]
        return oldest, tenants, capped or bool(remaining)

    async def _call(self, awaitable: Any, what: str) -> Any:
        return await bounded(awaitable, self._settings, what=f"reading the lag of {what!r}")


def _tenant(key: bytes | None) -> str:
    """The tenant of a record key: ``tenant`` or ``tenant/run``."""
    if not key:
        return "(no key)"
    return key.decode(errors="replace").split("/", 1)[0]
