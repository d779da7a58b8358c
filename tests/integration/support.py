"""Helpers for the integration tests: a worker on a thread, MLflow snapshots."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from mlflow.tracking import MlflowClient

from consumers import ConsumerSettings, MlflowSink, WorkerStats, build_worker
from consumers.metrics import WorkerMetrics
from ingest.reader import RunReader


class WorkerThread:
    """Runs a real worker (FastStream app + MLflow sink) on an event loop of its own."""

    def __init__(
        self, settings: ConsumerSettings, stats: WorkerStats, metrics: WorkerMetrics | None = None
    ) -> None:
        self.settings = settings
        self.stats = stats
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._app = build_worker(settings, MlflowSink(settings.mlflow), stats, metrics)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._app.start(), self._loop).result(60)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._app.stop(), self._loop).result(60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def snapshot(tracking_uri: str, tenant_id: str) -> dict[str, Any]:
    """Everything MLflow holds for a tenant's runs, keyed by producer run id: to compare
    a store before and after (no second run, no second metric row)."""
    reader = RunReader(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_ids = reader.experiment_ids(tenant_id)
    result: dict[str, Any] = {}
    if not experiment_ids:
        return result
    for run in client.search_runs(experiment_ids, max_results=10_000):
        history = {
            key: sorted(
                (m.step, m.timestamp, m.value) for m in client.get_metric_history(run.info.run_id, key)
            )
            for key in run.data.metrics
        }
        result[run.data.tags["matih.run_id"]] = {
            "mlflow_run_id": run.info.run_id,
            "status": run.info.status,
            "start_time": run.info.start_time,
            "end_time": run.info.end_time,
            "params": run.data.params,
            "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.log")},
            "history": history,
        }
    return result
