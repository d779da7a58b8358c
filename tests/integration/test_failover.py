"""A replicated Kafka losing a partition leader under load: a 3-node cluster (RF 3,
min.insync.replicas=2), two worker processes, three trainer processes logging at a
steady pace; the leader of the busiest partition is killed with SIGKILL and never comes
back. Nothing is lost or doubled in MLflow, the trainers and workers ride through,
``matih-ingest lag`` shows the stall and then 0, and the two remaining brokers go on
serving new runs."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.partitioner import murmur2
from aiokafka.structs import TopicPartition

from consumers import ConsumerSettings
from ingest.errors import KafkaUnavailableError
from ingest.ids import new_run_id
from ingest.kafka import admin_client, bounded, ensure_topics
from ingest.settings import KafkaSettings, MlflowSettings
from tests.integration.cluster import KafkaCluster
from tests.integration.support import WorkerProcess, group_lag, snapshot
from tests.integration.trainers import BASE_TS, KEYS, value

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 3
BUSY, QUIET = "acme-corp", "initech"  # partitions 1 and 0 of 3 by Kafka's key hash
STEPS, STEPS_PER_S = 800, 40
WATCH_INTERVAL_S = 0.5


@pytest.fixture(scope="module")
def cluster() -> Iterator[KafkaCluster]:
    running = KafkaCluster()
    running.start()
    try:
        yield running
    finally:
        running.stop()


def partition_of(tenant: str) -> int:
    return (murmur2(tenant.encode()) & 0x7FFFFFFF) % PARTITIONS


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def start_trainer(kafka: KafkaSettings, tenant: str, run_id: str, steps: int, tmp: Path) -> Any:
    spec = {
        "bootstrap": kafka.bootstrap_servers,
        "topic": kafka.topic,
        "tenant": tenant,
        "run_id": run_id,
        "steps": steps,
        "steps_per_s": STEPS_PER_S,
        "spool_dir": str(tmp / f"spool-{run_id}"),
        "flush_timeout_s": 60.0,
        # A leader election takes seconds: well inside this, so nothing needs the spool.
        "delivery_timeout_s": 60.0,
        "connect_timeout_s": 10.0,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.paced_trainer", json.dumps(spec)],
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(trainer: Any) -> dict[str, Any]:
    out, err = trainer.communicate(timeout=120)
    assert trainer.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def lag_cli(kafka: KafkaSettings, timeout: float = 60) -> tuple[int, dict[str, Any] | None, str]:
    """``matih-ingest lag --json`` once: exit code, the group's report, stderr."""
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "ingest.cli.main",
                "lag",
                "--json",
                "--samples=2",
                "--interval=0.5",
                f"--bootstrap-servers={kafka.bootstrap_servers}",
                f"--group={kafka.consumer_group}",
                f"--topic={kafka.topic}",
            ],
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return -1, None, f"no answer within {timeout:g}s"
    reports = json.loads(result.stdout) if result.stdout.strip() else [None]
    return result.returncode, reports[0], result.stderr


class LagWatch:
    """``matih-ingest lag --watch --json`` as an operator would leave it running: one
    process, one JSON line a sample, started (and warmed up) before the kill, so that
    its samples cover the failover from its first second."""

    def __init__(self, kafka: KafkaSettings, log_path: Path) -> None:
        self.samples: list[dict[str, Any]] = []
        self._log = log_path.open("w")  # its warnings, kept out of a pipe nobody reads
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ingest.cli.main",
                "lag",
                "--watch",
                "--json",
                f"--interval={WATCH_INTERVAL_S}",
                f"--bootstrap-servers={kafka.bootstrap_servers}",
                f"--group={kafka.consumer_group}",
                f"--topic={kafka.topic}",
            ],
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self._first = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            (report,) = json.loads(line)
            self.samples.append(report)
            self._first.set()

    def __enter__(self) -> LagWatch:
        self._thread.start()
        if not self._first.wait(60):
            self.__exit__()
            raise AssertionError("lag --watch printed no sample within 60 s")
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.send_signal(signal.SIGINT)  # Ctrl-C, as an operator stops it
        try:
            self._process.wait(30)
        finally:
            self._process.kill()
            self._log.close()
        self._thread.join(10)


async def wait_until(check: Callable[[], Any], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.5)


def assert_run_exact(uri: str, tenant: str, run_id: str, steps: int) -> None:
    runs = snapshot(uri, tenant)
    assert run_id in runs, f"run {run_id} of {tenant} is not in MLflow"
    run = runs[run_id]
    assert run["status"] == "FINISHED"
    assert run["params"] == {"lr": "0.01", "trainer": run_id[:8]}
    for i, key in enumerate(KEYS):
        expected = [(step, BASE_TS + step, value(i, step)) for step in range(steps)]
        assert run["history"][key] == expected, f"{key} of {run_id}: lost or doubled points"


