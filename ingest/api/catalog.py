"""What the gateway knows of runs and experiments: its own writes, and MLflow.

A log call must name its run's experiment in the event (so any event can create
the run), and the gateway must refuse a run that is not the caller's tenant's.
Runs the gateway started are remembered (per tenant, bounded); any other run is
looked up in MLflow. Reads run MLflow's blocking client on a worker thread.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from mlflow.exceptions import MlflowException
from requests.exceptions import RequestException
from sqlalchemy.exc import SQLAlchemyError

from ingest.api.errors import StoreUnavailableError
from ingest.api.responses import ArtifactView, ExperimentView, MetricPointView, RunView
from ingest.api.views import name_of_unknown_id, run_view
from ingest.events import RunStatus
from ingest.ids import is_run_id, run_id_time_ms
from ingest.layout import (
    EXPERIMENT_NAME_TAG,
    MLFLOW_STATUS,
    experiment_id_of,
    has_ended,
    recorded_artifacts,
)
from ingest.tracking.reader import RunReader

T = TypeVar("T")


@dataclass(frozen=True)
class RunRef:
    """A run's owner and experiment: what a log call needs to publish."""

    tenant_id: str
    run_id: str
    experiment_name: str
    start_time: int
    ended: bool = False


class RunCatalog:
    """Finds runs and experiments of a tenant.

    Args:
        reader: the MLflow read side.
        cache_size: how many runs to remember.
    """

    def __init__(self, reader: RunReader, cache_size: int) -> None:
        self._reader = reader
        self._cache_size = cache_size
        self._runs: OrderedDict[tuple[str, str], RunRef] = OrderedDict()
        self._declared: dict[tuple[str, str], str] = {}

    def remember(self, ref: RunRef) -> None:
        """Keeps a run this gateway started or ended."""
        key = (ref.tenant_id, ref.run_id)
        self._runs[key] = ref
        self._runs.move_to_end(key)
        while len(self._runs) > self._cache_size:
            self._runs.popitem(last=False)

    async def find_run(self, tenant_id: str, run_id: str) -> RunRef | None:
        """The tenant's run, from memory or MLflow; None if the tenant has no such run."""
        if not is_run_id(run_id):
            return None
        cached = self._runs.get((tenant_id, run_id))
        if cached is not None:
            return cached
        run = await self._call(self._reader.find_run, tenant_id, run_id)
        if run is None:
            return None
        names = await self._experiment_names(tenant_id)
        ref = RunRef(
            tenant_id=tenant_id,
            run_id=run_id,
            experiment_name=names.get(run.info.experiment_id, run.info.experiment_id),
            start_time=run_id_time_ms(run_id) or run.info.start_time,
            ended=has_ended(run.info.status),
        )
        self.remember(ref)
        return ref

    def mark_ended(self, ref: RunRef) -> None:
        """Remembers that a run was ended here."""
        self.remember(replace(ref, ended=True))

    def declare(self, tenant_id: str, name: str) -> ExperimentView:
        """Remembers an experiment a client named before its first run."""
        experiment_id = experiment_id_of(tenant_id, name)
        self._declared[(tenant_id, experiment_id)] = name
        return ExperimentView(experiment_id=experiment_id, name=name)

    async def experiments(self, tenant_id: str) -> list[ExperimentView]:
        """The tenant's experiments in MLflow, then those only declared here."""
        experiments = await self._call(self._reader.experiments, tenant_id)
        views = [
            ExperimentView(
                experiment_id=experiment_id_of(tenant_id, name),
                name=name,
                creation_time=experiment.creation_time,
            )
            for experiment in experiments
            if (name := experiment.tags.get(EXPERIMENT_NAME_TAG)) is not None
        ]
        known = {view.experiment_id for view in views}
        views += [
            ExperimentView(experiment_id=experiment_id, name=name)
            for (tenant, experiment_id), name in self._declared.items()
            if tenant == tenant_id and experiment_id not in known
        ]
        return views

    async def experiment_name(self, tenant_id: str, experiment_id: uuid.UUID) -> str:
        """The name behind an experiment id; an id not used yet names a new experiment."""
        wanted = str(experiment_id)
        declared = self._declared.get((tenant_id, wanted))
        if declared is not None:
            return declared
        for view in await self.experiments(tenant_id):
            if view.experiment_id == wanted:
                return view.name
        return name_of_unknown_id(experiment_id)

    async def get_run(self, tenant_id: str, run_id: str) -> RunView | None:
        """The tenant's run as MLflow holds it, or None."""
        if not is_run_id(run_id):
            return None
        run = await self._call(self._reader.find_run, tenant_id, run_id)
        if run is None:
            return None
        names = await self._experiment_names(tenant_id)
        return run_view(run, names.get(run.info.experiment_id, ""), tenant_id)

    async def list_runs(
        self,
        tenant_id: str,
        experiment_name: str | None,
        status: RunStatus | None,
        limit: int,
        offset: int,
    ) -> tuple[list[RunView], bool]:
        """A page of the tenant's runs, newest first, and whether more follow."""
        names = await self._experiment_names(tenant_id)
        experiment_ids = None
        if experiment_name is not None:
            experiment_ids = [key for key, name in names.items() if name == experiment_name]
        runs = await self._call(
            self._reader.search_runs,
            tenant_id,
            experiment_ids,
            None if status is None else MLFLOW_STATUS[status],
            limit + 1,
            offset,
        )
        views = [run_view(run, names.get(run.info.experiment_id, ""), tenant_id) for run in runs]
        return views[:limit], len(views) > limit

    async def metric_history(
        self, tenant_id: str, run_id: str, key: str
    ) -> list[MetricPointView] | None:
        """Every value of a run's metric, by step; None if the tenant has no such run."""
        if not is_run_id(run_id):
            return None
        if await self._call(self._reader.find_run, tenant_id, run_id) is None:
            return None
        points = await self._call(self._reader.get_metric_history, tenant_id, run_id, key)
        return [MetricPointView(**point) for point in points]

    async def artifacts(self, tenant_id: str, run_id: str) -> list[ArtifactView] | None:
        """The files stored with a run, by path, as its claim checks record them (the
        workers wrote them after the files were in the artifact store); None if the
        tenant has no such run."""
        if not is_run_id(run_id):
            return None
        run = await self._call(self._reader.find_run, tenant_id, run_id)
        if run is None:
            return None
        recorded = recorded_artifacts(dict(run.data.tags))
        return [
            ArtifactView(path=path, size=size, sha256=sha256)
            for path, (size, sha256) in sorted(recorded.items())
        ]

    async def _experiment_names(self, tenant_id: str) -> dict[str, str]:
        """MLflow experiment id -> the tenant's name for it."""
        experiments = await self._call(self._reader.experiments, tenant_id)
        return {e.experiment_id: e.tags.get(EXPERIMENT_NAME_TAG, e.name) for e in experiments}

    async def _call(self, function: Callable[..., T], *args: object) -> T:
        try:
            return await asyncio.to_thread(function, *args)
        except (MlflowException, SQLAlchemyError, RequestException, OSError) as exc:
            raise StoreUnavailableError(f"the MLflow store did not answer: {exc}") from exc
