"""The single-run figures: what a training loop pays per logging call, and one trainer's
points through Kafka and one worker into sqlite, each beside MLflow's own.

- the cost of ``run.log_metrics({4 metrics}, step=...)`` in a loop (median and p99,
  microseconds) with the SDK's sender running, beside ``mlflow.log_metrics`` of the
  same 4 metrics into sqlite;
- MLflow's ``log_metric`` once per point into sqlite, in points per second;
- one trainer end to end: measured as ``drain.py`` measures four, beside
  ``log_batch`` from one process (``baseline.py``).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from producers import ExperimentTracker, ProducerSettings, RunConfig
from tests.bench.report import percentile
from tests.bench.stores import Store
from tests.bench.topic import fresh_topic
from tests.bench.trainers import KEYS


def _values(step: int) -> dict[str, float]:
    return {KEYS[0]: 1.0 / (step + 1), KEYS[1]: 0.5, KEYS[2]: 0.9, KEYS[3]: 0.8}


def sdk_call_cost(bootstrap: str, folder: Path, calls: int) -> dict[str, Any]:
    """Per-call cost of ``log_metrics`` with 4 metrics, the sender running, no worker."""
    settings = ProducerSettings(kafka=fresh_topic(bootstrap, "calls"), spool_dir=folder / "spool")
    samples = []
    clock = time.perf_counter_ns
    with (
        ExperimentTracker(settings) as tracker,
        tracker.start_run(experiment_name="bench", run_config=RunConfig(tenant_id="bench")) as run,
    ):
        for step in range(calls):
            values = _values(step)
            began = clock()
            run.log_metrics(values, step=step)
            samples.append((clock() - began) / 1000)
    return {"median_us": statistics.median(samples), "p99_us": percentile(samples, 0.99)}


def mlflow_call_cost(store: Store, calls: int) -> dict[str, Any]:
    """MLflow's own ``log_metrics`` of the same 4 metrics, one call per step."""
    mlflow.set_tracking_uri(store.settings.tracking_uri)
    mlflow.set_experiment("bench-fluent")
    samples = []
    with mlflow.start_run():
        for step in range(calls):
            values = _values(step)
            began = time.perf_counter_ns()
            mlflow.log_metrics(values, step=step)
            samples.append((time.perf_counter_ns() - began) / 1000)
    return {"median_us": statistics.median(samples), "p99_us": percentile(samples, 0.99)}


def mlflow_log_metric(store: Store, points: int) -> dict[str, Any]:
    """MLflow's ``log_metric``, one call per point."""
    client = MlflowClient(store.settings.tracking_uri)
    experiment = client.create_experiment(
        "per-point", artifact_location=store.settings.artifact_root
    )
    run_id = client.create_run(experiment).info.run_id
    began = time.perf_counter()
    for i in range(points):
        client.log_metric(
            run_id, KEYS[i % 4], i * 0.001, timestamp=1_700_000_000_000 + i, step=i // 4
        )
    elapsed = time.perf_counter() - began
    return {"points": points, "seconds": elapsed, "points_per_s": points / elapsed}
