"""The worker's /metrics against a real broker and store: exposed, and moving as events flow."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from consumers import ConsumerSettings
from ingest.settings import MetricsSettings
from tests.integration.ops import publish, publish_raw, run_events
from tests.integration.support import WorkerThread

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of http://127.0.0.1:port/metrics, keyed by name and labels."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def until(check: object, what: str) -> None:
    deadline = time.monotonic() + 30
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_worker_metrics_are_exposed_and_follow_the_events(
    consumer_settings: ConsumerSettings,
) -> None:
    """Counts by kind equal what was published, a poison record is dead-lettered, batch
    sizes and MLflow write times are observed, and the lag gauges and status appear; a
    second run moves the counters by exactly its events."""
    port = free_port()
    settings = consumer_settings.model_copy(
        update={"metrics": MetricsSettings(port=port, lag_interval_s=0.3)}
    )
    kafka = settings.kafka
    first = run_events("acme-corp", 4)
    await publish(kafka, first)
    await publish_raw(kafka, b"{not json", b"acme-corp")
    worker = WorkerThread(settings)
    worker.start()
    try:
        await until(lambda: worker.telemetry.consumed == len(first) + 1, "the first run")
        got = scrape(port)
        consumed = {
            "run.created": 1,
            "params.logged": 1,
            "tags.set": 1,
            "metrics.logged": 4,
            "run.ended": 1,
        }
        for kind, count in consumed.items():
            assert got[("matih_ingest_events_consumed_total", (("kind", kind),))] == count
            assert got[("matih_ingest_events_written_total", (("kind", kind),))] == count
        assert got[("matih_ingest_events_consumed_total", (("kind", "undecodable"),))] == 1
        assert got[("matih_ingest_events_dead_lettered_total", (("kind", "undecodable"),))] == 1
        batches = got[("matih_ingest_batch_size_count", ())]
        assert batches >= 1
        assert got[("matih_ingest_batch_size_sum", ())] == len(first) + 1
        assert got[("matih_ingest_mlflow_write_seconds_count", ())] == batches
        assert got[("matih_ingest_mlflow_write_seconds_sum", ())] > 0

        group = (("group", kafka.consumer_group),)
        ok = (
            "matih_ingest_consumer_group_status",
            (*group, ("matih_ingest_consumer_group_status", "OK")),
        )

        def lag_reported() -> bool:
            got = scrape(port)
            return got.get(ok) == 1 and any(
                k[0] == "matih_ingest_consumer_lag_offsets" for k in got
            )

        await until(lag_reported, "the lag gauges")
        got = scrape(port)
        lag = {k: v for k, v in got.items() if k[0] == "matih_ingest_consumer_lag_offsets"}
        assert lag
        assert set(lag.values()) == {0}
        assert all(v == 0 for k, v in got.items() if k[0] == "matih_ingest_consumer_lag_seconds")

        second = run_events("acme-corp", 2)
        await publish(kafka, second)
        await until(
            lambda: worker.telemetry.consumed == len(first) + 1 + len(second), "the second run"
        )
        got = scrape(port)
        assert got[("matih_ingest_events_written_total", (("kind", "metrics.logged"),))] == 4 + 2
        assert got[("matih_ingest_events_written_total", (("kind", "run.created"),))] == 2
        assert got[("matih_ingest_batch_size_sum", ())] == len(first) + 1 + len(second)
    finally:
        worker.stop()
    with pytest.raises(urllib.error.URLError):
        scrape(port)  # the server stops with the worker
