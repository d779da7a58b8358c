"""Worker metrics for Prometheus: events by outcome and kind, batches, MLflow write time, lag.

The batch handler calls :meth:`WorkerMetrics.batch_written` once per committed batch
and :meth:`WorkerMetrics.write_failed` per failed write; a :class:`LagWatcher`'s
reports go to :meth:`WorkerMetrics.observe_lag`. Everything is named
``matih_ingest_*`` and kept in a registry of the worker's own.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram

from consumers.batch import Rejection
from consumers.lag_status import LagStatus
from consumers.lag_watch import LagReport
from ingest.events import EventEnvelope

__all__ = ["WorkerMetrics"]

UNDECODABLE = "undecodable"
_BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
_WRITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class WorkerMetrics:
    """The metrics of one worker.

    Args:
        registry: where to register; a new one when None.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            "matih_ingest_events_consumed",
            "Records read from Kafka, by event kind.",
            ["kind"],
            registry=r,
        )
        self.written = Counter(
            "matih_ingest_events_written",
            "Events written to MLflow and committed, by kind.",
            ["kind"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "matih_ingest_events_dead_lettered",
            "Events (or parts of one) that can never be written, set aside, by kind.",
            ["kind"],
            registry=r,
        )
        self.write_failures = Counter(
            "matih_ingest_write_failures",
            "Batches MLflow did not take; each is read again.",
            registry=r,
        )
        self.batch_size = Histogram(
            "matih_ingest_batch_size",
            "Records per committed batch.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.write_seconds = Histogram(
            "matih_ingest_mlflow_write_seconds",
            "Time to write one batch to MLflow (the sink's flush).",
            buckets=_WRITE_BUCKETS,
            registry=r,
        )
        where = ["group", "topic", "partition"]
        self.lag_offsets = Gauge(
            "matih_ingest_consumer_lag_offsets",
            "Records not yet committed, per partition (from the log start without a commit).",
            where,
            registry=r,
        )
        self.lag_seconds = Gauge(
            "matih_ingest_consumer_lag_seconds",
            "Age of the oldest unconsumed record, per partition.",
            where,
            registry=r,
        )
        self.tenant_lag_offsets = Gauge(
            "matih_ingest_tenant_lag_offsets",
            "Records of a tenant not yet committed.",
            ["group", "tenant"],
            registry=r,
        )
        self.tenant_lag_seconds = Gauge(
            "matih_ingest_tenant_lag_seconds",
            "Age of a tenant's oldest unconsumed record.",
            ["group", "tenant"],
            registry=r,
        )
        self.group_status = Enum(
            "matih_ingest_consumer_group_status",
            "The group's health over the sample window (Burrow's rules).",
            ["group"],
            states=[LagStatus.OK.value, LagStatus.WARN.value, LagStatus.ERR.value],
            registry=r,
        )

    def batch_written(
        self,
        events: Sequence[EventEnvelope],
        undecodable: int,
        rejections: Sequence[Rejection],
        write_seconds: float,
    ) -> None:
        """Counts one committed batch: what was read, written and set aside, and how long
        MLflow took."""
        read = Tally(str(getattr(event, "kind", UNDECODABLE)) for event in events)
        read[UNDECODABLE] += undecodable
        set_aside = Tally(_kind(rejection) for rejection in rejections)
        whole = Tally(
            str(getattr(event, "kind", UNDECODABLE))
            for event in {id(r.event): r.event for r in rejections if r.event is not None}.values()
        )
        for kind, count in read.items():
            if count:
                self.consumed.labels(kind=kind).inc(count)
            if kind != UNDECODABLE and count - whole[kind] > 0:
                self.written.labels(kind=kind).inc(count - whole[kind])
        for kind, count in set_aside.items():
            self.dead_lettered.labels(kind=kind).inc(count)
        self.batch_size.observe(len(events) + undecodable)
        self.write_seconds.observe(write_seconds)

    def write_failed(self) -> None:
        """Counts a batch MLflow did not take."""
        self.write_failures.inc()

    def lag_unreadable(self, group: str) -> None:
        """Marks the group ERR: its offsets could not be read."""
        self.group_status.labels(group=group).state(LagStatus.ERR.value)

    def observe_lag(self, report: LagReport) -> None:
        """Sets the lag gauges and the group status from one lag report."""
        group = report.lag.group
        now = report.lag.sampled_at_ms
        for p in report.lag.partitions:
            labels = {"group": group, "topic": p.topic, "partition": str(p.partition)}
            # Counted from the log start where the group has committed nothing yet.
            self.lag_offsets.labels(**labels).set(p.lag)
            self.lag_seconds.labels(**labels).set(p.lag_seconds(now))
        for tenant in report.tenants_seen:
            self.tenant_lag_offsets.labels(group=group, tenant=tenant).set(0)
            self.tenant_lag_seconds.labels(group=group, tenant=tenant).set(0)
        for t in report.lag.tenants:
            self.tenant_lag_offsets.labels(group=group, tenant=t.tenant).set(t.lag)
            self.tenant_lag_seconds.labels(group=group, tenant=t.tenant).set(t.lag_seconds(now))
        self.group_status.labels(group=group).state(report.status.value)


def _kind(rejection: Rejection) -> str:
    """The kind of a rejected event; a decode failure has none, nor does a single metric
    point or tag MLflow refused (its event was otherwise written)."""
    if rejection.event is not None:
        return str(getattr(rejection.event, "kind", UNDECODABLE))
    return UNDECODABLE if rejection.source is not None else "item"
