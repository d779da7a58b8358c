"""The ``matih-ingest`` faces: ``up --demo`` shows the demo run from MLflow and stops
cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.settings import KafkaSettings
from tests.integration.secure import kafka_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_up_with_the_demo_prints_the_finished_run_and_stops_on_ctrl_c(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MATIH_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "MATIH_KAFKA_TOPIC": kafka_settings.topic,
        "MATIH_KAFKA_CONSUMER_GROUP": kafka_settings.consumer_group,
        **kafka_env(kafka_settings),
        "MATIH_MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "MATIH_MLFLOW_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "COLUMNS": "160",
    }
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "ingest.cli.main", "up", "--demo", "--ui-port", "0"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 180
        while "Ctrl-C stops" not in log.read_text():
            assert up.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        up.send_signal(signal.SIGINT)
        assert up.wait(60) == 0, log.read_text()
    output = log.read_text()
    assert "in experiment acme-corp/fraud-detection-v3: xgboost-baseline, status FINISHED" in output
    assert "val_loss history (100 points)" in output
    assert "learning_rate │ 0.01" in output
