"""Producer metrics: send errors and the size of the local spool.

The publisher calls :meth:`ProducerTelemetry.send_failed` when Kafka did not take a
record, and the spool sets :meth:`ProducerTelemetry.spool_size` as it grows and
drains. A gateway exposes ``registry`` next to its own through
``ingest.telemetry.metrics_asgi_app``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["ProducerTelemetry", "TelemetrySink", "warn_again"]


class TelemetrySink(Protocol):
    """What the delivery path reports to: a ``ProducerTelemetry``, or, in a sender
    process, the relay that takes its counts to the trainer's."""

    def sent(self, kind: str, count: int = 1) -> None: ...

    def send_failed(self, kind: str, reason: str, count: int = 1) -> None: ...

    def spool_size(self, events: int, size_bytes: int) -> None: ...

    def back_pressure(
        self, memory_bytes: int, spilled_points: int, dropped_points: int
    ) -> None: ...


def warn_again(before: int, after: int) -> bool:
    """Whether a count of dropped points that went from ``before`` to ``after`` is worth
    a warning: at the first drop, then each time it passes a power of ten, so that a
    long overload logs a few lines, not one per batch."""
    if after <= before:
        return False
    return before == 0 or len(str(before)) != len(str(after))


class ProducerTelemetry:
    """The ``matih_ingest_producer_*`` metrics, in a registry of their own.

    Args:
        registry: where to register; a new one when None.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # Loaded by whoever wants the metrics: a trainer that never does pays nothing
        # for prometheus_client at ``import producers``.
        from prometheus_client import CollectorRegistry, Counter, Gauge  # noqa: PLC0415

        self.registry = registry or CollectorRegistry()
        self._sent = Counter(
            "matih_ingest_producer_events_sent",
            "Events Kafka acknowledged, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self._errors = Counter(
            "matih_ingest_producer_send_errors",
            "Events Kafka did not take (queueing failed or not acknowledged), by kind and reason.",
            ["kind", "reason"],
            registry=self.registry,
        )
        self._spool_events = Gauge(
            "matih_ingest_producer_spool_events",
            "Events held in the local spool while Kafka is unreachable.",
            registry=self.registry,
        )
        self._spool_bytes = Gauge(
            "matih_ingest_producer_spool_bytes",
            "Bytes the local spool takes on disk.",
            registry=self.registry,
        )
        self._memory = Gauge(
            "matih_ingest_producer_memory_bytes",
            "Bytes the SDK holds in memory: logging calls, encoded records waiting and in"
            " flight (bounded by MATIH_PRODUCER_MEMORY_BYTES).",
            registry=self.registry,
        )
        self._spilled = Counter(
            "matih_ingest_producer_spilled_points",
            "Metric points written to the spool (memory full, or Kafka out of reach).",
            registry=self.registry,
        )
        self._dropped = Counter(
            "matih_ingest_producer_dropped_points",
            "Metric points dropped (spool full, disk refusing, or the sender starved of CPU).",
            registry=self.registry,
        )
        self._points_seen = (0, 0)

    def sent(self, kind: str, count: int = 1) -> None:
        """Counts events Kafka acknowledged."""
        self._sent.labels(kind=kind).inc(count)

    def send_failed(self, kind: str, reason: str, count: int = 1) -> None:
        """Counts events Kafka did not take; ``reason`` is a short class name (``timeout``,
        ``KafkaConnectionError``), never a message, to keep label values few."""
        self._errors.labels(kind=kind, reason=reason).inc(count)

    def spool_size(self, events: int, size_bytes: int) -> None:
        """Sets the spool's current size."""
        self._spool_events.set(events)
        self._spool_bytes.set(size_bytes)

    def back_pressure(self, memory_bytes: int, spilled_points: int, dropped_points: int) -> None:
        """Sets the memory held, and counts the points spilled and dropped since the last
        call (given as totals so far)."""
        self._memory.set(memory_bytes)
        spilled, dropped = self._points_seen
        self._spilled.inc(max(spilled_points - spilled, 0))
        self._dropped.inc(max(dropped_points - dropped, 0))
        self._points_seen = (max(spilled_points, spilled), max(dropped_points, dropped))
