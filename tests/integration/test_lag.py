"""Lag against a real broker: figures equal Kafka's own tool where the group committed,
count from the log start where it did not, tenants roll up, and the status moves
OK -> STOP -> OK as a worker stops and a new one catches up."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from aiokafka.admin import RecordsToDelete
from aiokafka.structs import TopicPartition

from consumers import ConsumerSettings
from consumers.exporter import MetricsExporter
from consumers.lag import GroupLag, LagMonitor
from consumers.lag_status import LagStatus, StatusRules
from consumers.lag_watch import LagWatcher
from consumers.telemetry import WorkerTelemetry
from ingest.kafka import admin_client, kafka_consumer, start, topic_partitions
from ingest.settings import KafkaSettings, MetricsSettings
from tests.integration.ops import committed, describe_group, publish, run_events
from tests.integration.secure import kafka_env
from tests.integration.support import WorkerThread, wait_consumed

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def as_kafka_tool_prints(lag: GroupLag) -> dict[tuple[str, int], tuple[str, str, str]]:
    """Our figures in the CURRENT-OFFSET, LOG-END-OFFSET and LAG columns of
    ``kafka-consumer-groups --describe``: "-" where the group has committed nothing."""
    return {
        (p.topic, p.partition): (
            "-" if p.committed is None else str(p.committed),
            str(p.log_end),
            "-" if p.from_log_start else str(p.lag),
        )
        for p in lag.partitions
    }


async def test_lag_equals_kafka_consumer_groups_on_a_stopped_consumer(
    consumer_settings: ConsumerSettings,
) -> None:
    """After the worker stops, 2 tenants publish 6 and 4 more events: the committed,
    log-end and lag figures are exactly kafka-consumer-groups', the tenant roll-up counts
    each tenant's unconsumed events, and lag in seconds is the oldest one's age."""
    kafka = consumer_settings.kafka
    first = run_events("acme-corp", 3) + run_events("globex", 2)
    await publish(kafka, first)
    worker = WorkerThread(consumer_settings)
    worker.start()
    try:
        await wait_consumed(worker, len(first))
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

    assert as_kafka_tool_prints(lag) == tool
    assert lag.uncommitted == 0
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


async def test_a_member_that_has_committed_nothing_counts_from_the_log_start_and_is_not_ok(
    kafka_settings: KafkaSettings,
) -> None:
    """The reported bug: a member holds every partition and is still on its first batch,
    so nothing is committed anywhere. Kafka's tool shows no lag ("-"); ours counts every
    record from the log start, the tenant roll-up and the age see them, and the group is
    ERR (STALL), not OK with lag 0. Once the member commits, it is OK."""
    kafka = kafka_settings
    events = run_events("acme-corp", 3) + run_events("globex", 2)
    published_at = time.time_ns() // 1_000_000
    await publish(kafka, events)
    member = kafka_consumer(kafka, kafka.consumer_group)
    member.subscribe([kafka.topic])
    await start(member, kafka)
    try:
        deadline = time.monotonic() + 30
        read = 0
        while read < len(events):  # the first batch, fetched but not yet committed
            assert time.monotonic() < deadline, f"read {read} of {len(events)}"
            batches = await member.getmany(timeout_ms=500)
            read += sum(len(records) for records in batches.values())
        assert await committed(kafka, kafka.consumer_group) == {}

        rules = StatusRules(window=3)
        async with LagMonitor(kafka) as monitor:
            watcher = LagWatcher(monitor, kafka.consumer_group, rules)
            for _ in range(3):
                report = await watcher.sample()
                await asyncio.sleep(0.3)
            lag = report.lag
            tool = describe_group(kafka, kafka.consumer_group)

            assert lag.total_lag == len(events)
            assert lag.members == 1
            partitions = await topic_partitions(kafka, kafka.topic)
            assert [(p.topic, p.partition) for p in lag.partitions] == partitions
            assert lag.uncommitted == len(partitions)
            assert all(p.committed is None and p.log_start == 0 for p in lag.partitions)
            assert {t.tenant: t.lag for t in lag.tenants} == {"acme-corp": 7, "globex": 6}
            waiting = [p for p in lag.partitions if p.lag]
            for p in waiting:
                assert p.oldest_timestamp_ms is not None
                assert published_at <= p.oldest_timestamp_ms <= lag.sampled_at_ms
                assert p.lag_seconds(lag.sampled_at_ms) > 0
            assert {report.statuses[(p.topic, p.partition)] for p in waiting} == {LagStatus.STALL}
            assert report.status is LagStatus.ERR
            # Where we count from the log start, Kafka's tool prints "-" (no commit).
            assert as_kafka_tool_prints(lag) == tool

            await member.commit()  # the batch is done
            report = await watcher.sample()
            assert report.lag.total_lag == 0
            assert report.lag.uncommitted == 0
            assert report.status is LagStatus.OK
    finally:
        await member.stop()


def test_the_lag_command_counts_a_group_without_members_or_commits_from_the_log_start(
    kafka_settings: KafkaSettings,
) -> None:
    """No worker ever committed (none is up): ``matih-ingest lag`` lists every partition of
    the events topic, counts the records from the log start (retention moved it past the
    first 2 records of one partition), says nothing is committed, and exits 1 (ERR, STOP)."""
    kafka = kafka_settings
    events = run_events("acme-corp", 3)
    asyncio.run(publish(kafka, events))
    (tp,) = {tp for tp, end in asyncio.run(end_offsets(kafka)).items() if end}
    asyncio.run(delete_before(kafka, tp, 2))

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MATIH_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MATIH_KAFKA_TOPIC": kafka.topic,
        "MATIH_KAFKA_CONSUMER_GROUP": kafka.consumer_group,
        **kafka_env(kafka),
    }
    command = [sys.executable, "-m", "ingest.cli.main", "lag", "--json", "--interval", "0.3"]
    done = subprocess.run(
        command, check=False, env=env, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 1, done.stderr
    (report,) = json.loads(done.stdout)
    assert report["status"] == "ERR"
    assert report["total_lag"] == len(events) - 2
    assert report["uncommitted_partitions"] == len(report["partitions"]) == kafka.partitions
    rows = {(p["topic"], p["partition"]): p for p in report["partitions"]}
    row = rows.pop((tp.topic, tp.partition))
    assert row["committed"] is None
    assert row["from_log_start"]
    assert (row["log_start"], row["log_end"], row["lag"]) == (2, len(events), len(events) - 2)
    assert row["lag_seconds"] > 0
    assert row["status"] == "STOP"
    assert all(p["lag"] == 0 and p["status"] == "OK" for p in rows.values())
    assert report["tenants"][0]["tenant"] == "acme-corp"
    assert report["tenants"][0]["lag"] == len(events) - 2


async def test_the_exported_lag_counts_records_of_a_group_that_committed_nothing(
    kafka_settings: KafkaSettings,
) -> None:
    """/metrics of a worker whose group has committed nothing (its first batch is not done):
    the partition and tenant gauges count every record from the log start, and the group
    status is ERR, never OK."""
    kafka = kafka_settings
    await publish(kafka, run_events("acme-corp", 3) + run_events("globex", 2))
    metrics = WorkerTelemetry()
    settings = ConsumerSettings(kafka=kafka, metrics=MetricsSettings(port=0, lag_interval_s=0.3))
    exporter = MetricsExporter(settings, metrics)
    group = kafka.consumer_group

    def gauges(name: str) -> dict[str, float]:
        return {
            sample.labels.get("partition", sample.labels.get("tenant", "")): sample.value
            for family in metrics.registry.collect()
            if family.name == name
            for sample in family.samples
            if sample.labels["group"] == group
        }

    def status(state: str) -> float | None:
        name = "matih_ingest_consumer_group_status"
        return metrics.registry.get_sample_value(name, {"group": group, name: state})

    await exporter.start()
    try:
        deadline = time.monotonic() + 30
        # ERR by the rules (STOP), once the lag is read; before that ERR can also mean
        # that a fresh broker had no group coordinator yet.
        while status("ERR") != 1 or not gauges("matih_ingest_consumer_lag_offsets"):
            assert status("OK") != 1, "a group with nothing committed was OK"
            assert time.monotonic() < deadline, "the lag and an ERR status never showed"
            await asyncio.sleep(0.1)
    finally:
        await exporter.stop()
    assert sum(gauges("matih_ingest_consumer_lag_offsets").values()) == 13
    assert len(gauges("matih_ingest_consumer_lag_offsets")) == kafka.partitions
    assert max(gauges("matih_ingest_consumer_lag_seconds").values()) > 0
    assert gauges("matih_ingest_tenant_lag_offsets") == {"acme-corp": 7, "globex": 6}


async def end_offsets(kafka: KafkaSettings) -> dict[TopicPartition, int]:
    reader = await start(kafka_consumer(kafka), kafka)
    try:
        ends: dict[TopicPartition, int] = await reader.end_offsets(
            await topic_partitions(kafka, kafka.topic)
        )
        return ends
    finally:
        await reader.stop()


async def delete_before(kafka: KafkaSettings, tp: TopicPartition, offset: int) -> None:
    """Moves the partition's log start to ``offset``, as retention would."""
    async with admin_client(kafka) as admin:
        await admin.delete_records({tp: RecordsToDelete(offset)})


async def test_the_tenant_roll_up_says_when_it_was_capped(
    consumer_settings: ConsumerSettings,
) -> None:
    """With more unconsumed records than the scan cap, tenant counts cover the cap and the
    sample says it was capped; the partition lag is still exact."""
    kafka = consumer_settings.kafka
    first = run_events("acme-corp", 0)[:1]
    await publish(kafka, first)
    worker = WorkerThread(consumer_settings)
    worker.start()
    try:
        await wait_consumed(worker, 1)
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
    worker = WorkerThread(consumer_settings)
    worker.start()
    async with LagMonitor(kafka) as monitor:
        watcher = LagWatcher(monitor, kafka.consumer_group, rules)
        try:
            await wait_consumed(worker, len(events))
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

        again = WorkerThread(consumer_settings)
        again.start()
        try:
            await wait_consumed(again, len(more))
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
