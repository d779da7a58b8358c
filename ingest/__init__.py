"""The contract producers and consumers share, the MLflow read side, and the product's faces."""

from ingest.codec import decode, encode
from ingest.consistency import Position, wait_committed
from ingest.errors import IngestError, InvalidEventError, KafkaUnavailableError
from ingest.events import (
    Event,
    EventEnvelope,
    EventKind,
    MetricPoint,
    MetricsLogged,
    ParamsLogged,
    RunCreated,
    RunEnded,
    RunStatus,
    TagsSet,
)
from ingest.exposition import MetricsServer, metrics_asgi_app, serve_metrics
from ingest.ids import new_run_id
from ingest.kafka.admin import ensure_topics
from ingest.reader import MetricHistoryPoint, RunReader
from ingest.settings import KafkaSettings, KeyStrategy, MetricsSettings, MlflowSettings
from ingest.topics import dead_letter_topic, events_topic

__all__ = [
    "Event",
    "EventEnvelope",
    "EventKind",
    "IngestError",
    "InvalidEventError",
    "KafkaSettings",
    "KafkaUnavailableError",
    "KeyStrategy",
    "MetricHistoryPoint",
    "MetricPoint",
    "MetricsLogged",
    "MetricsServer",
    "MetricsSettings",
    "MlflowSettings",
    "ParamsLogged",
    "Position",
    "RunCreated",
    "RunEnded",
    "RunReader",
    "RunStatus",
    "TagsSet",
    "dead_letter_topic",
    "decode",
    "encode",
    "ensure_topics",
    "events_topic",
    "metrics_asgi_app",
    "new_run_id",
    "serve_metrics",
    "wait_committed",
]
