"""Each package's public surface is exactly its ``__all__``, and this test names it:
widening or narrowing the API is a deliberate change here too."""

from __future__ import annotations

import importlib

import pytest

SURFACE = {
    "ingest": {
        "ArtifactLogged", "Event", "EventEnvelope", "EventKind", "IngestError", "InvalidEventError",
        "KafkaSettings", "KafkaUnavailableError", "KeyStrategy", "MetricPoint", "MetricsColumns",
        "MetricsLogged", "MetricsSettings", "MlflowSettings", "ParamsLogged", "RunCreated",
        "RunEnded", "RunStatus", "TagsSet", "dead_letter_topic", "decode", "encode",
        "events_topic", "new_run_id",
    },
    "producers": {
        "ActiveRun", "DeliveryReport", "EventPublisher", "ExperimentTracker", "ProducerTelemetry",
        "ProducerSettings", "PublishError", "PublisherStats", "RunConfig", "RunMetrics",
        "RunStateError", "SpoolBusyError", "SpoolError",
    },
    "consumers": {
        "BaseSink", "BatchHandler", "ConsumerSettings", "GroupLag", "LagMonitor", "LagReport",
        "LagStatus", "LagWatcher", "ListSink", "MlflowSink", "PartitionLag", "RecordRef",
        "Rejection", "ReplayPlan", "ReplaySummary", "Replayer", "RunWrites",
        "SinkUnavailableError", "StatusRules", "TenantLag", "WorkerTelemetry",
        "build_worker", "coalesce",
    },
    "ingest.api": {"ApiSettings", "build_server", "create_app"},
    "ingest.kafka": {
        "ACCESS_DENIALS", "KAFKA_FAILURES", "BatchConsumer", "ConsumedRecord", "KafkaRecord",
        "OffsetRange", "access_denied", "admin_client", "bounded", "check_read_access",
        "check_write_access", "ensure_topics", "events_partitions", "existing_partitions",
        "kafka_admin", "kafka_consumer", "kafka_errors", "kafka_producer", "read_ranges",
        "security_options", "start", "stop", "topic_partitions",
    },
    "consumers.sink": {"BaseSink", "ListSink", "MlflowSink"},
    # Internal packages: their modules are imported by name, and the package itself
    # exports nothing (``ingest.tracking`` so that waiting for the workers loads no MLflow).
    "ingest.cli": set(),
    "ingest.tracking": set(),
    "producers.delivery": set(),
    "producers.spool": set(),
    "producers.mlflow": set(),
}  # fmt: skip


@pytest.mark.parametrize("package", sorted(SURFACE))
def test_all_names_exactly_the_public_surface(package: str) -> None:
    module = importlib.import_module(package)
    assert set(module.__all__) == SURFACE[package]
    assert len(module.__all__) == len(set(module.__all__))
    for name in module.__all__:
        assert getattr(module, name) is not None, name
