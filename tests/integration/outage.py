"""A broker of a test's own, to stop and start without disturbing the session broker.

It listens on ``MATIH_TEST_OUTAGE_KAFKA_PORT`` (default: the session port + 50) and
keeps its data directory between a stop and a start, as a restarted broker would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.integration.support import snapshot

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = ROOT / "deploy" / "kafka" / "kafka.sh"


class OutageBroker:
    """A real local Kafka broker (deploy/kafka) that a test stops and starts by pid."""

    def __init__(self) -> None:
        session_port = int(os.environ.get("MATIH_TEST_KAFKA_PORT", "19092"))
        self.port = int(os.environ.get("MATIH_TEST_OUTAGE_KAFKA_PORT", session_port + 50))
        self.data = ROOT / ".data" / f"kafka-outage-{self.port}"
        self._env = {**os.environ, "KAFKA_PORT": str(self.port), "KAFKA_DATA_DIR": str(self.data)}

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> float:
        """Starts the broker; returns the seconds it took to accept clients."""
        started = time.monotonic()
        subprocess.run([str(KAFKA_SCRIPT), "start"], check=True, env=self._env)
        return time.monotonic() - started

    def stop(self) -> None:
        subprocess.run([str(KAFKA_SCRIPT), "stop"], check=False, env=self._env)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data, ignore_errors=True)


def wait_for_run(
    tracking_uri: str, tenant: str, run_id: str, done: Any, within_s: float = 90.0
) -> dict[str, Any]:
    """Polls MLflow until ``done(run)`` holds for the run's snapshot; returns the last one."""
    deadline = time.monotonic() + within_s
    runs: dict[str, Any] = {}
    while time.monotonic() < deadline:
        runs = snapshot(tracking_uri, tenant)
        if run_id in runs and done(runs[run_id]):
            break
        time.sleep(0.5)
    return runs
