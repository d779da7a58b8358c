"""Topics as the workers find them: created as configured, or warned about when an
existing events topic has fewer partitions than the workers are configured for, or
than the workers in the group."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from consumers import ConsumerSettings
from ingest.kafka import ensure_topics, topic_partitions
from ingest.settings import KafkaSettings
from ingest.topics import dead_letter_topic
from tests.integration.ops import publish, run_events
from tests.integration.support import WorkerThread, snapshot, wait_consumed

pytestmark = pytest.mark.integration


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The topic admin's warnings (not those of other tests' clients still closing)."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "ingest.kafka.admin" and r.levelno == logging.WARNING
    ]


async def test_missing_topics_are_created_with_the_configured_partitions(
    kafka_settings: KafkaSettings,
) -> None:
    kafka = kafka_settings.model_copy(update={"partitions": 3})
    await ensure_topics(kafka)
    assert len(await topic_partitions(kafka, kafka.topic)) == 3
    assert len(await topic_partitions(kafka, dead_letter_topic(kafka))) == 3


async def test_a_topic_with_fewer_partitions_than_configured_is_kept_and_warned_about(
    kafka_settings: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """Partitions are never added behind the operator's back (it moves tenants between
    partitions); one warning says how many workers can share the load."""
    await ensure_topics(kafka_settings.model_copy(update={"partitions": 2}))
    caplog.clear()
    await ensure_topics(kafka_settings.model_copy(update={"partitions": 8}))
    assert len(await topic_partitions(kafka_settings, kafka_settings.topic)) == 2
    (warning,) = warnings(caplog)
    assert f"topic {kafka_settings.topic} has 2 partitions, fewer than the 8 configured" in warning
    assert "at most 2 workers share its load" in warning
    caplog.clear()
    await ensure_topics(kafka_settings.model_copy(update={"partitions": 2}))
    assert not warnings(caplog)


def idle_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "was given no partition" in r.getMessage()]


async def test_a_worker_beyond_the_partition_count_warns_once_and_takes_over_when_one_leaves(
    consumer_settings: ConsumerSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """Two workers on a topic of one partition: the one left without a partition says so
    once, stands by, and takes the partition over when the other leaves; every event is
    written once."""
    caplog.set_level(logging.WARNING, logger="consumers.health")
    kafka = consumer_settings.kafka.model_copy(update={"partitions": 1})
    settings = consumer_settings.model_copy(update={"kafka": kafka})
    await ensure_topics(kafka)
    workers = [WorkerThread(settings), WorkerThread(settings)]
    runs = [run_events("acme-corp", 3)]
    workers[0].start()
    try:
        await publish(kafka, runs[0])
        await wait_consumed(workers[0], len(runs[0]))
        workers[1].start()
        deadline = time.monotonic() + 60
        while not idle_warnings(caplog):
            assert time.monotonic() < deadline, "no worker said it was given no partition"
            await asyncio.sleep(0.2)
        (warning,) = idle_warnings(caplog)
        assert "more workers than the events topic has partitions" in warning

        # Which one reads now: the next run goes to the partition's owner.
        runs.append(run_events("acme-corp", 2))
        before = [w.telemetry.consumed for w in workers]
        await publish(kafka, runs[1])
        deadline = time.monotonic() + 60
        while sum(w.telemetry.consumed for w in workers) < sum(before) + len(runs[1]):
            assert time.monotonic() < deadline, "the owner did not consume the second run"
            await asyncio.sleep(0.1)
        owner = next(i for i, w in enumerate(workers) if w.telemetry.consumed > before[i])
        standby = workers[1 - owner]
        workers.pop(owner).stop()  # the owner leaves: the one standing by takes over

        runs.append(run_events("acme-corp", 4))
        consumed = standby.telemetry.consumed
        await publish(kafka, runs[2])
        await wait_consumed(standby, consumed + len(runs[2]))
        assert len(idle_warnings(caplog)) == 1, "the warning comes once, not at each rebalance"
    finally:
        for worker in workers:
            worker.stop()
    stored = snapshot(settings.mlflow.tracking_uri, "acme-corp")
    assert len(stored) == 3
    for events, steps in zip(runs, (3, 2, 4), strict=True):
        run = stored[events[0].run_id]
        assert run["status"] == "FINISHED"
        assert [step for step, _, _ in run["history"]["loss"]] == list(range(steps))
