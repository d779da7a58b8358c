"""A 3-node Kafka cluster of the tests' own (deploy/kafka ``cluster-start``).

It listens on ``MATIH_TEST_KAFKA_CLUSTER_PORT`` (default: the session port + 308; the
nodes take 6 ports from there), starts on fresh data and is stopped at the end. Nodes
are killed by number (1-3, their node ids)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = ROOT / "deploy" / "kafka" / "kafka.sh"


class KafkaCluster:
    """Three combined broker+controller nodes on 127.0.0.1."""

    def __init__(self) -> None:
        session_port = int(os.environ.get("MATIH_TEST_KAFKA_PORT", "19092"))
        self.port = int(os.environ.get("MATIH_TEST_KAFKA_CLUSTER_PORT", session_port + 308))
        self.data = ROOT / ".data" / f"kafka-cluster-test-{self.port}"
        self._env = {
            **os.environ,
            "KAFKA_CLUSTER_PORT": str(self.port),
            "KAFKA_CLUSTER_DIR": str(self.data),
        }

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.port + 2 * i}" for i in range(3))

    def _script(self, *args: str) -> None:
        subprocess.run([str(KAFKA_SCRIPT), *args], check=True, env=self._env, timeout=180)

    def start(self) -> None:
        shutil.rmtree(self.data, ignore_errors=True)
        self._script("cluster-start")

    def stop(self) -> None:
        self._script("cluster-stop")
        shutil.rmtree(self.data, ignore_errors=True)

    def kill(self, node: int) -> None:
        """kill -9: the node crashes, nothing is flushed or handed over."""
        self._script("node-kill", str(node))
