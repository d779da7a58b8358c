"""The gateway's probes: alive while it serves, ready only once connected to Kafka."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from ingest.api import ApiSettings, create_app
from ingest.settings import KafkaSettings, MlflowSettings


def test_a_gateway_without_kafka_is_alive_but_not_ready(tmp_path: Path) -> None:
    settings = ApiSettings(
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
        mlflow=MlflowSettings(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db"),
        connect_timeout_s=1,
        open_mode=True,
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").text == "ok\n"
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.text == "not connected to Kafka at 127.0.0.1:1\n"
