"""Everything that reads run events: the worker, batching, sinks, replay, lag and metrics."""

from consumers.app import build_worker
from consumers.batch import RecordRef, Rejection, RunWrites, coalesce
from consumers.errors import SinkUnavailableError
from consumers.handler import BatchHandler
from consumers.lag import GroupLag, LagMonitor, PartitionLag, TenantLag
from consumers.lag_status import LagStatus, StatusRules
from consumers.lag_watch import LagReport, LagWatcher
from consumers.replay import Replayer, ReplayPlan, ReplaySummary
from consumers.settings import ConsumerSettings
from consumers.sink import BaseSink, ListSink, MlflowSink
from consumers.telemetry import WorkerTelemetry

__all__ = [
    "BaseSink",
    "BatchHandler",
    "ConsumerSettings",
    "GroupLag",
    "LagMonitor",
    "LagReport",
    "LagStatus",
    "LagWatcher",
    "ListSink",
    "MlflowSink",
    "PartitionLag",
    "RecordRef",
    "Rejection",
    "ReplayPlan",
    "ReplaySummary",
    "Replayer",
    "RunWrites",
    "SinkUnavailableError",
    "StatusRules",
    "TenantLag",
    "WorkerTelemetry",
    "build_worker",
    "coalesce",
]
