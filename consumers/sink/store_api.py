"""The store-API write path: coalesced, idempotent writes through MLflow's own client
and store, for any store MLflow can open (``http://`` servers included).

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

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from consumers.batch import Rejection, RunWrites, param_conflict
from consumers.errors import SinkUnavailableError
from consumers.experiments import TenantExperiments
from consumers.runs import RunRegistry, RunState
from consumers.sink.refusals import refused
from ingest.errors import InvalidEventError
from ingest.events import EventEnvelope, MetricRow, MetricsEvent
from ingest.layout import MLFLOW_STATUS
from ingest.tracking.compat import tracking_store

_Item = Metric | Param | RunTag


class StoreApiWriter:
    """Writes coalesced batches through MLflow's store API, one ORM write per item.

    Args:
        client: the MLflow client of the store.
        experiments: the tenants' experiments.
    """

    path = "api"

    def __init__(self, client: MlflowClient, experiments: TenantExperiments) -> None:
        self._client = client
        self._registry = RunRegistry(client, experiments)
        self._store = tracking_store(client)

    def write(self, runs: list[RunWrites]) -> list[Rejection]:
        """Writes each run's part of a batch; returns what can never be written."""
        rejections: list[Rejection] = []
        for writes in runs:
            rejections.extend(writes.rejections)
            try:
                rejections.extend(self._write_run(writes))
            except InvalidEventError as exc:
                rejections.extend(writes.reject_all(str(exc)))
            except MlflowException as exc:
                if not refused(exc):
                    raise SinkUnavailableError(f"MLflow did not take the write: {exc}") from exc
                self._registry.forget(writes.tenant_id, writes.run_id)
                rejections.extend(writes.reject_all(f"MLflow rejected the run: {exc.message}"))
            except Exception as exc:
                raise SinkUnavailableError(f"the MLflow store failed: {exc!r}") from exc
        return rejections

    def _write_run(self, writes: RunWrites) -> list[Rejection]:
        state = self._registry.resolve(writes)
        writes.tags = writes.run_tags()
        rejections: list[Rejection] = []
        for metrics, params, tag_items in writes.chunks():
            items: list[_Item] = [_metric(point) for point in metrics]
            items += [Param(key, value) for key, value in params]
            items += [RunTag(key, value) for key, value in tag_items]
            rejections.extend(self._log(state, items, writes))
        if writes.ended is not None and not state.ended:
            end_time = max(writes.ended.end_time, state.start_time)
            self._client.set_terminated(
                state.mlflow_run_id,
                status=MLFLOW_STATUS[writes.ended.status],
                end_time=end_time,
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
            if not refused(exc):
                raise
            if len(items) == 1:
                return [self._reject(state, items[0], exc, writes)]
            middle = len(items) // 2
            return self._log(state, items[:middle], writes) + self._log(
                state, items[middle:], writes
            )
        return []

    def _reject(
        self, state: RunState, item: _Item, exc: MlflowException, writes: RunWrites
    ) -> Rejection:
        """The rejection of one item, pointing at the event (and record) that carried it;
        a param the run holds with another value is said as the bulk path says it."""
        if isinstance(item, Param):
            event, source = writes.sources.get(item.key, (None, None))
            stored = self._store.get_run(state.mlflow_run_id).data.params.get(item.key)
            if stored is not None and stored != item.value:
                return Rejection(param_conflict(item.key, stored, item.value), event, source)
            return Rejection(f"MLflow rejected param {item.key!r}: {exc.message}", event, source)
        return _reject(item, exc, writes)


def _metric(point: MetricRow) -> Metric:
    return Metric(point.key, point.value, point.timestamp, point.step)


def _reject(item: Metric | RunTag, exc: MlflowException, writes: RunWrites) -> Rejection:
    """The rejection of a metric or tag, pointing at the event (and record) that carried it."""
    if isinstance(item, Metric):
        what = f"metric {item.key!r} at step {item.step}"

        def carries(event: EventEnvelope) -> bool:
            return isinstance(event, MetricsEvent) and any(
                (p.key, p.step, p.timestamp) == (item.key, item.step, item.timestamp)
                for p in event.rows()
            )
    else:
        what = f"tag {item.key!r}"

        def carries(event: EventEnvelope) -> bool:
            return item.key in getattr(event, "tags", {})

    event, source = next(((e, s) for e, s in writes.events if carries(e)), (None, None))
    return Rejection(f"MLflow rejected {what}: {exc.message}", event, source)
