"""The AsyncAPI document is generated from the worker's own wiring."""

from __future__ import annotations

import json

from consumers.app import build_worker
from consumers.settings import ConsumerSettings
from consumers.sink.memory import ListSink
from ingest.asyncapi import asyncapi_document
from ingest.settings import KafkaSettings


def test_the_worker_subscription_is_the_one_the_worker_runs() -> None:
    """Its topic pattern (the shared topic and every tenant topic), title and description
    come from ``build_worker``'s subscriber; the producers' and the dead-letter channels
    sit beside it."""
    kafka = KafkaSettings(topic="team.events", consumer_group="team-workers")
    document = asyncapi_document(kafka)
    broker = build_worker(ConsumerSettings(kafka=kafka), ListSink()).broker
    assert broker is not None
    (subscriber,) = broker.subscribers
    (wired,) = subscriber.schema().values()
    documented = document["channels"]["run-events:write-mlflow"]
    pattern = r"^team\.events(\.tenant\.[A-Za-z0-9][A-Za-z0-9._-]*)?$"
    assert documented["address"] == wired.bindings.kafka.topic == pattern
    assert documented["description"] == wired.description
    assert document["operations"]["run-events:write-mlflow"]["action"] == "receive"
    addresses = {name: channel["address"] for name, channel in document["channels"].items()}
    assert addresses == {
        "run-events:write-mlflow": pattern,
        "run-events:publish": "team.events",
        "run-events:publish-tenant": "team.events.tenant.{tenant_id}",
        "run-events:dead-letter": "team.events.dlq",
    }


def test_what_the_worker_receives_is_documented_as_the_event_the_producers_send() -> None:
    """The worker decodes records itself, so FastStream alone would document an empty
    payload; the document names the contract's event on both sides."""
    document = asyncapi_document(KafkaSettings())
    messages = document["components"]["messages"]
    (received,) = document["channels"]["run-events:write-mlflow"]["messages"].values()
    (sent,) = document["channels"]["run-events:publish"]["messages"].values()
    payload = messages[received["$ref"].rsplit("/", 1)[-1]]["payload"]
    assert payload == messages[sent["$ref"].rsplit("/", 1)[-1]]["payload"]
    schema = json.dumps(document["components"]["schemas"][payload["$ref"].rsplit("/", 1)[-1]])
    assert all(f"#/components/schemas/{kind}" in schema for kind in ("RunCreated", "RunEnded"))
    assert "EmptyPayload" not in document["components"]["schemas"]


def test_both_versions_of_the_metrics_event_are_documented() -> None:
    """Version 1 (a point per object) and version 2 (columns) are both on the topic:
    the document names each, with its kind, schema version and fields."""
    schemas = asyncapi_document(KafkaSettings())["components"]["schemas"]
    v1, v2 = schemas["MetricsLogged"], schemas["MetricsColumns"]
    assert v1["properties"]["kind"]["const"] == "metrics.logged"
    assert v1["properties"]["schema_version"]["const"] == 1
    assert {"metrics"} <= set(v1["required"])
    assert v2["properties"]["kind"]["const"] == "metrics.columns"
    assert v2["properties"]["schema_version"]["const"] == 2
    assert {"keys", "key_index", "values", "steps", "timestamps"} <= set(v2["required"])
    assert "columns" in v2["description"]
