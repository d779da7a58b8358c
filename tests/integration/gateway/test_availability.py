"""Kafka or MLflow unavailable: 503 with Retry-After; workers behind: 504. Never a hang."""

from __future__ import annotations

import time

import pytest

from ingest.api import ApiSettings
from ingest.settings import KafkaSettings
from tests.integration.gateway.conftest import headers
from tests.integration.gateway.support import serving
from tests.integration.support import free_port

pytestmark = pytest.mark.integration

RUNS = "/api/v1/experiments/runs"


def test_writes_answer_503_with_retry_after_while_kafka_is_unreachable(
    api_settings: ApiSettings,
) -> None:
    """The gateway starts without Kafka, serves MLflow reads, and answers every write, and
    every read that must ask Kafka, with 503 and Retry-After, at once."""
    dead = KafkaSettings(
        bootstrap_servers=f"127.0.0.1:{free_port()}",
        topic=api_settings.kafka.topic,
        request_timeout_s=1.0,
    )
    settings = api_settings.model_copy(
        update={"kafka": dead, "connect_timeout_s": 1.0, "retry_after_s": 7}
    )
    with serving(settings) as client:
        for body in (
            {"experiment_name": "e"},
            {"experiment_id": "550e8400-e29b-41d4-a716-446655440000", "name": "spec"},
        ):
            started = time.monotonic()
            answer = client.post(RUNS, json=body, headers=headers())
            assert answer.status_code == 503, answer.text
            assert answer.headers["Retry-After"] == "7"
            assert answer.json()["error"] == "unavailable"
            assert "Kafka" in answer.json()["message"]
            assert time.monotonic() - started < 5

        assert client.get("/api/v1/experiments", headers=headers()).status_code == 200
        assert client.get(RUNS, headers=headers()).json()["runs"] == []
        token = f"{dead.topic}:0:0"
        waiting = client.get(RUNS, params={"after": token}, headers=headers())
        assert waiting.status_code == 503, waiting.text
        assert waiting.headers["Retry-After"] == "7"


def test_reads_answer_503_while_mlflow_is_unreachable(
    api_settings: ApiSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    mlflow = api_settings.mlflow.model_copy(
        update={"tracking_uri": f"http://127.0.0.1:{free_port()}"}
    )
    with serving(api_settings.model_copy(update={"mlflow": mlflow})) as client:
        for path in ("/api/v1/experiments", RUNS, f"{RUNS}/{'0' * 32}"):
            answer = client.get(path, headers=headers())
            assert answer.status_code == 503, (path, answer.text)
            assert answer.headers["Retry-After"] == "5"
            assert "MLflow" in answer.json()["message"]
        logged = client.post(
            f"{RUNS}/{'0' * 32}/log-metrics", json={"metrics": {"a": 1}}, headers=headers()
        )
        assert logged.status_code == 503


def test_a_read_whose_write_the_workers_have_not_reached_is_504(
    api_settings: ApiSettings,
) -> None:
    """No worker runs: a read with the token waits read_wait_s, then 504 + Retry-After;
    without the token it answers at once (the run is not in MLflow yet)."""
    with serving(api_settings.model_copy(update={"read_wait_s": 1.0})) as client:
        created = client.post(RUNS, json={"experiment_name": "e"}, headers=headers()).json()
        started = time.monotonic()
        answer = client.get(
            f"{RUNS}/{created['run_id']}",
            params={"after": created["consistency_token"]},
            headers=headers(),
        )
        assert answer.status_code == 504, answer.text
        assert 1.0 <= time.monotonic() - started < 5
        assert answer.headers["Retry-After"] == "5"
        assert answer.json()["error"] == "not_yet_written"
        assert client.get(f"{RUNS}/{created['run_id']}", headers=headers()).status_code == 404
