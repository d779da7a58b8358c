"""Lag against a real broker: figures equal Kafka's own tool, tenants roll up, and the
status moves OK -> STOP -> OK as a worker stops and a new one catches up."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from consumers import ConsumerSettings, WorkerStats
from consumers.lag import LagMonitor
from consumers.lag_status import LagStatus, StatusRules
from consumers.lag_watch import LagWatcher
from ingest.settings import KafkaSettings
from tests.integration.ops import committed, describe_group, publish, run_events
from tests.integration.support import WorkerThread

pytestmark = pytest.mark.integration


async def caught_up(settings: KafkaSettings, worker: WorkerThread, count: int) -> None:
    """Waits until the worker consumed ``count`` records and committed them."""
    deadline = time.monotonic() + 60
    while worker.stats.consumed < count:
        assert time.monotonic() < deadline, f"worker consumed {worker.stats.consumed} of {count}"
        await asyncio.sleep(0.1)


async def test_lag_equals_kafka_consumer_groups_on_a_stopped_consumer(
    consumer_settings: ConsumerSettings,
) -> None:
    """After the worker stops, 2 tenants publish 6 and 4 more events: the committed,
    log-end and lag figures are exactly kafka-consumer-groups', the tenant roll-up counts
    each tenant's unconsumed events, and lag in seconds is the oldest one's age."""
    kafka = consumer_settings.kafka
    first = run_events("acme-corp", 3) + run_events("globex", 2)
    await publish(kafka, first)
    worker = WorkerThread(consumer_settings, WorkerStats())
    worker.start()
    try:
        await caught_up(kafka, worker, len(first))
    finally:
        worker.stop()
    published_at = time.time_ns() // 1_000_000
    acme, globex = run_events("acme-corp", 2), run_events("globex", 0)[:4]
    await publish(kafka, acme + globex)
    before = await committed(kafka, kafka.consumer_group)

    async with LagMonitor(kafka) as monitor:
        lag = await monitor.sample(kafka.consumer_group)
    sampled_at = time.time_ns() // 1_000_000
    tool = describe_group(kafka, kafka.consumer_group)

    ours = {
        (p.topic, p.partition): (str(p.committed), str(p.log_end), str(p.lag))
        for p in lag.partitions
    }
    assert ours == tool
    assert lag.total_lag == len(acme) + len(globex) == 10
    assert lag.members == 0
    assert all(p.owner is None for p in lag.partitions)
    assert {t.tenant: t.lag for t in lag.tenants} == {"acme-corp": len(acme), "globex": len(globex)}
    assert not lag.tenants_capped
    waiting = [p for p in lag.partitions if p.lag]
    assert 1 <= len(waiting) <= 2  # the two tenants may share a partition
    for p in waiting:
        assert p.oldest_timestamp_ms is not None
        assert published_at <= p.oldest_timestamp_ms <= lag.sampled_at_ms
        assert 0 < p.lag_seconds(lag.sampled_at_ms) <= (sampled_at - published_at) / 1000
    assert await committed(kafka, kafka.consumer_group) == before  # looking moved nothing


async def test_the_tenant_roll_up_says_when_it_was_capped(
    consumer_settings: ConsumerSettings,
) -> None:
    """With more unconsumed records than the scan cap, tenant counts cover the cap and the
    sample says it was capped; the partition lag is still exact."""
    kafka = consumer_settings.kafka
    first = run_events("acme-corp", 0)[:1]
    await publish(kafka, first)
    worker = WorkerThread(consumer_settings, WorkerStats())
    worker.start()
    try:
        await caught_up(kafka, worker, 1)
    finally:
        worker.stop()
    await publish(kafka, run_events("acme-corp", 8))
    async with LagMonitor(kafka, scan_cap=5) as monitor:
        lag = await monitor.sample(kafka.consumer_group)
    assert lag.total_lag == 3 + 8 + 1
    assert lag.tenants_capped
    assert [(t.tenant, t.lag) for t in lag.tenants] == [("acme-corp", 5)]


async def test_status_moves_ok_to_stop_and_back_to_ok(consumer_settings: ConsumerSettings) -> None:
    """A running, caught-up worker is OK; once it stops with events waiting, its partition
    is STOP and the group ERR; a new worker catches up and both are OK again."""
    kafka = consumer_settings.kafka
    rules = StatusRules(window=3, stop_after_s=0.5)
    events = run_events("acme-corp", 2)
    await publish(kafka, events)
    worker = WorkerThread(consumer_settings, WorkerStats())
    worker.start()
    async with LagMonitor(kafka) as monitor:
        watcher = LagWatcher(monitor, kafka.consumer_group, rules)
        try:
            await caught_up(kafka, worker, len(events))
            report = await watcher.sample()
            assert report.status is LagStatus.OK
            assert report.lag.members == 1
        finally:
            worker.stop()

        more = run_events("acme-corp", 3)
        await publish(kafka, more)
        for _ in range(4):
            await asyncio.sleep(0.4)
            report = await watcher.sample()
        statuses = Counter(report.statuses.values())
        assert statuses[LagStatus.STOP] == 1, report.statuses
        assert report.status is LagStatus.ERR
        assert report.lag.total_lag == len(more)

        again = WorkerThread(consumer_settings, WorkerStats())
        again.start()
        try:
            await caught_up(kafka, again, len(more))
            report = await watcher.sample()
            assert report.lag.total_lag == 0
            assert set(report.statuses.values()) == {LagStatus.OK}
            assert report.status is LagStatus.OK
        finally:
            again.stop()


async def test_an_unreachable_broker_is_err_with_the_reason() -> None:
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:1", request_timeout_s=1)
    monitor = LagMonitor(kafka)
    watcher = LagWatcher(monitor, "nobody")
    report = await watcher.sample()
    assert report.status is LagStatus.ERR
    assert report.error is not None
    assert "is the broker running" in report.error
    await monitor.close()
