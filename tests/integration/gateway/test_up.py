"""``matih-ingest up`` (what ``make run`` starts) serves the gateway in open mode, loudly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ingest.settings import KafkaSettings
from tests.integration.gateway.conftest import headers
from tests.integration.secure import kafka_env
from tests.integration.support import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]


def test_up_starts_the_gateway_in_open_mode_and_says_so(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "up.log"
    env = {
        **os.environ,
        "MATIH_KAFKA_TOPIC": kafka_settings.topic,
        "MATIH_KAFKA_CONSUMER_GROUP": kafka_settings.consumer_group,
        **kafka_env(kafka_settings),
        "PYTHONPATH": str(ROOT),
    }
    command = [
        sys.executable, "-m", "ingest.cli.main", "up",
        "-b", kafka_settings.bootstrap_servers,
        "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--ui-port", "0",
        "--api-port", str(port),
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                httpx.get(f"{url}/openapi.json", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)
        created = httpx.post(
            f"{url}/api/v1/experiments/runs",
            json={"experiment_name": "up"},
            headers=headers(key=None),
            timeout=30,
        )
        assert created.status_code == 201, created.text
        token = created.json()["consistency_token"]
        listed = httpx.get(
            f"{url}/api/v1/experiments/runs",
            params={"after": token},
            headers=headers(key=None),
            timeout=30,
        )
        assert [r["run_id"] for r in listed.json()["runs"]] == [created.json()["run_id"]]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    output = log.read_text()
    assert "OPEN MODE" in output
    assert f"REST gateway on http://127.0.0.1:{port}" in output
    assert process.returncode == 0, output
