"""The worker's telemetry: what it read, wrote and set aside, where the time went, and lag.

One object per worker, kept in Prometheus collectors only: the batch handler calls
:meth:`WorkerTelemetry.batch_written` once per written batch and
:meth:`WorkerTelemetry.write_failed` per failed write; a :class:`LagWatcher`'s
reports go to :meth:`WorkerTelemetry.observe_lag`. The read-only totals (``consumed``,
``rejected``, ...) and the shutdown :meth:`~WorkerTelemetry.summary` read the same
collectors, so no figure is counted twice. Everything is named ``matih_ingest_*`` and
kept in a registry of the worker's own.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from consumers.batch import Rejection
from consumers.lag_status import LagStatus
from consumers.lag_watch import LagReport
from ingest.events import EventEnvelope, MetricsEvent

__all__ = ["WorkerTelemetry"]

UNDECODABLE = "undecodable"
_BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
_WRITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class WorkerTelemetry:
    """The telemetry of one worker.

    Args:
        registry: where to register; a new one when None.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self._consumed = Counter(
            "matih_ingest_events_consumed",
            "Records read from Kafka, by event kind.",
            ["kind"],
            registry=r,
        )
        self._written = Counter(
            "matih_ingest_events_written",
            "Events written to MLflow and committed, by kind.",
            ["kind"],
            registry=r,
        )
        self._dead_lettered = Counter(
            "matih_ingest_events_dead_lettered",
            "Events (or parts of one) that can never be written, set aside, by kind.",
            ["kind"],
            registry=r,
        )
        self._write_failures = Counter(
            "matih_ingest_write_failures",
            "Batches MLflow did not take; each is read again.",
            registry=r,
        )
        self._points_written = Counter(
            "matih_ingest_metric_points_written",
            "Metric points written to MLflow and committed.",
            registry=r,
        )
        self._decode_cpu_seconds = Counter(
            "matih_ingest_decode_cpu_seconds",
            "CPU time spent reading records into events (the store's time is in"
            " matih_ingest_mlflow_write_seconds_sum).",
            registry=r,
        )
        self._batch_size = Histogram(
            "matih_ingest_batch_size",
            "Records per committed batch.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self._write_seconds = Histogram(
            "matih_ingest_mlflow_write_seconds",
            "Time to write one batch to MLflow (the sink's flush).",
            buckets=_WRITE_BUCKETS,
            registry=r,
        )
        where = ["group", "topic", "partition"]
        self._lag_offsets = Gauge(
            "matih_ingest_consumer_lag_offsets",
            "Records not yet committed, per partition (from the log start without a commit).",
            where,
            registry=r,
        )
        self._lag_seconds = Gauge(
            "matih_ingest_consumer_lag_seconds",
            "Age of the oldest unconsumed record, per partition.",
            where,
            registry=r,
        )
        self._tenant_lag_offsets = Gauge(
            "matih_ingest_tenant_lag_offsets",
            "Records of a tenant not yet committed.",
            ["group", "tenant"],
            registry=r,
        )
        self._tenant_lag_seconds = Gauge(
            "matih_ingest_tenant_lag_seconds",
            "Age of a tenant's oldest unconsumed record.",
            ["group", "tenant"],
            registry=r,
        )
        self._group_status = Enum(
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
        decode_cpu_seconds: float,
        write_seconds: float,
    ) -> None:
        """Counts one written batch: what was read, written and set aside, the CPU time
        decoding took, and how long MLflow (and the dead letters) took."""
        read = Tally(str(getattr(event, "kind", UNDECODABLE)) for event in events)
        read[UNDECODABLE] += undecodable
        set_aside = Tally(_kind(rejection) for rejection in rejections)
        whole = Tally(
            str(getattr(event, "kind", UNDECODABLE))
            for event in {id(r.event): r.event for r in rejections if r.event is not None}.values()
        )
        for kind, count in read.items():
            if count:
                self._consumed.labels(kind=kind).inc(count)
            if kind != UNDECODABLE and count - whole[kind] > 0:
                self._written.labels(kind=kind).inc(count - whole[kind])
        for kind, count in set_aside.items():
            self._dead_lettered.labels(kind=kind).inc(count)
        refused = {id(r.event) for r in rejections if r.event is not None}
        self._points_written.inc(
            sum(
                e.point_count
                for e in events
                if isinstance(e, MetricsEvent) and id(e) not in refused
            )
        )
        self._decode_cpu_seconds.inc(decode_cpu_seconds)
        self._batch_size.observe(len(events) + undecodable)
        self._write_seconds.observe(write_seconds)

    def write_failed(self) -> None:
        """Counts a batch MLflow did not take."""
        self._write_failures.inc()

    @property
    def batches(self) -> int:
        """Batches written."""
        return int(_total(self._batch_size, "_count"))

    @property
    def consumed(self) -> int:
        """Records read, events or not."""
        return int(_total(self._consumed))

    @property
    def rejected(self) -> int:
        """Events, records and items set aside as never writable."""
        return int(_total(self._dead_lettered))

    @property
    def rejected_by_kind(self) -> Tally[str]:
        """``rejected`` by event kind (``undecodable``, ``item``: see the dead-letter counter)."""
        return Tally(
            {
                sample.labels["kind"]: int(sample.value)
                for family in self._dead_lettered.collect()
                for sample in family.samples
                if sample.name.endswith("_total")
            }
        )

    @property
    def retries(self) -> int:
        """Writes that failed and were tried again."""
        return int(_total(self._write_failures))

    def summary(self, process_cpu_s: float) -> str:
        """One line for the log at shutdown: what was written, and where the time went per
        metric point (the worker's own CPU, of which decoding, and the store's wall time),
        so that capacity can be planned from it."""
        points = _total(self._points_written)
        line = (
            f"{self.consumed} records, {points:.0f} metric points in {self.batches} writes,"
            f" {self.rejected} rejected, {self.retries} retried"
        )
        if points:
            per_point = 1e6 / points
            decoding = _total(self._decode_cpu_seconds) * per_point
            store = _total(self._write_seconds, "_sum") * per_point
            line += (
                f"; per point: worker CPU {process_cpu_s * per_point:.1f} µs"
                f" (decoding {decoding:.1f} µs), store {store:.1f} µs"
            )
        return line

    def lag_unreadable(self, group: str) -> None:
        """Marks the group ERR: its offsets could not be read."""
        self._group_status.labels(group=group).state(LagStatus.ERR.value)

    def observe_lag(self, report: LagReport) -> None:
        """Sets the lag gauges and the group status from one lag report."""
        group = report.lag.group
        now = report.lag.sampled_at_ms
        for p in report.lag.partitions:
            labels = {"group": group, "topic": p.topic, "partition": str(p.partition)}
            # Counted from the log start where the group has committed nothing yet.
            self._lag_offsets.labels(**labels).set(p.lag)
            self._lag_seconds.labels(**labels).set(p.lag_seconds(now))
        for tenant in report.tenants_seen:
            self._tenant_lag_offsets.labels(group=group, tenant=tenant).set(0)
            self._tenant_lag_seconds.labels(group=group, tenant=tenant).set(0)
        for t in report.lag.tenants:
            self._tenant_lag_offsets.labels(group=group, tenant=t.tenant).set(t.lag)
            self._tenant_lag_seconds.labels(group=group, tenant=t.tenant).set(t.lag_seconds(now))
        self._group_status.labels(group=group).state(report.status.value)


def _kind(rejection: Rejection) -> str:
    """The kind of a rejected event; a decode failure has none, nor does a single metric
    point or tag MLflow refused (its event was otherwise written)."""
    if rejection.event is not None:
        return str(getattr(rejection.event, "kind", UNDECODABLE))
    return UNDECODABLE if rejection.source is not None else "item"


def _total(metric: MetricWrapperBase, suffix: str = "_total") -> float:
    """The sum of a collector's ``suffix`` samples over all its labels."""
    return sum(
        sample.value
        for family in metric.collect()
        for sample in family.samples
        if sample.name.endswith(suffix)
    )
