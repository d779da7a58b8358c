"""Processes of the benchmark: workers through the ``matih-ingest worker`` command, trainers
and MLflow clients as child scripts, and what the OS says each of them used.

CPU time and peak RSS are read from ``/proc`` while a process runs (``utime + stime``
and ``VmHWM``), so a figure can be taken at the end of a measured window rather than
at exit, and a worker's start-up (imports, connecting) can be told apart from its
work: it is the CPU it had used when its first connection to the broker opened.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.settings import KafkaSettings, MlflowSettings

ROOT = Path(__file__).resolve().parents[2]
_TICKS = os.sysconf("SC_CLK_TCK")
_ESTABLISHED = "01"
_WATCH_S = 0.02


def cpu_seconds(pid: int, reaped_children: bool = False) -> float:
    """User plus system CPU of ``pid`` so far (and of its reaped children if asked)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICKS


def peak_rss_mb(pid: int) -> float:
    """The peak resident set of ``pid`` so far (``VmHWM``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tree_cpu_seconds(pid: int) -> float:
    """CPU of ``pid``, its live children and the children it reaped: a server that forks
    a process per connection (PostgreSQL) over a window, even as connections come and go.
    """
    total = cpu_seconds(pid, reaped_children=True)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rpartition(")")[2].split()
            if int(stat[1]) == pid:
                total += (int(stat[11]) + int(stat[12])) / _TICKS
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
    return total


def connected_to(pid: int, port: int) -> bool:
    """Whether ``pid`` holds an established TCP connection to ``port``."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return False
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        lines = path.read_text().splitlines()[1:] if path.exists() else []
        for line in lines:
            columns = line.split()
            remote_port = int(columns[2].rpartition(":")[2], 16)
            if remote_port == port and columns[3] == _ESTABLISHED and columns[9] in inodes:
                return True
    return False


@dataclass(frozen=True, slots=True)
class ProcessUse:
    """What one process had used when sampled."""

    cpu_s: float
    peak_rss_mb: float
    startup_cpu_s: float
    """CPU used before its first connection to the broker: imports and set-up."""


