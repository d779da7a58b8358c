"""Helpers of the operations tests: exact event sets, publishing, Kafka's own tools."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from aiokafka.structs import TopicPartition

from ingest.events import (
    EventEnvelope,
    MetricPoint,
    MetricsLogged,
    ParamsLogged,
    RunCreated,
    RunEnded,
    RunStatus,
    TagsSet,
)
from ingest.ids import new_run_id
from ingest.kafka import admin_client, ensure_topics, kafka_producer, start
from ingest.settings import KafkaSettings
from ingest.topics import events_topic
from producers import EventPublisher, ProducerSettings

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = ROOT / "deploy" / "kafka" / "kafka.sh"


def run_events(
    tenant: str, steps: int, experiment: str = "exp", end: bool = True
) -> list[EventEnvelope]:
    """A whole run: created, 2 params, 1 tag, ``steps`` metric events of 2 points, ended."""
    run_id = new_run_id()
    now = time.time_ns() // 1_000_000
    envelope = {"tenant_id": tenant, "run_id": run_id, "experiment_name": experiment}
    events: list[EventEnvelope] = [
        RunCreated(**envelope, run_name=f"{tenant}-run", start_time=now, tags={"team": "ml"}),
        ParamsLogged(**envelope, params={"lr": "0.01", "depth": "6"}),
        TagsSet(**envelope, tags={"dataset": "v2"}),
    ]
    for step in range(steps):
        points = (
            MetricPoint(key="loss", value=1.0 / (step + 1), step=step, timestamp=now + step),
            MetricPoint(key="acc", value=step / 100, step=step, timestamp=now + step),
        )
        events.append(MetricsLogged(**envelope, metrics=points))
    if end:
        events.append(RunEnded(**envelope, status=RunStatus.FINISHED, end_time=now + steps + 1))
    return events


async def publish(kafka: KafkaSettings, events: Iterable[EventEnvelope]) -> None:
    """Publishes ``events`` in order and waits until Kafka acknowledged every one."""
    await ensure_topics(kafka)
    publisher = EventPublisher(ProducerSettings(kafka=kafka, linger_ms=1))
    await publisher.start()
    try:
        sent = 0
        for event in events:
            await publisher.publish(event)
            sent += 1
        assert await publisher.flush(30)
        assert (publisher.stats.acked, publisher.stats.failed) == (sent, 0)
    finally:
        await publisher.stop(10)


async def publish_raw(kafka: KafkaSettings, value: bytes, key: bytes) -> None:
    """Publishes a record that is not an event of the contract."""
    producer = await start(kafka_producer(kafka), kafka)
    try:
        await producer.send_and_wait(events_topic(kafka), value=value, key=key)
    finally:
        await producer.stop()


async def committed(kafka: KafkaSettings, group: str) -> dict[TopicPartition, int]:
    """The group's committed offsets, as Kafka holds them."""
    async with admin_client(kafka) as admin:
        offsets = await admin.list_consumer_group_offsets(group)
    return {tp: meta.offset for tp, meta in offsets.items()}


async def groups(kafka: KafkaSettings) -> set[str]:
    """Every consumer group the cluster knows."""
    async with admin_client(kafka) as admin:
        return {group for group, *_ in await admin.list_consumer_groups()}


def describe_group(kafka: KafkaSettings, group: str) -> dict[tuple[str, int], tuple[str, str, str]]:
    """``kafka-consumer-groups --describe``: per (topic, partition), the CURRENT-OFFSET,
    LOG-END-OFFSET and LAG columns exactly as Kafka's tool prints them."""
    port = kafka.bootstrap_servers.rsplit(":", 1)[1]
    # The secure broker's tool runs as its admin, with the config in its data dir.
    folder = f"kafka-secure-test-{port}" if kafka.sasl else f"kafka-test-{port}"
    env = {**os.environ, "KAFKA_PORT": port, "KAFKA_SECURE": "1" if kafka.sasl else "0"}
    env.setdefault("KAFKA_DATA_DIR", str(ROOT / ".data" / folder))
    out = subprocess.run(
        [str(KAFKA_SCRIPT), "tool", "kafka-consumer-groups", "--describe", "--group", group],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
    ).stdout
    rows: dict[tuple[str, int], tuple[str, str, str]] = {}
    for line in out.splitlines():
        cells = line.split()
        if len(cells) >= 6 and cells[0] == group:
            rows[(cells[1], int(cells[2]))] = (cells[3], cells[4], cells[5])
    return rows
