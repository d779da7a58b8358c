"""Everything that writes run events: the SDK, its delivery path to Kafka, the spool.

Importing it loads no Kafka client: ``EventPublisher`` and ``PublisherStats`` (and
aiokafka with them) load when first named, the rest of the Kafka side with a
tracker's first run.
"""

from typing import TYPE_CHECKING, Any

from producers.delivery.report import DeliveryReport
from producers.errors import PublishError, RunStateError, SpoolBusyError, SpoolError
from producers.run import ActiveRun, RunMetrics
from producers.settings import ProducerSettings
from producers.telemetry import ProducerTelemetry
from producers.tracker import ExperimentTracker, RunConfig

if TYPE_CHECKING:
    from producers.delivery.kafka import EventPublisher, PublisherStats

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


def __getattr__(name: str) -> Any:
    if name in ("EventPublisher", "PublisherStats"):
        from producers.delivery import kafka  # noqa: PLC0415  (see the module's docstring)

        return getattr(kafka, name)
    raise AttributeError(f"module 'producers' has no attribute {name!r}")
