"""The MLflow read side: a tenant's runs and metric histories, by producer run id."""

from __future__ import annotations

from typing import TypedDict

from mlflow.entities import Experiment, Run
from mlflow.tracking import MlflowClient

from ingest.layout import quote, run_filter, tenant_filter

MAX_SEARCH_RESULTS = 50_000
"""The most runs one MLflow search returns (MLflow's own limit)."""


class MetricHistoryPoint(TypedDict):
    """One point of a metric history, in the spec's shape."""

    key: str
    value: float
    timestamp: int
    step: int


class RunReader:
    """Reads runs back from MLflow, always within one tenant.

    Args:
        tracking_uri: the MLflow store or server the workers write to.
    """

    def __init__(self, tracking_uri: str) -> None:
        self._client = MlflowClient(tracking_uri=tracking_uri)

    def experiment_ids(self, tenant_id: str) -> list[str]:
        """The ids of every MLflow experiment that belongs to ``tenant_id``."""
        return [experiment.experiment_id for experiment in self.experiments(tenant_id)]

    def experiments(self, tenant_id: str) -> list[Experiment]:
        """Every MLflow experiment that belongs to ``tenant_id``, oldest first."""
        experiments = self._client.search_experiments(
            filter_string=tenant_filter(tenant_id), order_by=["creation_time ASC"]
        )
        return list(experiments)

    def search_runs(
        self,
        tenant_id: str,
        experiment_ids: list[str] | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Run]:
        """A page of the tenant's runs, newest first.

        Args:
            tenant_id: whose runs.
            experiment_ids: only runs of these MLflow experiments (each must be the
                tenant's); all of the tenant's experiments by default.
            status: only runs in this MLflow status (``RUNNING``, ``FINISHED``, ...).
            limit: at most this many runs.
            offset: skip this many runs first; ``offset + limit`` is at most
                ``MAX_SEARCH_RESULTS``.
        """
        own = self.experiment_ids(tenant_id)
        wanted = own if experiment_ids is None else [e for e in experiment_ids if e in own]
        if not wanted or limit <= 0:
            return []
        filter_string = tenant_filter(tenant_id)
        if status is not None:
            filter_string += f" and attributes.status = {quote(status)}"
        runs = self._client.search_runs(
            wanted,
            filter_string=filter_string,
            max_results=min(offset + limit, MAX_SEARCH_RESULTS),
            order_by=["attributes.start_time DESC", "attributes.run_id ASC"],
        )
        return list(runs[offset : offset + limit])

    def find_run(self, tenant_id: str, run_id: str) -> Run | None:
        """The MLflow run for a producer's run id, or None if the tenant has no such run."""
        experiment_ids = self.experiment_ids(tenant_id)
        if not experiment_ids:
            return None
        runs = self._client.search_runs(
            experiment_ids, filter_string=run_filter(tenant_id, run_id), max_results=1
        )
        return runs[0] if runs else None

    def get_metric_history(self, tenant_id: str, run_id: str, key: str) -> list[MetricHistoryPoint]:
        """Every logged value of ``key``, ordered by step then timestamp.

        Returns an empty list when the run or the metric is not (yet) in MLflow.
        """
        run = self.find_run(tenant_id, run_id)
        if run is None:
            return []
        history = self._client.get_metric_history(run.info.run_id, key)
        points = sorted(history, key=lambda metric: (metric.step, metric.timestamp))
        return [
            MetricHistoryPoint(key=m.key, value=m.value, timestamp=m.timestamp, step=m.step)
            for m in points
        ]
