"""The MLflow read side: a tenant's runs and metric histories, by producer run id."""

from __future__ import annotations

from typing import TypedDict

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from ingest.layout import run_filter, tenant_filter


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
        experiments = self._client.search_experiments(filter_string=tenant_filter(tenant_id))
        return [experiment.experiment_id for experiment in experiments]

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

