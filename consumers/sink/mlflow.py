"""The MLflow sink: coalesced, idempotent writes through MLflow's own client and store.

Per run and batch: find or create the run, then ``log_batch`` calls of at most
100 params / 100 tags / 1000 entities in all, then the end. Writes are idempotent, so a
redelivered batch changes nothing: MLflow ignores an identical metric row, a param
re-logged with its own value and a tag set again. A run that has ended is never
re-opened, and its end time is never before its start time.

When MLflow rejects a call as invalid, the call is split in halves until the
offending items are isolated and rejected; everything else is written. Any other
failure (store down, locked, slow) is raised as retriable and nothing is committed.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from mlflow.entities import Metric, Param, RunTag
from mlflow.entities import RunStatus as MlflowRunStatus
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    BAD_REQUEST,
    INVALID_PARAMETER_VALUE,
    INVALID_STATE,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)
from mlflow.tracking import MlflowClient

from consumers.batch import RecordRef, Rejection, RunWrites, coalesce
from consumers.errors import SinkUnavailableError
from consumers.runs import RunRegistry, RunState, creation_tags
from consumers.sink.base import BaseSink
from ingest.errors import InvalidEventError
from ingest.events import Event, EventEnvelope, MetricPoint, MetricsLogged
from ingest.layout import RUN_NAME_TAG
from ingest.settings import MlflowSettings

logger = logging.getLogger(__name__)

_INVALID = frozenset(
    ErrorCode.Name(code)
    for code in (
        INVALID_PARAMETER_VALUE,
        INVALID_STATE,
        RESOURCE_DOES_NOT_EXIST,
        RESOURCE_ALREADY_EXISTS,
        BAD_REQUEST,
    )
)
_STATUS = {
    "finished": MlflowRunStatus.to_string(MlflowRunStatus.FINISHED),
    "failed": MlflowRunStatus.to_string(MlflowRunStatus.FAILED),
    "killed": MlflowRunStatus.to_string(MlflowRunStatus.KILLED),
}

_Item = Metric | Param | RunTag


class MlflowSink(BaseSink):
    """Writes run events to an MLflow tracking store or server.

    Args:
        settings: the tracking URI and the artifact root of new experiments.
    """

    def __init__(self, settings: MlflowSettings) -> None:
        _prepare_local_store(settings.tracking_uri)
        self._client = MlflowClient(tracking_uri=settings.tracking_uri)
        # Opening a new SQL store migrates its schema; do it now, before anything else
        # (the UI, another worker) opens the same fresh store and races the migration.
        self._client.search_experiments(max_results=1)
        self._registry = RunRegistry(self._client, settings.artifact_root)
        # Batches go to MLflow's store API: the client's log_batch re-wraps every metric
        # (looking up an active model for each) and re-chunks, ~6% of a batch's time.
        self._store = self._client._tracking_client.store
        self._held: list[tuple[Event, RecordRef | None]] = []

    def add(self, event: Event, source: RecordRef | None = None) -> None:
        self._held.append((event, source))

    async def flush(self) -> list[Rejection]:
        held, self._held = self._held, []
        if not held:
            return []
        return await asyncio.to_thread(self._write, coalesce(held))

    def _write(self, runs: list[RunWrites]) -> list[Rejection]:
        rejections: list[Rejection] = []
        for writes in runs:
            rejections.extend(writes.rejections)
            try:
                rejections.extend(self._write_run(writes))
            except InvalidEventError as exc:
                rejections.extend(
                    Rejection(str(exc), event, source) for event, source in writes.events
                )
            except MlflowException as exc:
                if exc.error_code not in _INVALID:
                    raise SinkUnavailableError(f"MLflow did not take the write: {exc}") from exc
                self._registry.forget(writes.tenant_id, writes.run_id)
                rejections.extend(
                    Rejection(f"MLflow rejected the run: {exc.message}", event, source)
                    for event, source in writes.events
                )
            except Exception as exc:
                raise SinkUnavailableError(f"the MLflow store failed: {exc!r}") from exc
        return rejections

    def _write_run(self, writes: RunWrites) -> list[Rejection]:
        state = self._registry.resolve(writes)
        tags = dict(writes.tags)
        if writes.created is not None:
            # Idempotent: these are the creation tags again when this batch created the run,
            # and fill in name, user and description when metrics created it first.
            tags = {**creation_tags(writes.created), **tags}
            if writes.created.run_name is not None:
                tags[RUN_NAME_TAG] = writes.created.run_name
        writes.tags = tags
        rejections: list[Rejection] = []
        for metrics, params, tag_items in writes.chunks():
            items: list[_Item] = [_metric(point) for point in metrics]
            items += [Param(key, value) for key, value in params]
            items += [RunTag(key, value) for key, value in tag_items]
            rejections.extend(self._log(state, items, writes))
        if writes.ended is not None and not state.ended:
            end_time = max(writes.ended.end_time, state.start_time)
            self._client.set_terminated(
                state.mlflow_run_id, status=_STATUS[writes.ended.status.value], end_time=end_time
            )
            state.ended = True
        return rejections

    def _log(self, state: RunState, items: list[_Item], writes: RunWrites) -> list[Rejection]:
        if not items:
            return []
        try:
            self._store.log_batch(
                run_id=state.mlflow_run_id,
                metrics=[i for i in items if isinstance(i, Metric)],
                params=[i for i in items if isinstance(i, Param)],
                tags=[i for i in items if isinstance(i, RunTag)],
            )
        except MlflowException as exc:
            if exc.error_code not in _INVALID:
                raise
            if len(items) == 1:
                return [_reject(items[0], exc, writes)]
            middle = len(items) // 2
            return self._log(state, items[:middle], writes) + self._log(
                state, items[middle:], writes
            )
        return []


def _metric(point: MetricPoint) -> Metric:
    return Metric(point.key, point.value, point.timestamp, point.step)


def _reject(item: _Item, exc: MlflowException, writes: RunWrites) -> Rejection:
    """The rejection of one item, pointing at the event (and record) that carried it."""
    if isinstance(item, Param):
        event, source = writes.sources.get(item.key, (None, None))
        return Rejection(f"MLflow rejected param {item.key!r}: {exc.message}", event, source)
    if isinstance(item, Metric):
        what = f"metric {item.key!r} at step {item.step}"

        def carries(event: EventEnvelope) -> bool:
            return isinstance(event, MetricsLogged) and any(
                (p.key, p.step, p.timestamp) == (item.key, item.step, item.timestamp)
                for p in event.metrics
            )
    else:
        what = f"tag {item.key!r}"

        def carries(event: EventEnvelope) -> bool:
            return item.key in getattr(event, "tags", {})

    event, source = next(((e, s) for e, s in writes.events if carries(e)), (None, None))
    return Rejection(f"MLflow rejected {what}: {exc.message}", event, source)


def _prepare_local_store(tracking_uri: str) -> None:
    """Creates the folder of a sqlite store, which SQLAlchemy will not do."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix):
        Path(tracking_uri.removeprefix(prefix)).parent.mkdir(parents=True, exist_ok=True)
