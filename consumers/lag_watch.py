"""Watching a group: lag samples over time, judged by the status rules.

One :class:`LagWatcher` per group keeps the sample window that the status needs;
the ``lag`` command and the worker's ``/metrics`` both use it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from consumers.lag import GroupLag, LagMonitor
from consumers.lag_status import (
    LagStatus,
    PartitionSample,
    StatusRules,
    StatusWindow,
    evaluate_group,
)
from ingest.errors import KafkaUnavailableError

__all__ = ["LagReport", "LagWatcher"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LagReport:
    """A sample of a group's lag, with the statuses over the window so far."""

    lag: GroupLag
    statuses: dict[tuple[str, int], LagStatus]
    status: LagStatus
    samples: int
    """How many samples the window of the partitions holds (the most of any)."""
    error: str | None = None
    tenants_seen: frozenset[str] = field(default_factory=frozenset)
    """Every tenant that has had lag since watching began (to show them at zero)."""


class LagWatcher:
    """Samples one group's lag and keeps the window the status rules judge.

    Args:
        monitor: a started :class:`LagMonitor`.
        group: the consumer group.
        rules: window length and STOP threshold.
        topics: topics the group consumes, measured even before it commits or holds any
            of their partitions (the events topic, for the workers' group).
    """

    def __init__(
        self,
        monitor: LagMonitor,
        group: str,
        rules: StatusRules | None = None,
        topics: Iterable[str] = (),
    ) -> None:
        self._monitor = monitor
        self.group = group
        self.topics = tuple(topics)
        self._window = StatusWindow(rules or StatusRules())
        self._tenants: set[str] = set()

    async def sample(self) -> LagReport:
        """Takes one sample and judges the window; ERR with the reason if Kafka did not answer."""
        try:
            lag = await self._monitor.sample(self.group, self.topics)
        except KafkaUnavailableError as exc:
            empty = GroupLag(self.group, "Unknown", 0, time.time_ns() // 1_000_000, [])
            return LagReport(empty, {}, LagStatus.ERR, 0, str(exc), frozenset(self._tenants))
        now = time.monotonic()
        statuses: dict[tuple[str, int], LagStatus] = {}
        depth = 0
        for p in lag.partitions:
            owned = p.owner is not None
            sample = PartitionSample(now, p.committed, p.log_end, owned, p.log_start)
            self._window.add(p.topic, p.partition, sample)
            statuses[(p.topic, p.partition)] = self._window.status(p.topic, p.partition)
            depth = max(depth, len(self._window.samples(p.topic, p.partition)))
        self._tenants.update(t.tenant for t in lag.tenants)
        return LagReport(
            lag, statuses, evaluate_group(statuses.values()), depth, None, frozenset(self._tenants)
        )

    async def watch(
        self,
        interval_s: float,
        on_report: Callable[[LagReport], Awaitable[None] | None],
        stop: asyncio.Event,
    ) -> None:
        """Samples every ``interval_s`` seconds and hands each report over, until ``stop``."""
        while not stop.is_set():
            report = await self.sample()
            if report.error:
                logger.warning("lag of group %s: %s", self.group, report.error)
            result = on_report(report)
            if result is not None:
                await result
            try:
                await asyncio.wait_for(stop.wait(), interval_s)
            except TimeoutError:
                continue
