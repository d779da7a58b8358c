"""The AsyncAPI document of the topics: what goes on them and who reads them.

Built from the event contract with FastStream's generator, on a broker that is
never connected: the document describes, it does not run.
"""

from __future__ import annotations

import json
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from ingest.events import Event
from ingest.settings import KafkaSettings
from ingest.topics import dead_letter_topic, events_topic

_VERSION = "1"


def asyncapi_document(settings: KafkaSettings) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the events and dead-letter topics, as JSON data."""
    broker = KafkaBroker(settings.bootstrap_servers)
    broker.publisher(
        events_topic(settings),
        title="run-events:publish",
        description="Producers (SDK, REST gateway) publish run events, keyed by tenant"
        f" ({settings.key_strategy.value} strategy) so each run stays in order.",
        schema=Event,
    )

    @broker.subscriber(
        events_topic(settings),
        group_id=settings.consumer_group,
        batch=True,
        title="run-events:write-mlflow",
        description="Workers batch run events into MLflow; offsets are committed after"
        " the write, so a consistency token is readable once the group passed it.",
    )
    async def write_mlflow(events: list[Event]) -> None:  # pragma: no cover - documentation
        del events

    broker.publisher(
        dead_letter_topic(settings),
        title="run-events:dead-letter",
        description="Events that can never be written, with the reason, source"
        " topic/partition/offset and tenant in headers.",
        schema=Event,
    )
    spec = AsyncAPI(
        broker,
        title="matih-ingest run events",
        version=_VERSION,
        description="The run events of the MATIH ML service's run tracking.",
    )
    document: dict[str, Any] = json.loads(spec.to_specification().to_json())
    return document