@pytest.mark.timeout(240)
async def test_a_partition_leader_killed_under_load_loses_and_doubles_nothing(
    cluster: KafkaCluster, new_sqlite_store: Callable[[str], str], tmp_path: Path
) -> None:
    assert partition_of(BUSY) != partition_of(QUIET)
    name = f"failover-{uuid.uuid4().hex[:10]}"
    kafka = KafkaSettings(
        bootstrap_servers=cluster.bootstrap,
        topic=f"{name}.events",
        consumer_group=f"{name}-workers",
        partitions=PARTITIONS,
    )
    await ensure_topics(kafka)

    # Created with the cluster defaults: 3 replicas, min.insync.replicas=2.
    async with admin_client(kafka) as admin:
        (described,) = await admin.describe_topics([kafka.topic])
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, kafka.topic)]
        )
    assert [len(p["replicas"]) for p in described["partitions"]] == [3] * PARTITIONS
    configs = {entry[0]: entry[1] for entry in response.resources[0][4]}
    assert configs["min.insync.replicas"] == "2"
    assert configs["retention.ms"] == str(168 * 3_600_000)
    leader = next(
        p["leader"] for p in described["partitions"] if p["partition"] == partition_of(BUSY)
    )

    uri = new_sqlite_store("failover")
    settings = ConsumerSettings(
        kafka=kafka,
        mlflow=MlflowSettings(tracking_uri=uri, artifact_root=str(tmp_path / "artifacts")),
        batch_timeout_ms=100,
    )
    workers = [WorkerProcess(settings, tmp_path / f"worker-{i}.log") for i in range(2)]
    for worker in workers:
        worker.start()
    runs = {new_run_id(): BUSY, new_run_id(): BUSY, new_run_id(): QUIET}
    busy = TopicPartition(kafka.topic, partition_of(BUSY))

    async def being_written() -> bool:
        try:
            async with admin_client(kafka) as admin:
                offsets = await bounded(
                    admin.list_consumer_group_offsets(kafka.consumer_group, partitions=[busy]),
                    kafka,
                    "reading the group's offsets",
                )
        except KafkaUnavailableError:  # the group's coordinator is not elected yet
            return False
        return busy in offsets and offsets[busy].offset > 0

    try:
        # The operator's watch runs from the start, so that its own start-up never
        # eats into the failover it is there to see.
        with LagWatch(kafka, tmp_path / "lag-watch.log") as watch:
            trainers = [start_trainer(kafka, t, r, STEPS, tmp_path) for r, t in runs.items()]
            # The workers are in their group and committing the busy partition's records.
            await wait_until(being_written, 90, "the workers never committed the busy partition")
            # The trainers are still logging: the leader dies under load.
            assert all(t.poll() is None for t in trainers), "trainers done before the kill"
            killed_at, killed_at_ms = time.monotonic(), time.time() * 1000
            cluster.kill(leader)
            reports = [finished(trainer) for trainer in trainers]
            trainers_done_s = time.monotonic() - killed_at

            async def drained() -> bool:
                try:
                    return await group_lag(kafka) == 0
                except KafkaUnavailableError:  # the dead node is still in the metadata
                    return False

            await wait_until(drained, 90, "the workers did not catch up after the failover")
            drained_s = time.monotonic() - killed_at

            async def watch_recovered() -> bool:
                return bool(watch.samples) and watch.samples[-1]["status"] == "OK"

            # The operator's running watch recovers too, not only a fresh lag command.
            await wait_until(watch_recovered, 60, "lag --watch never showed OK again")
        for report in reports:
            assert report["complete"], report
            assert report["spooled_events"] == 0, report
        for worker in workers:
            assert worker.alive(), "a worker died in the failover"

        # MLflow holds every point exactly once, as logged.
        for run_id, tenant in runs.items():
            assert_run_exact(uri, tenant, run_id, STEPS)

        # lag showed the event: while the dead node was still in the cluster's metadata
        # the group could not be read (ERR, with the reason), or the busy partition fell
        # behind; then, once the node was fenced and leaders moved, 0 and OK.
        after_kill = [r for r in watch.samples if r["sampled_at_ms"] >= killed_at_ms]
        seen = [(r["status"], r["error"], r["total_lag"]) for r in after_kill]
        print(
            f"killed node {leader}: trainers done {trainers_done_s:.1f}s, drained"
            f" {drained_s:.1f}s after the kill; lag samples after it: {seen}"
        )
        behind = [
            part["lag"]
            for report in after_kill
            for part in report["partitions"]
            if part["partition"] == partition_of(BUSY)
        ]
        assert any(status != "OK" for status, _, _ in seen) or max(behind, default=0) > 0, seen
        # ... and answered all along, even while the dead node was still in the metadata:
        # no two samples further apart than one sample's bound and the interval.
        times = [r["sampled_at_ms"] / 1000 for r in watch.samples]
        bound = kafka.request_timeout_s + WATCH_INTERVAL_S + 5
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert max(gaps, default=0) <= bound, f"lag went {max(gaps):.1f}s without an answer"
        code, final, err = lag_cli(kafka)
        assert code == 0, err
        assert final is not None
        assert (final["status"], final["total_lag"]) == ("OK", 0)

        # The node stays down for good; the two left go on serving (min ISR 2 is met).
        async with admin_client(kafka) as admin:
            cluster_now = await admin.describe_cluster()
            (described,) = await admin.describe_topics([kafka.topic])
        assert len(cluster_now["brokers"]) == 2
        assert all(leader not in p["isr"] for p in described["partitions"])
        after = new_run_id()
        finished_after = finished(start_trainer(kafka, QUIET, after, 40, tmp_path))
        assert finished_after["complete"]

        async def written() -> bool:
            return after in snapshot(uri, QUIET) and await group_lag(kafka) == 0

        await wait_until(written, 60, "a run logged on the 2 remaining brokers was not written")
        assert_run_exact(uri, QUIET, after, 40)
    finally:
        for worker in workers:
            worker.stop()
