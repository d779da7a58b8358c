"""The bulk write path: one batch, one transaction of set-based statements straight into
MLflow's SQL schema (sqlite, PostgreSQL).

MLflow's ORM costs 50-90 µs a point; a few multi-row statements cost a few. Every
rule is MLflow's own, read from ``SqlAlchemyStore`` (MLflow 3.17) and proven equal
by a differential test against the store-API path:

- runs are created as ``create_run`` creates them (a random name when none is given,
  the user from the ``mlflow.user`` tag, else "unknown"), with the producer's run id as
  MLflow's run id, so that one id names the run everywhere;
- a metric row is stored sanitised (NaN as 0 flagged ``is_nan``, ±inf as ±max float);
  an identical row is ignored (``_log_metrics``' duplicate recovery);
- the latest value of a key is replaced only by a point strictly greater in
  (step, timestamp, value), the first of equals kept
  (``_update_latest_metrics_if_necessary``);
- params are write-once: the same value again is nothing, another value is refused
  (``_log_params``);
- tags are upserted, and ``mlflow.runName`` renames the run (``set_tag``);
- a run is ended once, never before its start, and never re-opened.

A batch is written whole or not at all. What the database refuses as data (the
contract should have caught it) is isolated by halving the batch until the one event
is found and rejected; the rest is written. Any other failure is raised as
retriable, and nothing of the batch is committed.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy
from mlflow.entities import Experiment, LifecycleStage, SourceType
from mlflow.exceptions import MlflowException
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.utils.uri import append_to_uri_path
from sqlalchemy import and_, bindparam, select, tuple_

from consumers.batch import Rejection, RunWrites, coalesce, param_conflict
from consumers.errors import SinkUnavailableError
from consumers.experiments import TenantExperiments
from consumers.runs import experiment_name
from consumers.sink.dialects import METRIC_COLUMNS, metric_rows_writer, upsert_for
from consumers.sink.refusals import refused
from consumers.sink.schema import LATEST_METRICS, PARAMS, RUNS, TAGS
from ingest.errors import InvalidEventError
from ingest.events import RunStatus
from ingest.layout import MLFLOW_STATUS, RUN_ID_TAG, RUN_NAME_TAG, TENANT_TAG, USER_TAG
from ingest.tracking.compat import random_run_name

_RUNNING = MLFLOW_STATUS[RunStatus.RUNNING]
_ACTIVE = LifecycleStage.ACTIVE
_MAX_FLOAT = sys.float_info.max
_POISON = (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.DataError)

_RunKey = tuple[str, str]
"""(tenant, producer run id)."""


class BulkSqlWriter:
    """Writes coalesced batches into MLflow's tables, one transaction per batch.

    Args:
        engine: the store's database, at a schema revision the bulk path knows.
        experiments: the tenants' experiments (created through MLflow's client).
    """

    path = "bulk"

    def __init__(self, engine: sqlalchemy.Engine, experiments: TenantExperiments) -> None:
        self._engine = engine
        self._experiments = experiments
        self._insert = upsert_for(engine)
        self._insert_metric_rows = metric_rows_writer(engine)
        upsert = self._insert(LATEST_METRICS)
        new = upsert.excluded
        self._upsert_latest = upsert.on_conflict_do_update(
            index_elements=[LATEST_METRICS.c.key, LATEST_METRICS.c.run_uuid],
            set_={
                "value": new.value,
                "timestamp": new.timestamp,
                "step": new.step,
                "is_nan": new.is_nan,
            },
            # MLflow's rule: strictly more recent in (step, timestamp, value), else kept.
            where=tuple_(new.step, new.timestamp, new.value)
            > tuple_(LATEST_METRICS.c.step, LATEST_METRICS.c.timestamp, LATEST_METRICS.c.value),
        )
        self._ids: dict[_RunKey, str] = {}
        """Per producer run, its MLflow run id (known to exist)."""

    def write(self, runs: list[RunWrites]) -> list[Rejection]:
        """Writes a batch; returns what can never be written.

        Raises:
            SinkUnavailableError: the store did not take the write; nothing was committed.
        """
        try:
            return self._write_isolating(runs)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise SinkUnavailableError(f"the MLflow store failed: {exc}") from exc

    def _write_isolating(self, runs: list[RunWrites]) -> list[Rejection]:
        try:
            return self._write(runs)
        except _POISON as exc:
            if len(runs) > 1:
                return [r for writes in runs for r in self._write_isolating([writes])]
            (writes,) = runs
            if len(writes.events) == 1:
                reason = f"the MLflow store refused the event: {exc.orig}"
                return writes.reject_all(reason)
            middle = len(writes.events) // 2
            return self._write_isolating(coalesce(writes.events[:middle])) + (
                self._write_isolating(coalesce(writes.events[middle:]))
            )

    def _write(self, runs: list[RunWrites]) -> list[Rejection]:
        rejections = [r for writes in runs for r in writes.rejections]
        self._find([w for w in runs if _key(w) not in self._ids])
        ids: dict[_RunKey, str] = {}
        creating: list[tuple[RunWrites, Experiment]] = []
        for writes in runs:
            key = _key(writes)
            if key in self._ids:
                ids[key] = self._ids[key]
                continue
            try:
                experiment = self._experiment(writes)
            except InvalidEventError as exc:
                rejections += writes.reject_all(str(exc))
                continue
            except MlflowException as exc:
                if not refused(exc):
                    raise SinkUnavailableError(f"MLflow did not take the write: {exc}") from exc
                rejections += writes.reject_all(f"MLflow refused the experiment: {exc.message}")
                continue
            ids[key] = writes.run_id
            creating.append((writes, experiment))
        writable = [w for w in runs if _key(w) in ids]
        # Rows are built before the transaction, which then only runs statements: on sqlite
        # another worker's write waits for the lock only as long as the database works.
        metric_rows = {_key(w): _metric_rows(w, ids[_key(w)]) for w in writable}
        with self._engine.begin() as connection:
            found = _runs(connection, ids.values())
            creating = [(w, e) for w, e in creating if w.run_id not in found]
            self._create_runs(connection, creating)
            found.update(_runs(connection, [w.run_id for w, _ in creating]))
            for writes in list(writable):
                reason = _unwritable(writes, found.get(ids[_key(writes)]))
                if reason is not None:
                    self._ids.pop(_key(writes), None)
                    rejections += writes.reject_all(reason)
                    writable.remove(writes)
            rejections += self._write_params(connection, writable, ids)
            self._write_metrics(connection, [metric_rows[_key(w)] for w in writable])
            self._write_tags(connection, writable, ids)
            self._end_runs(connection, writable, ids, found)
        self._ids.update((_key(w), ids[_key(w)]) for w in writable)
        return rejections

    def _find(self, runs: list[RunWrites]) -> None:
        """Caches the MLflow ids of the runs that exist: created here under the producer's
        id, or by the store-API path under an id of MLflow's with the producer's in a tag."""
        if not runs:
            return
        wanted = {w.run_id: w.tenant_id for w in runs}
        run_tag, tenant_tag = TAGS.alias(), TAGS.alias()
        owned = (
            select(run_tag.c.value, run_tag.c.run_uuid)
            .join(
                tenant_tag,
                and_(tenant_tag.c.run_uuid == run_tag.c.run_uuid, tenant_tag.c.key == TENANT_TAG),
            )
            .join(RUNS, RUNS.c.run_uuid == run_tag.c.run_uuid)
            .where(
                run_tag.c.key == RUN_ID_TAG,
                run_tag.c.value.in_(list(wanted)),
                tenant_tag.c.value == bindparam("tenant"),
                RUNS.c.lifecycle_stage == _ACTIVE,
            )
        )
        with self._engine.connect() as connection:
            for tenant in set(wanted.values()):
                for run_id, mlflow_run_id in connection.execute(owned, {"tenant": tenant}):
                    if wanted.get(run_id) == tenant:
                        self._ids[(tenant, run_id)] = mlflow_run_id

    def _experiment(self, writes: RunWrites) -> Experiment:
        """The experiment a new run goes to.

        Raises:
            InvalidEventError: no event names it, or it was deleted.
        """
        experiment = self._experiments.resolve(writes.tenant_id, experiment_name(writes))
        if experiment.lifecycle_stage != _ACTIVE:
            raise InvalidEventError(
                f"experiment {writes.experiment_name!r} of tenant {writes.tenant_id} is deleted"
                " in MLflow; restore it to write its runs"
            )
        return experiment

    def _create_runs(
        self, connection: sqlalchemy.Connection, creating: list[tuple[RunWrites, Experiment]]
    ) -> None:
        """Creates runs as MLflow's ``create_run`` does, under the producer's run ids."""
        if not creating:
            return
        runs, tags = [], []
        for writes, experiment in creating:
            run_tags = writes.run_tags()
            name = run_tags.get(RUN_NAME_TAG) or random_run_name()
            runs.append(
                {
                    "run_uuid": writes.run_id,
                    "name": name,
                    "artifact_uri": append_to_uri_path(  # type: ignore[no-untyped-call]
                        experiment.artifact_location,
                        writes.run_id,
                        SqlAlchemyStore.ARTIFACTS_FOLDER_NAME,
                    ),
                    "experiment_id": int(experiment.experiment_id),
                    "source_type": SourceType.to_string(SourceType.UNKNOWN),
                    "source_name": "",
                    "entry_point_name": "",
                    "user_id": run_tags.get(USER_TAG, "unknown"),
                    "status": _RUNNING,
                    "start_time": writes.start_time(),
                    "end_time": None,
                    "deleted_time": None,
                    "source_version": "",
                    "lifecycle_stage": _ACTIVE,
                }
            )
            mapping = {RUN_ID_TAG: writes.run_id, TENANT_TAG: writes.tenant_id, RUN_NAME_TAG: name}
            tags += [{"run_uuid": writes.run_id, "key": k, "value": v} for k, v in mapping.items()]
        # Another worker may create the same run meanwhile (a rebalance): its rows are the same.
        connection.execute(self._insert(RUNS).on_conflict_do_nothing(), runs)
        connection.execute(self._insert(TAGS).on_conflict_do_nothing(), tags)

    def _write_params(
        self, connection: sqlalchemy.Connection, runs: list[RunWrites], ids: dict[_RunKey, str]
    ) -> list[Rejection]:
        wanted = {(ids[_key(w)], key): (w, value) for w in runs for key, value in w.params.items()}
        if not wanted:
            return []
        stored = connection.execute(
            select(PARAMS.c.run_uuid, PARAMS.c.key, PARAMS.c.value).where(
                PARAMS.c.run_uuid.in_({run for run, _ in wanted}),
                PARAMS.c.key.in_({key for _, key in wanted}),
            )
        )
        rejections = []
        for run_uuid, key, value in stored:
            writes, new = wanted.pop((run_uuid, key), (None, value))
            if writes is not None and new != value:
                event, source = writes.sources[key]
                rejections.append(Rejection(param_conflict(key, value, new), event, source))
        if wanted:
            rows = [{"run_uuid": r, "key": k, "value": v} for (r, k), (_, v) in wanted.items()]
            connection.execute(self._insert(PARAMS).on_conflict_do_nothing(), rows)
        return rejections

    def _write_metrics(self, connection: sqlalchemy.Connection, rows: list[_MetricRows]) -> None:
        if not any(r.latest for r in rows):
            return
        columns: list[list[Any]] = [[] for _ in METRIC_COLUMNS]
        for run in rows:
            for column, values in zip(columns, run.columns, strict=True):
                column.extend(values)
        self._insert_metric_rows(connection, columns)
        connection.execute(self._upsert_latest, [latest for run in rows for latest in run.latest])

    def _write_tags(
        self, connection: sqlalchemy.Connection, runs: list[RunWrites], ids: dict[_RunKey, str]
    ) -> None:
        rows = [
            {"run_uuid": ids[_key(w)], "key": key, "value": value}
            for w in runs
            for key, value in w.run_tags().items()
        ]
        self._upsert_tags(connection, rows)

    def _upsert_tags(self, connection: sqlalchemy.Connection, rows: list[dict[str, str]]) -> None:
        if not rows:
            return
        upsert = self._insert(TAGS)
        connection.execute(
            upsert.on_conflict_do_update(
                index_elements=[TAGS.c.key, TAGS.c.run_uuid], set_={"value": upsert.excluded.value}
            ),
            rows,
        )
        names = [
            {"id": r["run_uuid"], "name": r["value"]} for r in rows if r["key"] == RUN_NAME_TAG
        ]
        if names:
            connection.execute(
                RUNS.update()
                .where(RUNS.c.run_uuid == bindparam("id"))
                .values(name=bindparam("name")),
                names,
            )

    def _end_runs(
        self,
        connection: sqlalchemy.Connection,
        runs: list[RunWrites],
        ids: dict[_RunKey, str],
        found: dict[str, sqlalchemy.Row[Any]],
    ) -> None:
        ends = []
        for writes in runs:
            run = found[ids[_key(writes)]]
            if writes.ended is not None and run.status == _RUNNING:
                ends.append(
                    {
                        "id": run.run_uuid,
                        "status": MLFLOW_STATUS[writes.ended.status],
                        "end_time": max(writes.ended.end_time, run.start_time or 0),
                    }
                )
        if ends:
            connection.execute(
                RUNS.update()
                .where(RUNS.c.run_uuid == bindparam("id"), RUNS.c.status == _RUNNING)
                .values(status=bindparam("status"), end_time=bindparam("end_time")),
                ends,
            )


@dataclass
class _MetricRows:
    """One run's metric rows, one list per column, and its latest value per key."""

    columns: list[list[Any]]
    latest: list[dict[str, Any]]


