"""/metrics for any deployable: the gateway's ASGI app and the producer's metrics."""

from __future__ import annotations

import httpx
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from ingest.telemetry import metrics_asgi_app
from producers.telemetry import ProducerTelemetry


async def get_metrics(app: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


async def test_the_asgi_app_serves_several_registries_as_one() -> None:
    """A gateway exposes its own registry and the producer's under one /metrics."""
    own = CollectorRegistry()
    requests = Counter("matih_ingest_gateway_requests", "Requests.", registry=own)
    producer = ProducerTelemetry()
    app = metrics_asgi_app(own, producer.registry)
    requests.inc(3)
    producer.sent("metrics.logged", 5)
    producer.send_failed("metrics.logged", "KafkaTimeoutError", 2)
    producer.spool_size(events=7, size_bytes=1024)

    got = await get_metrics(app)
    assert got[("matih_ingest_gateway_requests_total", ())] == 3
    assert got[("matih_ingest_producer_events_sent_total", (("kind", "metrics.logged"),))] == 5
    errors = (("kind", "metrics.logged"), ("reason", "KafkaTimeoutError"))
    assert got[("matih_ingest_producer_send_errors_total", errors)] == 2
    assert got[("matih_ingest_producer_spool_events", ())] == 7
    assert got[("matih_ingest_producer_spool_bytes", ())] == 1024

    producer.spool_size(events=0, size_bytes=0)
    producer.send_failed("metrics.logged", "KafkaTimeoutError")
    got = await get_metrics(app)
    assert got[("matih_ingest_producer_spool_events", ())] == 0
    assert got[("matih_ingest_producer_send_errors_total", errors)] == 3


def test_two_producers_in_one_process_do_not_collide() -> None:
    """Each has its own registry (prometheus_client's global one would refuse the second)."""
    first, second = ProducerTelemetry(), ProducerTelemetry()
    first.sent("run.created")
    assert (
        second.registry.get_sample_value(
            "matih_ingest_producer_events_sent_total", {"kind": "run.created"}
        )
        is None
    )
