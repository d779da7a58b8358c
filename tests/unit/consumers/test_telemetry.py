"""Worker telemetry from batches: read, written and set aside by kind, and where the time went."""

from __future__ import annotations

from consumers.batch import RecordRef, Rejection
from consumers.telemetry import WorkerTelemetry
from tests.integration.ops import run_events


def value(metrics: WorkerTelemetry, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_a_batch_counts_consumed_written_and_dead_lettered_by_kind() -> None:
    """A rejected event is not written; a refused metric point of an otherwise written event
    is set aside as an item; an undecodable record is consumed and set aside."""
    metrics = WorkerTelemetry()
    events = run_events("acme-corp", 2)  # created, params, tags, 2 x metrics, ended
    source = RecordRef("t", 0, 9)
    rejections = [
        Rejection("not json", None, source),
        Rejection("param written with another value", events[1], RecordRef("t", 0, 1)),
        Rejection("MLflow rejected metric 'loss' at step 1", None, None),
    ]
    metrics.batch_written(events, 1, rejections, 0.005, 0.02)

    assert value(metrics, "matih_ingest_events_consumed_total", kind="metrics.logged") == 2
    assert value(metrics, "matih_ingest_events_consumed_total", kind="undecodable") == 1
    assert value(metrics, "matih_ingest_events_written_total", kind="metrics.logged") == 2
    assert value(metrics, "matih_ingest_events_written_total", kind="params.logged") is None
    assert value(metrics, "matih_ingest_events_dead_lettered_total", kind="params.logged") == 1
    assert value(metrics, "matih_ingest_events_dead_lettered_total", kind="undecodable") == 1
    assert value(metrics, "matih_ingest_events_dead_lettered_total", kind="item") == 1
    assert value(metrics, "matih_ingest_batch_size_sum") == len(events) + 1
    assert value(metrics, "matih_ingest_mlflow_write_seconds_count") == 1
    assert value(metrics, "matih_ingest_metric_points_written_total") == 4
    assert value(metrics, "matih_ingest_decode_cpu_seconds_total") == 0.005
    metrics.write_failed()
    assert value(metrics, "matih_ingest_write_failures_total") == 1


def test_the_totals_and_the_summary_read_the_same_counters() -> None:
    """Nothing is counted twice: the read-only totals and the shutdown line come from the
    Prometheus collectors, with the CPU and store time per metric point."""
    telemetry = WorkerTelemetry()
    events = run_events("acme-corp", 2)
    telemetry.batch_written(
        events, 1, [Rejection("not json", None, RecordRef("t", 0, 9))], 2e-6, 4e-6
    )
    telemetry.write_failed()
    assert (telemetry.batches, telemetry.consumed, telemetry.rejected, telemetry.retries) == (
        1,
        len(events) + 1,
        1,
        1,
    )
    assert telemetry.rejected_by_kind == {"undecodable": 1}
    assert telemetry.summary(process_cpu_s=1e-5) == (
        f"{len(events) + 1} records, 4 metric points in 1 writes, 1 rejected, 1 retried;"
        " per point: worker CPU 2.5 µs (decoding 0.5 µs), store 1.0 µs"
    )