def _metric_rows(writes: RunWrites, run_uuid: str) -> _MetricRows:
    """The rows MLflow stores for the run's points: values sanitised, and per key the
    point strictly greatest in (step, timestamp, value), the first of equals kept."""
    keys, values, timestamps, steps, nans = [], [], [], [], []
    latest: dict[str, tuple[int, int, float, bool]] = {}
    for point in writes.metrics:
        is_nan, value = _sanitized(point.value)
        keys.append(point.key)
        values.append(value)
        timestamps.append(point.timestamp)
        steps.append(point.step)
        nans.append(is_nan)
        candidate = (point.step, point.timestamp, value, is_nan)
        best = latest.get(point.key)
        if best is None or candidate[:3] > best[:3]:
            latest[point.key] = candidate
    return _MetricRows(
        [keys, values, timestamps, steps, nans, [run_uuid] * len(keys)],
        [
            {"run_uuid": run_uuid, "key": k, "step": s, "timestamp": t, "value": v, "is_nan": n}
            for k, (s, t, v, n) in latest.items()
        ],
    )


def _key(writes: RunWrites) -> _RunKey:
    return (writes.tenant_id, writes.run_id)


def _runs(connection: sqlalchemy.Connection, ids: Iterable[str]) -> dict[str, Any]:
    """The runs' rows and tenants, by MLflow run id, read inside the batch's transaction."""
    wanted = set(ids)
    if not wanted:
        return {}
    query = (
        select(
            RUNS.c.run_uuid,
            RUNS.c.status,
            RUNS.c.start_time,
            RUNS.c.lifecycle_stage,
            TAGS.c.value.label("tenant"),
        )
        .outerjoin(TAGS, and_(TAGS.c.run_uuid == RUNS.c.run_uuid, TAGS.c.key == TENANT_TAG))
        .where(RUNS.c.run_uuid.in_(wanted))
    )
    return {row.run_uuid: row for row in connection.execute(query)}


def _unwritable(writes: RunWrites, run: Any) -> str | None:
    """Why nothing can be written to the run, as MLflow would refuse it; None if it can."""
    if run is None:
        return f"run {writes.run_id} of tenant {writes.tenant_id} was removed from MLflow"
    if run.tenant != writes.tenant_id:
        return (
            f"run id {writes.run_id} already names a run of another tenant in MLflow;"
            f" tenant {writes.tenant_id} cannot write to it"
        )
    if run.lifecycle_stage != _ACTIVE:
        return (
            f"run {writes.run_id} of tenant {writes.tenant_id} is deleted in MLflow;"
            " restore it to write to it"
        )
    return None


def _sanitized(value: float) -> tuple[bool, float]:
    """(is_nan, value) as MLflow stores a metric value (``sanitize_metric_value``)."""
    if math.isnan(value):
        return True, 0.0
    if math.isinf(value):
        return False, _MAX_FLOAT if value > 0 else -_MAX_FLOAT
    return False, value
