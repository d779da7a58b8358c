"""Benchmark: what a training loop pays per logging call, and how fast points reach MLflow.

    python -m tests.bench.pipeline [--steps N] [--points N]

Prints one JSON document. Each figure stands beside MLflow's own, measured in the
same run on the same kind of store (a fresh sqlite file each):

- ``sdk_call``: the cost of ``run.log_metrics({4 metrics}, step=...)`` in a loop
  (median and p99, microseconds), with the background sender running; beside it
  MLflow's ``log_metrics`` of the same 4 metrics into sqlite.
- ``end_to_end``: points per second from Kafka through a worker into the sqlite
  store: the SDK fills the topic, then a worker is timed from its start to the
  commit of the last record; beside it MLflow's ``log_metric`` per point and
  ``log_batch`` of 1000.

Uses the broker at MATIH_KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092), starting
the local one from deploy/kafka if none answers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from consumers import ConsumerSettings
from ingest.settings import KafkaSettings, MlflowSettings
from ingest.tracking.consistency import wait_committed
from producers import ExperimentTracker, ProducerSettings, RunConfig
from tests.integration.support import WorkerThread

ROOT = Path(__file__).resolve().parents[2]
KEYS = ("train_loss", "val_loss", "val_accuracy", "val_f1")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def ensure_broker(bootstrap: str) -> None:
    host, _, port = bootstrap.split(",", maxsplit=1)[0].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        env = {**os.environ, "KAFKA_PORT": port}
        subprocess.run([str(ROOT / "deploy" / "kafka" / "kafka.sh"), "start"], check=True, env=env)


def fresh_store(folder: Path, name: str) -> MlflowSettings:
    return MlflowSettings(
        tracking_uri=f"sqlite:///{folder / name}.db",
        artifact_root=str(folder / f"{name}-artifacts"),
    )


def mlflow_run(settings: MlflowSettings) -> tuple[MlflowClient, str]:
    client = MlflowClient(settings.tracking_uri)
    experiment = client.create_experiment("bench", artifact_location=settings.artifact_root)
    return client, client.create_run(experiment).info.run_id


def sdk_call_cost(kafka: KafkaSettings, store: MlflowSettings, steps: int) -> dict[str, float]:
    """Per-call cost of log_metrics with 4 metrics, sender running, no worker needed."""
    settings = ProducerSettings(kafka=kafka, mlflow=store)
    samples = []
    with (
        ExperimentTracker(settings) as tracker,
        tracker.start_run(experiment_name="bench", run_config=RunConfig(tenant_id="bench")) as run,
    ):
        clock = time.perf_counter_ns
        for step in range(steps):
            values = {KEYS[0]: 1.0 / (step + 1), KEYS[1]: 0.5, KEYS[2]: 0.9, KEYS[3]: 0.8}
            began = clock()
            run.log_metrics(values, step=step)
            samples.append((clock() - began) / 1000)
    return {
        "median_us": statistics.median(samples),
        "p99_us": percentile(samples, 0.99),
        "calls": steps,
    }


def mlflow_call_cost(store: MlflowSettings, steps: int) -> dict[str, float]:
    """MLflow's own log_metrics of the same 4 metrics, one call per step, into sqlite."""
    mlflow.set_tracking_uri(store.tracking_uri)
    mlflow.set_experiment("bench-fluent")
    samples = []
    with mlflow.start_run():
        for step in range(steps):
            values = {KEYS[0]: 1.0 / (step + 1), KEYS[1]: 0.5, KEYS[2]: 0.9, KEYS[3]: 0.8}
            began = time.perf_counter_ns()
            mlflow.log_metrics(values, step=step)
            samples.append((time.perf_counter_ns() - began) / 1000)
    return {
        "median_us": statistics.median(samples),
        "p99_us": percentile(samples, 0.99),
        "calls": steps,
    }


