"""Fault injection on the consuming side: a worker killed mid-batch, the MLflow store
gone for 30 s, a worker leaving its group mid-stream. Each ends with the exact
history, params and status in MLflow: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from consumers import ConsumerSettings, MlflowSink
from ingest.consistency import wait_committed
from ingest.events import (
    EventEnvelope,
    MetricPoint,
    MetricsLogged,
    ParamsLogged,
    RunCreated,
    RunEnded,
    RunStatus,
)
from ingest.ids import new_run_id, run_id_time_ms
from ingest.settings import KafkaSettings, MlflowSettings
from producers import ExperimentTracker, ProducerSettings, RunConfig
from tests.integration.support import (
    POSTGRES_SCRIPT,
    MlflowServer,
    WorkerProcess,
    WorkerThread,
    group_lag,
    metric_rows,
    publish,
    snapshot,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TENANT = "acme-corp"


def big_run(run_id: str, points: int) -> list[EventEnvelope]:
    base = {"tenant_id": TENANT, "run_id": run_id, "experiment_name": "faults"}
    start = run_id_time_ms(run_id) or 0
    metrics = [
        MetricPoint(key="loss", value=s * 0.5, step=s, timestamp=start + s) for s in range(points)
    ]
    return [
        RunCreated(**base, run_name="big", start_time=start),
        ParamsLogged(**base, params={"lr": "0.01"}),
        *(
            MetricsLogged(**base, metrics=tuple(metrics[i : i + 500]))
            for i in range(0, points, 500)
        ),
        RunEnded(**base, status=RunStatus.FINISHED, end_time=start + 60_000),
    ]


def assert_exact(tracking_uri: str, run_id: str, points: int) -> None:
    runs = snapshot(tracking_uri, TENANT)
    assert list(runs) == [run_id]
    start = run_id_time_ms(run_id)
    assert runs[run_id]["history"]["loss"] == [(s, start + s, s * 0.5) for s in range(points)]
    assert runs[run_id]["params"] == {"lr": "0.01"}
    assert runs[run_id]["status"] == "FINISHED"
    assert runs[run_id]["end_time"] == start + 60_000


@pytest.mark.timeout(300)
async def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(
    producer_settings: ProducerSettings, consumer_settings: ConsumerSettings, tmp_path: Path
) -> None:
    """kill -9 while MLflow holds part of the run; a new worker resumes from the last
    commit and the run ends exact (the rewritten part is ignored as identical rows)."""
    run_id, points = new_run_id(), 20_000
    positions = await publish(producer_settings, big_run(run_id, points))
    settings = consumer_settings.model_copy(update={"max_records": 4})
    MlflowSink(settings.mlflow)  # the store exists before two processes open it
    first = WorkerProcess(settings, tmp_path / "worker.log")
    first.start()
    uri = settings.mlflow.tracking_uri
    deadline = time.monotonic() + 120
    while not 0 < metric_rows(uri, TENANT, run_id, "loss") < points:
        assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
        await asyncio.sleep(0.2)
    first.kill()  # SIGKILL: no shutdown, no final commit
    assert metric_rows(uri, TENANT, run_id, "loss") < points
    second = WorkerProcess(settings, tmp_path / "worker.log")
    second.start()
    try:
        assert await wait_committed(settings.kafka, positions, 180)
    finally:
        second.stop()
    assert_exact(uri, run_id, points)


@pytest.mark.timeout(300)
async def test_the_store_gone_for_30s_is_waited_out_and_lag_drains(
    kafka_settings: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tracking server stops for 30 s while a trainer keeps logging: the worker
    retries with backoff without committing, lag grows, and after the server returns
    the lag drains to zero with every point written once (the store-API path)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    server = MlflowServer(tmp_path)
    server.start()
    mlflow = MlflowSettings(tracking_uri=server.uri, artifact_root=str(tmp_path / "artifacts"))
    try:
        await log_through_outage(
            kafka_settings,
            mlflow,
            stop=server.stop,
            restart=server.start,
            stop_at_s=5,
            restart_at_s=35,
        )
    finally:
        server.stop()


@pytest.mark.timeout(300)
async def test_postgresql_gone_for_20s_is_waited_out_by_the_bulk_path(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """The PostgreSQL server behind the bulk write path stops for 20 s while a trainer
    keeps logging: nothing of a failed transaction is committed, the worker retries,
    and after the server returns every point is written once."""
    port = str(int(os.environ.get("MATIH_TEST_PG_PORT", "55432")) + 1)
    env = {**os.environ, "PG_PORT": port}

    def postgres(command: str) -> None:
        subprocess.run([str(POSTGRES_SCRIPT), command], check=True, env=env)

    postgres("start")
    mlflow = MlflowSettings(
        tracking_uri=f"postgresql://postgres@127.0.0.1:{port}/mlflow",
        artifact_root=str(tmp_path / "artifacts"),
    )
    try:
        assert MlflowSink(mlflow).write_path == "bulk"
        await log_through_outage(
            kafka_settings,
            mlflow,
            stop=lambda: postgres("stop"),
            restart=lambda: postgres("start"),
            stop_at_s=5,
            restart_at_s=25,
        )
    finally:
        postgres("stop")


async def log_through_outage(
    kafka_settings: KafkaSettings,
    mlflow: MlflowSettings,
    *,
    stop: Callable[[], None],
    restart: Callable[[], None],
    stop_at_s: int,
    restart_at_s: int,
) -> None:
    """A trainer logs 20 steps a second for 45 s while a worker writes them; the store
    stops at ``stop_at_s`` and comes back at ``restart_at_s``. Lag must grow meanwhile,
    the worker must have retried, and MLflow must end with every point exactly once."""
    settings = ConsumerSettings(
        kafka=kafka_settings, mlflow=mlflow, batch_timeout_ms=100, retry_backoff_max_s=2
    )
    worker = WorkerThread(settings)
    worker.start()
    steps_per_second, seconds = 20, 45
    lag_during_outage = 0
    try:
        with ExperimentTracker(ProducerSettings(kafka=kafka_settings, mlflow=mlflow)) as tracker:
            with tracker.start_run(
                experiment_name="outage", run_config=RunConfig(tenant_id=TENANT)
            ) as run:
                run.log_params({"lr": 0.01})
                for step in range(steps_per_second * seconds):
                    if step == steps_per_second * stop_at_s:
                        await asyncio.to_thread(stop)
                    if step == steps_per_second * (restart_at_s - 2):
                        lag_during_outage = await group_lag(kafka_settings)
                    if step == steps_per_second * restart_at_s:
                        await asyncio.to_thread(restart)
                    run.log_metrics({"loss": step * 0.5}, step=step)
                    await asyncio.sleep(1 / steps_per_second)
            history = await asyncio.to_thread(
                tracker.get_metric_history, run_id=run.run_id, key="loss"
            )
        assert await group_lag(kafka_settings) == 0
        runs = snapshot(mlflow.tracking_uri, TENANT)
    finally:
        worker.stop()
    assert lag_during_outage > 0
    assert worker.telemetry.retries > 0
    assert [(p["step"], p["value"]) for p in history] == [
        (s, s * 0.5) for s in range(steps_per_second * seconds)
    ]
    assert runs[run.run_id]["status"] == "FINISHED"
    assert runs[run.run_id]["params"] == {"lr": "0.01"}
    assert len(runs[run.run_id]["history"]["loss"]) == steps_per_second * seconds


@pytest.mark.timeout(300)
async def test_a_worker_leaving_its_group_mid_stream_hands_over_without_loss(
    producer_settings: ProducerSettings, consumer_settings: ConsumerSettings
) -> None:
    """Two workers share the partitions; one stops mid-stream; the rebalance gives its
    partitions to the other, which finishes every run exactly."""
    settings = consumer_settings.model_copy(update={"max_records": 4})
    first, second = WorkerThread(settings), WorkerThread(settings)
    first.start()
    second.start()
    tenants = [f"tenant-{i}" for i in range(6)]  # spread over partitions by key
    runs = {tenant: new_run_id() for tenant in tenants}
    try:
        events = []
        for tenant, run_id in runs.items():
            base = {"tenant_id": tenant, "run_id": run_id, "experiment_name": "rebalance"}
            points = [
                MetricPoint(key="loss", value=s * 0.5, step=s, timestamp=s) for s in range(3000)
            ]
            events += [
                MetricsLogged(**base, metrics=tuple(points[i : i + 100]))
                for i in range(0, 3000, 100)
            ]
            events.append(
                RunEnded(**base, status=RunStatus.FINISHED, end_time=run_id_time_ms(run_id) + 1)
            )
        positions = await publish(producer_settings, events[: len(events) // 2])
        await asyncio.sleep(1)
        await asyncio.to_thread(first.stop)
        positions += await publish(producer_settings, events[len(events) // 2 :])
        assert await wait_committed(producer_settings.kafka, positions, 180)
    finally:
        second.stop()
    assert first.telemetry.batches > 0
    assert second.telemetry.batches > 0
    for tenant, run_id in runs.items():
        run = snapshot(settings.mlflow.tracking_uri, tenant)[run_id]
        assert run["history"]["loss"] == [(s, s, s * 0.5) for s in range(3000)], tenant
        assert run["status"] == "FINISHED"
