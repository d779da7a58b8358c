"""Drain rate: trainers fill a topic first, then workers are timed emptying it into MLflow.

Trainer processes (one tenant and one run each) log through the SDK until they have
all finished; then ``matih-ingest worker`` processes start on a fresh consumer group
and a fresh store, and are timed from their spawn until the group has committed the
end of every partition. MLflow's client then has to read back exactly the points
logged, once each, or the measurement fails.

Beside the rate: each worker's CPU and peak RSS from ``/proc`` at the end of the
window, the CPU it had used before it first reached the broker (imports, set-up),
and for PostgreSQL the server's own CPU over the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.settings import KafkaSettings
from tests.bench.processes import WorkerGroup, collect, spawn_child, worker_env
from tests.bench.stores import POSTGRESQL, PostgresServer, Store
from tests.bench.topic import (
    broker_port,
    end_positions,
    fresh_group,
    fresh_topic,
    wait_drained,
)
from tests.bench.trainers import KEYS, trainer_spec
from tests.bench.verify import count_points, require_exact

TRAINERS_MODULE = "tests.bench.trainers"


@dataclass(frozen=True)
class Filled:
    """A topic the trainers have filled and left."""

    kafka: KafkaSettings
    trainers: list[dict[str, Any]]
    points: int
    acked_points_per_s: float
    """Points over the time from the first trainer's first call to the last ack."""
    partitions_with_records: int
    """How many partitions the tenants' keys landed on: the most workers that can help."""


def fill(bootstrap: str, trainers: int, points: int, folder: Path, timeout: float) -> Filled:
    """Fills a new topic with ``points`` from ``trainers`` processes, one tenant each.

    Raises:
        RuntimeError: a trainer failed, or Kafka did not acknowledge every point.
    """
    kafka = fresh_topic(bootstrap, "drain")
    calls = points // trainers // len(KEYS)
    children = [
        spawn_child(
            TRAINERS_MODULE,
            trainer_spec(bootstrap, kafka.topic, f"tenant-{i}", folder / "spool", calls=calls),
        )
        for i in range(trainers)
    ]
    results = collect(children, timeout)
    for result in results:
        if not result["complete"] or result["dropped_points"]:
            raise RuntimeError(f"a trainer did not get every point acknowledged: {result}")
    total = sum(r["points"] for r in results)
    seconds = max(r["acked"] for r in results) - min(r["began"] for r in results)
    return Filled(kafka, results, total, total / seconds, len(end_positions(kafka)))


def drain(
    filled: Filled,
    store: Store,
    workers: int,
    *,
    folder: Path,
    postgres: PostgresServer | None,
    timeout: float,
) -> dict[str, Any]:
    """Times ``workers`` worker processes emptying ``filled`` into ``store``.

    Raises:
        AssertionError: MLflow does not hold exactly the points logged.
    """
    kafka = fresh_group(filled.kafka)
    broker = broker_port(kafka.bootstrap_servers)
    group = WorkerGroup(worker_env(kafka, store.settings), workers, folder / "logs", broker)
    server = postgres if store.kind == POSTGRESQL else None
    store_cpu_before = server.cpu_seconds() if server else 0.0
    group.start()
    try:
        done = wait_drained(kafka, timeout, group.check_alive)
        uses = group.use()
        store_cpu = server.cpu_seconds() - store_cpu_before if server else None
        connected = group.last_connected_at()
    finally:
        group.stop()
    counts = count_points(store.settings.tracking_uri, filled.trainers)
    require_exact(counts, f"drain of {workers} worker(s) into {store.kind}")
    points = filled.points
    seconds = done - group.started_at
    after_start = done - connected if connected else seconds
    cpu = sum(u.cpu_s for u in uses)
    startup = sum(u.startup_cpu_s for u in uses)
    return {
        "workers": workers,
        "points": points,
        "seconds": seconds,
        "points_per_s": points / seconds,
        "seconds_after_connect": after_start,
        "points_per_s_after_connect": points / after_start,
        "worker_cpu_s": cpu,
        "worker_startup_cpu_s": startup,
        "worker_cpu_us_per_point": cpu / points * 1e6,
        "worker_cpu_us_per_point_after_startup": (cpu - startup) / points * 1e6,
        "worker_peak_rss_mb": max(u.peak_rss_mb for u in uses),
        "store_server_cpu_s": store_cpu,
        "store_server_cpu_us_per_point": None if store_cpu is None else store_cpu / points * 1e6,
        "counts": counts.as_dict(),
    }
