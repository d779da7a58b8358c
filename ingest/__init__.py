"""The contract producers and consumers share: events, wire codec, ids, topics, settings, errors.

Importing it loads pydantic and the standard library only. What talks to something
lives in a module named for it: ``ingest.tracking`` (MLflow reads, read-your-writes),
``ingest.telemetry`` (Prometheus), and the faces ``ingest.api`` and ``ingest.cli``.
"""

from ingest.codec import decode, encode
from ingest.errors import IngestError, InvalidEventError, KafkaUnavailableError
from ingest.events import (
    ArtifactLogged,
    Event,
    EventEnvelope,
    EventKind,
    MetricPoint,
    MetricsColumns,
    MetricsLogged,
    ParamsLogged,
    RunCreated,
    RunEnded,
    RunStatus,
    TagsSet,
)
from ingest.ids import new_run_id
from ingest.settings import KafkaSettings, KeyStrategy, MetricsSettings, MlflowSettings
from ingest.topics import dead_letter_topic, events_topic

__all__ = [
    "ArtifactLogged",
    "Event",
    "EventEnvelope",
    "EventKind",
    "IngestError",
    "InvalidEventError",
    "KafkaSettings",
    "KafkaUnavailableError",
    "KeyStrategy",
    "MetricPoint",
    "MetricsColumns",
    "MetricsLogged",
    "MetricsSettings",
    "MlflowSettings",
    "ParamsLogged",
    "RunCreated",
    "RunEnded",
    "RunStatus",
    "TagsSet",
    "dead_letter_topic",
    "decode",
    "encode",
    "events_topic",
    "new_run_id",
]
