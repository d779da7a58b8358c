"""Producer metrics: send errors and the size of the local spool.

The publisher calls :meth:`ProducerMetrics.send_failed` when Kafka did not take a
record, and the spool sets :meth:`ProducerMetrics.spool_size` as it grows and
drains. A gateway exposes ``registry`` next to its own through
``ingest.telemetry.metrics_asgi_app``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["ProducerMetrics"]


class ProducerMetrics:
    """The ``matih_ingest_producer_*`` metrics, in a registry of their own.

    Args:
        registry: where to register; a new one when None.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
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
