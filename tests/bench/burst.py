"""Burst: trainers offer ten times the capacity for a while; nothing may be lost or
written twice, and the backlog must drain.

One ``matih-ingest worker`` writes a fresh store while trainer processes log, paced
to ``factor`` times the one-worker capacity measured earlier in the same run, or as
fast as they can where they cannot keep that pace (the offered rate is reported, so
a burst short of ten times says so). After the burst the SDK delivers what it still
holds, and the time to drain runs from the end of the burst (the last trainer's last
call) until the group has committed the end of every partition.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.bench.freshness import START_MARGIN_S
from tests.bench.processes import WorkerGroup, collect, worker_env
from tests.bench.stores import Store
from tests.bench.topic import broker_port, fresh_topic, wait_drained
from tests.bench.trainers import spawn_paced
from tests.bench.verify import count_points


def burst(
    bootstrap: str,
    store: Store,
    capacity_points_s: float,
    *,
    duration_s: float,
    factor: float = 10,
    trainers: int = 4,
    folder: Path,
    timeout: float,
) -> dict[str, Any]:
    """Offers ``factor`` x ``capacity_points_s`` for ``duration_s``; counts and times the
    drain. Exact counts are reported, not raised on: the caller decides."""
    kafka = fresh_topic(bootstrap, "burst")
    group = WorkerGroup(
        worker_env(kafka, store.settings), 1, folder / "logs", broker_port(bootstrap)
    )
    group.start()
    try:
        group.wait_connected()
        start_at = time.time() + START_MARGIN_S
        children = spawn_paced(
            bootstrap,
            kafka.topic,
            folder / "spool",
            trainers,
            points_s=factor * capacity_points_s,
            duration_s=duration_s,
            start_at=start_at,
        )
        results = collect(children, timeout + duration_s)
        done = wait_drained(kafka, timeout, group.check_alive)
        wall_offset = time.time() - time.monotonic()
        use = group.use()[0]
    finally:
        group.stop()
    counts = count_points(store.settings.tracking_uri, results)
    points = sum(r["points"] for r in results)
    burst_end = max(r["ended"] for r in results) - wall_offset
    offered = points / max(r["ended"] - r["began"] for r in results)
    acked = points / (max(r["acked"] for r in results) - min(r["began"] for r in results))
    return {
        "store": store.kind,
        "duration_s": duration_s,
        "capacity_points_per_s": capacity_points_s,
        "target_points_per_s": factor * capacity_points_s,
        "offered_points_per_s": offered,
        "offered_x_capacity": offered / capacity_points_s,
        "reached_target_rate": offered >= 0.98 * factor * capacity_points_s,
        "kafka_acked_points_per_s": acked,
        "points": points,
        "sdk_dropped_points": sum(r["dropped_points"] for r in results),
        "seconds_to_drain_after_burst": done - burst_end,
        "worker_peak_rss_mb": use.peak_rss_mb,
        "worker_cpu_us_per_point": use.cpu_s / points * 1e6,
        "counts": counts.as_dict(),
    }