class MeteredWorker:
    """One ``matih-ingest worker`` process, configured only through ``MATIH_*`` variables.

    Args:
        env: the ``MATIH_*`` settings of this worker.
        log_path: where its output goes.
    """

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self._env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._startup_cpu_s: float | None = None
        self.started_at = 0.0
        self.connected_at: float | None = None
        """Monotonic time of its first connection to the broker."""

    @property
    def pid(self) -> int:
        """The worker's process id."""
        assert self._process is not None, "not started"
        return self._process.pid

    def start(self) -> None:
        """Spawns the worker; ``started_at`` is the monotonic time of the spawn."""
        with self._log_path.open("ab") as log:
            self.started_at = time.monotonic()
            self._process = subprocess.Popen(
                [sys.executable, "-m", "ingest.cli.main", "worker"],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def poll_started(self, broker_port: int) -> bool:
        """Notes the start-up CPU once the worker first connects to the broker.

        Returns:
            Whether it has connected (now or before).

        Raises:
            RuntimeError: the worker exited.
        """
        if self._startup_cpu_s is not None:
            return True
        self.check_alive()
        if connected_to(self.pid, broker_port):
            self._startup_cpu_s = cpu_seconds(self.pid)
            self.connected_at = time.monotonic()
            return True
        return False

    def check_alive(self) -> None:
        """Raises if the worker has exited, with the end of its output.

        Raises:
            RuntimeError: it is no longer running.
        """
        assert self._process is not None, "not started"
        if self._process.poll() is not None:
            tail = self._log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the worker exited ({self._process.returncode}):\n{tail}")

    def use(self) -> ProcessUse:
        """CPU and peak RSS so far, read from ``/proc``."""
        return ProcessUse(cpu_seconds(self.pid), peak_rss_mb(self.pid), self._startup_cpu_s or 0.0)

    def stop(self) -> None:
        """Stops the worker (SIGTERM, then SIGKILL after 30 s)."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(10)


class WorkerGroup:
    """Several workers of one consumer group, watched from a thread until each has
    connected to the broker (so start-up and work can be told apart).

    Args:
        env: the ``MATIH_*`` settings every worker gets.
        count: how many workers.
        log_dir: where their output goes.
        broker_port: the broker's port, to see them connect.
    """

    def __init__(self, env: dict[str, str], count: int, log_dir: Path, broker_port: int) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        tag = uuid.uuid4().hex[:6]
        self.workers = [MeteredWorker(env, log_dir / f"worker-{tag}-{i}.log") for i in range(count)]
        self._port = broker_port
        self._watching = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._error: RuntimeError | None = None
        self.started_at = 0.0

    def start(self) -> None:
        """Spawns every worker; ``started_at`` is the monotonic time of the first spawn."""
        self.started_at = time.monotonic()
        for worker in self.workers:
            worker.start()
        self._watching.set()
        self._watcher.start()

    def wait_connected(self, timeout: float = 120) -> float:
        """Waits until every worker connected to the broker; returns when the last did.

        Raises:
            TimeoutError: one did not within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while self._watcher.is_alive():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the workers did not connect within {timeout}s")
            time.sleep(_WATCH_S)
        if self._error is not None:
            raise self._error
        return self.last_connected_at()

    def last_connected_at(self) -> float:
        """When the last worker connected to the broker (0 if one has not yet)."""
        times = [w.connected_at for w in self.workers]
        return 0.0 if None in times else max(t for t in times if t is not None)

    def check_alive(self) -> None:
        """Raises if a worker has exited, with the end of its output.

        Raises:
            RuntimeError: a worker is no longer running.
        """
        if self._error is not None:
            raise self._error
        for worker in self.workers:
            worker.check_alive()

    def use(self) -> list[ProcessUse]:
        """Each worker's CPU and peak RSS so far."""
        return [worker.use() for worker in self.workers]

    def stop(self) -> None:
        """Stops every worker."""
        self._watching.clear()
        for worker in self.workers:
            worker.stop()

    def _watch(self) -> None:
        pending = list(self.workers)
        while pending and self._watching.is_set():
            try:
                pending = [w for w in pending if not w.poll_started(self._port)]
            except RuntimeError as exc:
                self._error = exc
                return
            time.sleep(_WATCH_S)


def worker_env(kafka: KafkaSettings, mlflow: MlflowSettings) -> dict[str, str]:
    """The ``MATIH_*`` variables that point a worker at a topic, group and store."""
    return {
        "MATIH_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "MATIH_KAFKA_TOPIC": kafka.topic,
        "MATIH_KAFKA_CONSUMER_GROUP": kafka.consumer_group,
        "MATIH_MLFLOW_TRACKING_URI": mlflow.tracking_uri,
        "MATIH_MLFLOW_ARTIFACT_ROOT": mlflow.artifact_root,
    }


def spawn_child(module: str, spec: dict[str, Any]) -> subprocess.Popen[str]:
    """Starts ``python -m module`` with ``spec`` as JSON on its command line."""
    return subprocess.Popen(
        [sys.executable, "-m", module, json.dumps(spec)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )


def collect(children: list[subprocess.Popen[str]], timeout: float) -> list[dict[str, Any]]:
    """Waits for every child and returns the JSON each printed last.

    Raises:
        RuntimeError: a child failed or printed no result.
    """
    results = []
    deadline = time.monotonic() + timeout
    for child in children:
        out, _ = child.communicate(timeout=max(deadline - time.monotonic(), 1))
        lines = out.strip().splitlines()
        if child.returncode != 0 or not lines:
            raise RuntimeError(f"{child.args!r} exited {child.returncode}: {out[-2000:]}")
        results.append(json.loads(lines[-1]))
    return results


def child_spec() -> dict[str, Any]:
    """In a child script: the spec its parent passed."""
    spec: dict[str, Any] = json.loads(sys.argv[1])
    return spec


def child_result(result: dict[str, Any]) -> None:
    """In a child script: hands ``result`` to the parent (the last line on stdout)."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
