"""Everything that reads run events: the worker, batching, sinks."""

from consumers.app import build_worker
from consumers.batch import RecordRef, Rejection, RunWrites, coalesce
from consumers.errors import SinkUnavailableError
from consumers.handler import BatchHandler
from consumers.settings import ConsumerSettings
from consumers.sink import BaseSink, ListSink, MlflowSink
from consumers.stats import WorkerStats

__all__ = [
    "BaseSink",
    "BatchHandler",
    "ConsumerSettings",
    "ListSink",
    "MlflowSink",
    "RecordRef",
    "Rejection",
    "RunWrites",
    "SinkUnavailableError",
    "WorkerStats",
    "build_worker",
    "coalesce",
]
