"""The gateway documents itself: OpenAPI at /docs with the spec's examples, and the
AsyncAPI document of the topics, served and from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from ingest.api import ApiSettings
from ingest.cli.main import app as cli
from ingest.topics import events_pattern, tenant_topic
from tests.integration.gateway.conftest import headers

pytestmark = pytest.mark.integration

SPEC_CREATE = {
    "experiment_id": "550e8400-e29b-41d4-a716-446655440000",
    "name": "xgboost-lr-0.01-depth-6",
    "description": "XGBoost with learning rate 0.01 and max depth 6",
    "tags": {"model_type": "xgboost", "dataset_version": "v2.1"},
}


def test_openapi_and_docs_carry_the_spec_examples(lone_gateway: httpx.Client) -> None:
    docs = lone_gateway.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    schema = lone_gateway.get("/openapi.json").json()
    create = schema["paths"]["/api/v1/experiments/runs"]["post"]
    example = create["requestBody"]["content"]["application/json"]["examples"]["spec"]["value"]
    assert example == SPEC_CREATE
    tenant = next(p for p in create["parameters"] if p["name"] == "X-Tenant-ID")
    assert tenant["required"] is True
    assert create["security"] == [{"HTTPBearer": []}]
    metrics = schema["paths"]["/api/v1/experiments/runs/{run_id}/log-metrics"]["post"]
    assert set(metrics["responses"]) >= {"202", "401", "403", "404", "413", "422", "503"}


def test_asyncapi_document_is_served_and_generated(
    lone_gateway: httpx.Client, api_settings: ApiSettings, tmp_path: Path
) -> None:
    """Both name the workers' pattern, the events topic, the tenant topics, the
    dead-letter topic and every event kind."""
    served = lone_gateway.get("/asyncapi.json").json()
    out = tmp_path / "asyncapi.json"
    result = CliRunner().invoke(
        cli,
        ["asyncapi", "--topic", api_settings.kafka.topic, "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    generated = json.loads(out.read_text())
    for document in (served, generated):
        assert document["asyncapi"] == "3.0.0"
        addresses = {channel["address"] for channel in document["channels"].values()}
        kafka = api_settings.kafka
        assert addresses == {
            events_pattern(kafka),
            kafka.topic,
            tenant_topic(kafka, "{tenant_id}"),
            f"{kafka.topic}.dlq",
        }
        text = json.dumps(document)
        for kind in ("RunCreated", "MetricsLogged", "ParamsLogged", "TagsSet", "RunEnded"):
            assert kind in text


def test_metrics_count_the_gateways_acknowledged_events(gateway: httpx.Client) -> None:
    """``/metrics`` serves the producer counters, and a write moves them by exactly one."""

    def sent(kind: str) -> float:
        text = gateway.get("/metrics/").text
        line = f'matih_ingest_producer_events_sent_total{{kind="{kind}"}} '
        found = [row for row in text.splitlines() if row.startswith(line)]
        return float(found[0].removeprefix(line)) if found else 0.0

    before = sent("run.created")
    created = gateway.post("/api/v1/experiments/runs", json=SPEC_CREATE, headers=headers())
    assert created.status_code == 201, created.text
    assert sent("run.created") == before + 1
    assert "matih_ingest_producer_send_errors_total" in gateway.get("/metrics/").text
