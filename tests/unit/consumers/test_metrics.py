"""Worker metrics from batches: read, written and set aside by kind."""

from __future__ import annotations

from consumers.batch import RecordRef, Rejection
from consumers.metrics import WorkerMetrics
from tests.integration.ops import run_events


def value(metrics: WorkerMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_a_batch_counts_consumed_written_and_dead_lettered_by_kind() -> None:
    """A rejected event is not written; a refused metric point of an otherwise written event
    is set aside as an item; an undecodable record is consumed and set aside."""
    metrics = WorkerMetrics()
    events = run_events("acme-corp", 2)  # created, params, tags, 2 x metrics, ended
    source = RecordRef("t", 0, 9)
    rejections = [
        Rejection("not json", None, source),
        Rejection("param written with another value", events[1], RecordRef("t", 0, 1)),
        Rejection("MLflow rejected metric 'loss' at step 1", None, None),
    ]
    metrics.batch_written(events, 1, rejections, 0.02)

    assert value(metrics, "matih_ingest_events_consumed_total", kind="metrics.logged") == 2
    assert value(metrics, "matih_ingest_events_consumed_total", kind="undecodable") == 1
    assert value(metrics, "matih_ingest_events_written_total", kind="metrics.logged") == 2
    assert value(metrics, "matih_ingest_events_written_total", kind="params.logged") is None
    assert value(metrics, "matih_ingest_events_dead_lettered_total", kind="params.logged") == 1
    assert value(metrics, "matih_ingest_events_dead_lettered_total", kind="undecodable") == 1
    assert value(metrics, "matih_ingest_events_dead_lettered_total", kind="item") == 1
    assert value(metrics, "matih_ingest_batch_size_sum") == len(events) + 1
    assert value(metrics, "matih_ingest_mlflow_write_seconds_count") == 1
    metrics.write_failed()
    assert value(metrics, "matih_ingest_write_failures_total") == 1
