"""Everything that writes run events: the SDK and the async Kafka publisher."""

from producers.errors import PublishError, RunStateError
from producers.metrics import ProducerMetrics
from producers.publisher import EventPublisher, PublisherStats
from producers.run import ActiveRun, RunMetrics
from producers.sender import DeliveryReport
from producers.settings import ProducerSettings
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
]
