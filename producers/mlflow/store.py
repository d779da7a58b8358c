"""``MatihStore``: MLflow's tracking store for ``matih://`` URIs.

    export MLFLOW_TRACKING_URI='matih://kafka-1:9092,kafka-2:9092?tenant=acme-corp'

Writes (runs, metrics, params, tags, ends) go through the SDK: validated at the call,
buffered, and published to Kafka by its background sender, spooled to disk while Kafka
is away; a logging call never waits on Kafka or MLflow. Reads (runs, searches, metric
histories, experiments) come from the store the workers write
(``MATIH_MLFLOW_TRACKING_URI``); for a run this process wrote, a read first waits for the
workers (read-your-writes, as the SDK's reads). Calls outside that (traces, logged
models, datasets, deletes, ...) raise an ``MlflowException`` naming the call; inside
autologging, its models and datasets are left out with one warning
(``producers.mlflow.autolog``).

Runs keep the producer's id everywhere (``run.info.run_id``, the workers' MLflow run,
the gateway). Experiment ids are derived from tenant and name (``ExperimentCatalog``),
since an experiment exists in MLflow only once the workers wrote its first run.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from mlflow.entities import Experiment, Metric, Param, Run, RunInfo, RunTag, ViewType
from mlflow.entities import RunStatus as MlflowRunStatus
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
)
from mlflow.store.entities import PagedList
from mlflow.store.tracking import SEARCH_MAX_RESULTS_DEFAULT
from mlflow.store.tracking.abstract_store import AbstractStore

from ingest.errors import IngestError
from ingest.events import TERMINAL_STATUSES, RunStatus
from ingest.ids import new_run_id
from ingest.layout import (
    RUN_NAME_TAG,
    TENANT_TAG,
    USER_TAG,
    tenant_filter,
)
from ingest.layout import (
    run_status as spec_status,
)
from ingest.tracking.compat import prime_artifact_repository, random_run_name
from producers.mlflow.artifacts import ClaimCheckRepository, claim_check_uri, discard_staged
from producers.mlflow.autolog import AutologGuard
from producers.mlflow.errors import errors_as_mlflow
from producers.mlflow.experiments import ExperimentCatalog
from producers.mlflow.runs import new_run, run_view
from producers.mlflow.unsupported import refuse_unsupported, unsupported_call
from producers.mlflow.uri import SCHEME, plugin_settings
from producers.run import ActiveRun
from producers.settings import ProducerSettings
from producers.tracker import ExperimentTracker, RunConfig

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from ingest.tracking.reader import RunReader


@dataclass
class _Written:
    """A run this store started: its SDK handle and what MLflow would answer for it."""

    handle: ActiveRun
    run: Run


@refuse_unsupported
class MatihStore(AbstractStore):
    """The tracking store MLflow builds for a ``matih://`` URI (its entry point's target).

    Args:
        store_uri: ``matih://<bootstrap-servers>?tenant=<id>``.
        artifact_uri: MLflow's default artifact root; unused, since the workers' experiments
            keep artifacts under ``MATIH_MLFLOW_ARTIFACT_ROOT``.
        settings: the SDK settings under the URI's; from the environment by default.

    Raises:
        MlflowException: the URI is malformed or names no tenant.
    """

    def __init__(
        self,
        store_uri: str,
        artifact_uri: str | None = None,
        settings: ProducerSettings | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        try:
            self._settings = plugin_settings(store_uri, settings)
        except IngestError as exc:
            raise MlflowException(str(exc), INVALID_PARAMETER_VALUE) from None
        read_uri = self._settings.mlflow.tracking_uri
        if read_uri.startswith(f"{SCHEME}:"):
            raise MlflowException(
                f"MATIH_MLFLOW_TRACKING_URI must name the store the workers write (sqlite://,"
                f" postgresql://, http://), not {read_uri!r}",
                INVALID_PARAMETER_VALUE,
            )
        assert self._settings.tenant_id is not None  # plugin_settings requires one
        self._tenant_id = self._settings.tenant_id
        self._tracker = ExperimentTracker(self._settings)
        self._runs: dict[str, _Written] = {}
        self._unread: set[str] = set()
        self._lock = threading.Lock()

    @cached_property
    def _reader(self) -> RunReader:
        # Not in __init__: MLflow builds this store holding a lock that building the
        # reader's own store would wait for, and loads this module while
        # ``mlflow.tracking`` is still importing.
        from ingest.tracking.reader import RunReader  # noqa: PLC0415

        return RunReader(self._settings.mlflow.tracking_uri)

    @cached_property
    def _client(self) -> MlflowClient:
        from mlflow.tracking import MlflowClient  # noqa: PLC0415

        return MlflowClient(tracking_uri=self._settings.mlflow.tracking_uri)

    @cached_property
    def _autolog(self) -> AutologGuard:
        return AutologGuard()

    @cached_property
    def _experiments(self) -> ExperimentCatalog:
        return ExperimentCatalog(self._reader, self._tenant_id, self._settings.mlflow.artifact_root)

    # Experiments

    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: list[Any] | None = None
    ) -> str:
        """Declares an experiment, which the workers create with its first run."""
        if artifact_location:
            raise unsupported_call("create_experiment(artifact_location=...)")
        if tags:
            raise unsupported_call("create_experiment(tags=...)")
        if not isinstance(name, str) or not name:
            raise MlflowException(
                "experiment name must be a non-empty string", INVALID_PARAMETER_VALUE
            )
        if self._experiments.by_name(name) is not None:
            raise MlflowException(
                f"Experiment '{name}' already exists in tenant {self._tenant_id}",
                RESOURCE_ALREADY_EXISTS,
            )
        return self._experiments.declare(name)

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self._experiments.get(str(experiment_id))

    def get_experiment_by_name(self, experiment_name: str) -> Experiment | None:
        return self._experiments.by_name(experiment_name)

    def search_experiments(
        self,
        view_type: int = ViewType.ACTIVE_ONLY,
        max_results: int = SEARCH_MAX_RESULTS_DEFAULT,
        filter_string: str | None = None,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Experiment]:
        self._wait_written()
        return self._experiments.search(view_type, max_results, filter_string, order_by, page_token)

    # Runs: writes

    def create_run(
        self,
        experiment_id: str,
        user_id: str,
        start_time: int,
        tags: list[RunTag],
        run_name: str | None,
    ) -> Run:
        """Publishes the run's creation; returns it as MLflow would, under the producer's id."""
        experiment_id = str(experiment_id)
        experiment_name = self._experiments.name_of(experiment_id)
        values = {tag.key: tag.value for tag in tags or []}
        name = run_name or values.get(RUN_NAME_TAG) or random_run_name()
        values[RUN_NAME_TAG] = name
        run_id = new_run_id(start_time)
        with errors_as_mlflow():
            handle = self._tracker.start_run(
                experiment_name,
                RunConfig(
                    run_name=name,
                    tenant_id=self._tenant_id,
                    user_id=values.get(USER_TAG),
                    tags=values,
                ),
                run_id=run_id,
            )
        artifact_uri = claim_check_uri(handle)
        prime_artifact_repository(run_id, ClaimCheckRepository(artifact_uri))
        run = new_run(
            run_id=run_id,
            experiment_id=experiment_id,
            user_id=user_id,
            start_time=handle.start_time,
            artifact_uri=artifact_uri,
            run_name=name,
            tags=values,
        )
        with self._lock:
            self._runs[run_id] = _Written(handle, run)
            self._unread.add(run_id)
        return run

    def log_batch(
        self, run_id: str, metrics: list[Metric], params: list[Param], tags: list[RunTag]
    ) -> None:
        """Validates and buffers the batch; the SDK's sender publishes it."""
        written = self._written(run_id, "log_batch")
        with errors_as_mlflow():
            written.handle.log_batch(
                metrics=[
                    {
                        "key": m.key,
                        "value": m.value,
                        "step": int(m.step),
                        "timestamp": int(m.timestamp),
                    }
                    for m in metrics
                ],
                params=[{"key": p.key, "value": p.value} for p in params],
                tags=[{"key": t.key, "value": t.value} for t in tags],
            )
        self._unread.add(run_id)

    def update_run_info(
        self, run_id: str, run_status: int, end_time: int | None, run_name: str | None
    ) -> RunInfo:
        """Renames the run, or ends it (which waits, bounded, for Kafka's acknowledgement)."""
        written = self._written(run_id, "update_run_info")
        mlflow_status = MlflowRunStatus.to_string(run_status)
        status = spec_status(mlflow_status)
        with errors_as_mlflow():
            if run_name:
                written.handle.set_tag(RUN_NAME_TAG, run_name)
            if status in TERMINAL_STATUSES:
                written.handle.end(status)  # waits for the run's uploads
                discard_staged(run_id)
            elif written.handle.status is not status:
                raise MlflowException(
                    f"run {run_id} has ended ({written.handle.status.value}); it cannot be"
                    f" set to {mlflow_status}",
                    INVALID_PARAMETER_VALUE,
                )
        info = written.run.info
        updated = RunInfo(
            run_id=info.run_id,
            experiment_id=info.experiment_id,
            user_id=info.user_id,
            status=mlflow_status,
            start_time=info.start_time,
            end_time=written.handle.end_time,
            lifecycle_stage=info.lifecycle_stage,
            artifact_uri=info.artifact_uri,
            run_name=run_name or info.run_name,
        )
        written.run = Run(updated, written.run.data)
        self._unread.add(run_id)
        return updated

    # Logged models and datasets: not carried by the pipeline

    def create_logged_model(self, *args: Any, **kwargs: Any) -> Any:
        """Refused; inside scikit-learn's autologging, so that it still logs the training
        metrics to the run (``producers.mlflow.autolog``)."""
        raise self._autolog.refuse_model("create_logged_model")

    def log_inputs(self, run_id: str, datasets: Any = None, models: Any = None) -> None:
        """Refused; inside autologging, its datasets are dropped with one warning."""
        self._autolog.drop_inputs("log_inputs")

    # Runs: reads

    def get_run(self, run_id: str) -> Run:
        """The run as the workers wrote it; a run this store started and the workers have
        not written yet is answered as MLflow answered its creation."""
        written = self._runs.get(run_id)
        if written is not None:
            self._wait_written(run_id)
        run = self._find(run_id)
        if run is None:
            if written is not None:
                return written.run
            raise _run_not_found(run_id)
        claim_check = None
        if written is not None and written.handle.status is RunStatus.RUNNING:
            claim_check = written.run.info.artifact_uri
        return run_view(run, self._experiments.plugin_id(run.info.experiment_id), claim_check)

    def get_metric_history(
        self,
        run_id: str,
        metric_key: str,
        max_results: int | None = None,
        page_token: str | None = None,
    ) -> PagedList[Metric]:
        if run_id in self._runs:
            self._wait_written(run_id)
        run = self._find(run_id)
        if run is None:
            raise _run_not_found(run_id)
        history = self._client.get_metric_history(run.info.run_id, metric_key)
        return PagedList(history, None)

    def _search_runs(  # noqa: PLR0917 - MLflow's signature, called positionally
        self,
        experiment_ids: list[str],
        filter_string: str | None,
        run_view_type: int,
        max_results: int,
        order_by: list[str] | None,
        page_token: str | None,
    ) -> tuple[list[Run], str | None]:
        self._wait_written()
        mlflow_ids = self._experiments.mlflow_ids([str(e) for e in experiment_ids])
        if not mlflow_ids:
            return [], None
        own = tenant_filter(self._tenant_id)
        page = self._client.search_runs(
            mlflow_ids,
            filter_string=f"{own} and {filter_string}" if filter_string else own,
            run_view_type=run_view_type,
            max_results=max_results,
            order_by=order_by,
            page_token=page_token,
        )
        runs = [run_view(r, self._experiments.plugin_id(r.info.experiment_id)) for r in page]
        return runs, page.token

    # Helpers

    def _written(self, run_id: str, call: str) -> _Written:
        written = self._runs.get(run_id)
        if written is None:
            raise MlflowException(
                f"{call}: run {run_id!r} was not started through this process's matih://"
                " store; log to a run from the process that started it (several processes,"
                " one run: the SDK's join_run)",
                INVALID_PARAMETER_VALUE,
            )
        return written

    def _find(self, run_id: str) -> Run | None:
        """The stored run of the producer's ``run_id`` (or of MLflow's own id), if the tenant
        has it."""
        run = self._reader.find_run(self._tenant_id, run_id)
        if run is not None:
            return run
        try:
            run = self._client.get_run(run_id)
        except MlflowException:
            return None
        return run if run.data.tags.get(TENANT_TAG) == self._tenant_id else None

    def _wait_written(self, run_id: str | None = None) -> None:
        """Read-your-writes: waits until the workers wrote this store's runs (or one)."""
        with self._lock:
            waiting = [run_id] if run_id in self._unread else [] if run_id else list(self._unread)
            self._unread.difference_update(waiting)
        for waited in waiting:
            self._tracker.wait_written(self._tenant_id, waited)


def _run_not_found(run_id: str) -> MlflowException:
    return MlflowException(f"Run '{run_id}' not found", RESOURCE_DOES_NOT_EXIST)