def end_to_end(kafka: KafkaSettings, store: MlflowSettings, points: int) -> dict[str, float]:
    """Kafka -> worker -> sqlite: the SDK first fills the topic; then a worker starts and
    is timed from its start (group join included) to the commit of the last record."""
    settings = ProducerSettings(kafka=kafka, mlflow=store)
    with ExperimentTracker(settings) as tracker:
        began = time.perf_counter()
        with tracker.start_run(
            experiment_name="e2e", run_config=RunConfig(tenant_id="bench")
        ) as run:
            for step in range(points // len(KEYS)):
                run.log_metrics(dict.fromkeys(KEYS, step * 0.001), step=step)
        produced = time.perf_counter() - began
        position = tracker._sender.positions[("bench", run.run_id)]
        worker = WorkerThread(ConsumerSettings(kafka=kafka, mlflow=store))
        began = time.perf_counter()
        worker.start()
        try:
            caught_up = tracker._sender.call(wait_committed(kafka, [position], 900), 920)
            elapsed = time.perf_counter() - began
        finally:
            worker.stop()
    assert caught_up, "the worker did not catch up"
    client = MlflowClient(store.tracking_uri)
    (stored,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    landed = len(client.get_metric_history(stored.info.run_id, KEYS[0])) * len(KEYS)
    assert landed == points, f"{landed} of {points} points landed"
    return {
        "points": points,
        "seconds": elapsed,
        "points_per_s": points / elapsed,
        "sdk_to_kafka_acked_points_per_s": points / produced,
    }


def mlflow_log_metric(store: MlflowSettings, points: int) -> dict[str, float]:
    client, run_id = mlflow_run(store)
    began = time.perf_counter()
    for i in range(points):
        client.log_metric(
            run_id, KEYS[i % 4], i * 0.001, timestamp=1_700_000_000_000 + i, step=i // 4
        )
    elapsed = time.perf_counter() - began
    return {"points": points, "seconds": elapsed, "points_per_s": points / elapsed}


def mlflow_log_batch(store: MlflowSettings, points: int) -> dict[str, float]:
    client, run_id = mlflow_run(store)
    metrics = [Metric(KEYS[i % 4], i * 0.001, 1_700_000_000_000 + i, i // 4) for i in range(points)]
    began = time.perf_counter()
    for start in range(0, points, 1000):
        client.log_batch(run_id, metrics=metrics[start : start + 1000], synchronous=True)
    elapsed = time.perf_counter() - began
    return {"points": points, "seconds": elapsed, "points_per_s": points / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=100_000, help="SDK calls to time")
    parser.add_argument(
        "--points", type=int, default=200_000, help="points for the throughput runs"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    bootstrap = os.environ.get("MATIH_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    ensure_broker(bootstrap)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)

        def kafka(suffix: str) -> KafkaSettings:
            return KafkaSettings(
                bootstrap_servers=bootstrap,
                topic=f"{name}-{suffix}",
                consumer_group=f"{name}-{suffix}",
            )

        call = sdk_call_cost(kafka("calls"), fresh_store(root, "calls"), args.steps)
        mlflow_call = mlflow_call_cost(fresh_store(root, "mlflow-calls"), min(args.steps, 2_000))
        e2e = end_to_end(kafka("e2e"), fresh_store(root, "e2e"), args.points)
        per_point = mlflow_log_metric(fresh_store(root, "per-point"), min(args.points, 3_000))
        batch = mlflow_log_batch(fresh_store(root, "batch"), args.points)
    report = {
        "machine": {"cores": os.cpu_count()},
        "sdk_call_log_metrics_4": {
            "matih": call,
            "mlflow_log_metrics_sqlite": mlflow_call,
            "median_speedup_x": mlflow_call["median_us"] / call["median_us"],
            "targets": {"median_us": 20, "p99_us": 200},
        },
        "end_to_end_points_per_s": {
            "matih_sdk_kafka_worker_sqlite": e2e,
            "mlflow_log_metric_per_point": per_point,
            "mlflow_log_batch_1000": batch,
            "ratio_vs_mlflow_log_batch": e2e["points_per_s"] / batch["points_per_s"],
            "ratio_vs_mlflow_log_metric": e2e["points_per_s"] / per_point["points_per_s"],
            "target_ratio_vs_log_batch": 0.9,
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
