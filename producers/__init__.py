"""Everything that writes run events: the SDK, the async Kafka publisher, the spool."""

from producers.errors import PublishError, RunStateError, SpoolBusyError, SpoolError
from producers.publisher import EventPublisher, PublisherStats
from producers.run import ActiveRun, RunMetrics
from producers.sender import DeliveryReport
from producers.settings import ProducerSettings
from producers.telemetry import ProducerMetrics
from producers.tracker import ExperimentTracker, RunConfig

__all__ = [
    "ActiveRun",
    "DeliveryReport",
    "EventPublisher",
    "ExperimentTracker",
    "ProducerMetrics",
    "ProducerSettings",
    "PublishError",
    "PublisherStats",
    "RunConfig",
    "RunMetrics",
    "RunStateError",
    "SpoolBusyError",
    "SpoolError",
]
