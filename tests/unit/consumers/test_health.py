"""Health endpoints and start-up checks: /healthz and /readyz beside /metrics, the
store probe, and a worker that cannot reach its store exiting with one line."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from aiokafka.structs import TopicPartition
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from consumers.health import WorkerHealth, store_reachable
from ingest.cli.main import app
from ingest.settings import MlflowSettings
from ingest.telemetry import serve_metrics

UNREACHABLE = "postgresql://mlflow:s3cret@127.0.0.1:1/mlflow"


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.parametrize(("problem", "expected"), [(None, 200), ("store down", 503)])
def test_readyz_answers_what_readiness_says(problem: str | None, expected: int) -> None:
    server = serve_metrics("127.0.0.1", 0, CollectorRegistry(), readiness=lambda: problem)
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert get(f"{base}/healthz") == (200, "ok\n")
        assert get(f"{base}/readyz") == (expected, f"{problem or 'ok'}\n")
        assert get(f"{base}/metrics")[0] == 200
    finally:
        server.close()


def test_store_probe_names_the_store_without_its_password(tmp_path: Path) -> None:
    assert store_reachable(MlflowSettings(tracking_uri=f"sqlite:///{tmp_path}/x.db")) is None
    problem = store_reachable(MlflowSettings(tracking_uri=UNREACHABLE), timeout=2)
    assert problem is not None
    assert "127.0.0.1:1/mlflow" in problem
    assert "s3cret" not in problem


def test_a_worker_outside_its_group_is_not_ready(tmp_path: Path) -> None:
    health = WorkerHealth(MlflowSettings(tracking_uri=f"sqlite:///{tmp_path}/x.db"))
    assert health.readiness() == "not a member of its consumer group (yet)"
    health.in_group = True
    assert health.readiness() is None


async def test_a_worker_beyond_the_partition_count_says_once_that_it_stands_by(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An empty assignment (more workers than partitions) is a member that is ready but
    idle: one warning, not one per rebalance, and another after it had work again."""
    health = WorkerHealth(MlflowSettings(tracking_uri=f"sqlite:///{tmp_path}/x.db"))
    busy = {TopicPartition("matih.runs.events", 0)}
    for assignment in (set(), set(), busy, set()):
        await health.listener.on_partitions_revoked(set())
        await health.listener.on_partitions_assigned(assignment)
    assert health.readiness() is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "more workers than the events topic has partitions" in warnings[0]


def test_worker_with_an_unreachable_store_exits_2_with_one_line() -> None:
    result = CliRunner().invoke(app, ["worker", "--tracking-uri", UNREACHABLE])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("worker cannot start: the MLflow store")
    assert "MATIH_MLFLOW_TRACKING_URI" in lines[0]
