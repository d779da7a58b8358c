"""Everything that writes run events: the SDK, its delivery path to Kafka, the spool."""

from producers.delivery.kafka import EventPublisher, PublisherStats
from producers.delivery.sender import DeliveryReport
from producers.errors import PublishError, RunStateError, SpoolBusyError, SpoolError
from producers.run import ActiveRun, RunMetrics
from producers.settings import ProducerSettings
from producers.telemetry import ProducerTelemetry
from producers.tracker import ExperimentTracker, RunConfig

__all__ = [
    "ActiveRun",
    "DeliveryReport",
    "EventPublisher",
    "ExperimentTracker",
    "ProducerSettings",
    "ProducerTelemetry",
    "PublishError",
    "PublisherStats",
    "RunConfig",
    "RunMetrics",
    "RunStateError",
    "SpoolBusyError",
    "SpoolError",
]
