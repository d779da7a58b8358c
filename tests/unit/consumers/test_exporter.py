"""The worker's /metrics server and lag sampler, without a broker to talk to."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request

from consumers.exporter import MetricsExporter
from consumers.settings import ConsumerSettings
from consumers.telemetry import WorkerTelemetry
from ingest.settings import KafkaSettings, MetricsSettings

NOWHERE = KafkaSettings(bootstrap_servers="127.0.0.1:1", request_timeout_s=0.5)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


async def test_without_a_port_nothing_is_served_or_sampled() -> None:
    exporter = MetricsExporter(ConsumerSettings(kafka=NOWHERE), WorkerTelemetry())
    await exporter.start()
    assert exporter.server is None
    await exporter.stop()


async def test_an_unreachable_kafka_makes_the_group_err_and_stopping_does_not_hang() -> None:
    """/metrics is served even when Kafka is away; the group status says ERR."""
    port = free_port()
    settings = ConsumerSettings(
        kafka=NOWHERE, metrics=MetricsSettings(port=port, lag_interval_s=0.2)
    )
    exporter = MetricsExporter(settings, WorkerTelemetry())
    await exporter.start()
    err = (
        'matih_ingest_consumer_group_status{group="matih-ingest-mlflow",'
        'matih_ingest_consumer_group_status="ERR"} 1.0'
    )
    try:
        deadline = time.monotonic() + 20
        while err not in await asyncio.to_thread(scrape, port):
            assert time.monotonic() < deadline, "the group never showed ERR"
            await asyncio.sleep(0.2)
    finally:
        started = time.monotonic()
        await exporter.stop()
    assert time.monotonic() - started < 5
    assert exporter.server is None
