"""Freshness: how long after the log call MLflow's client sees a point, under steady load.

Trainer processes log at a steady rate (half the capacity measured for one worker)
into a topic that one ``matih-ingest worker`` writes to a fresh store. Meanwhile a
probe in this process logs one point every ``probe_interval_s`` to a run of its own
and notes the time of each call; a reader polls that run through MLflow's client
(its latest value of the probe metric, which is the step) and notes when each step
first shows. The poll interval is the resolution of every figure.
"""

from __future__ import annotations

import bisect
import itertools
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from ingest.settings import KafkaSettings
from ingest.tracking.reader import RunReader
from producers import ExperimentTracker, ProducerSettings, RunConfig
from tests.bench.processes import WorkerGroup, collect, worker_env
from tests.bench.report import percentile
from tests.bench.stores import Store
from tests.bench.topic import broker_port, fresh_topic, wait_drained
from tests.bench.trainers import EXPERIMENT, spawn_paced
from tests.bench.verify import count_points, require_exact

PROBE_TENANT = "probe"
PROBE_KEY = "probe"
START_MARGIN_S = 5.0
"""Time given to trainer processes to start before the load begins."""


class Probe:
    """Logs the probe metric every ``interval_s`` from a thread; step ``i`` has value ``i``.

    Args:
        kafka: the topic.
        spool_dir: the SDK's spool folder.
        interval_s: time between two probe calls.
    """

    def __init__(self, kafka: KafkaSettings, spool_dir: Path, interval_s: float) -> None:
        settings = ProducerSettings(kafka=kafka, spool_dir=spool_dir)
        self._tracker = ExperimentTracker(settings)
        self._run = self._tracker.start_run(EXPERIMENT, RunConfig(tenant_id=PROBE_TENANT))
        self._interval_s = interval_s
        self._running = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.sent: list[float] = []
        """Monotonic time of each probe call, by step."""

    @property
    def run_id(self) -> str:
        """The probe run's id."""
        return self._run.run_id

    def start(self) -> None:
        """Starts logging."""
        self._running.set()
        self._thread.start()

    def stop(self) -> None:
        """Stops logging, ends the run and closes the SDK (waiting for Kafka's acks)."""
        self._running.clear()
        self._thread.join()
        self._run.end()
        self._tracker.close(60)

    def _loop(self) -> None:
        began = time.monotonic()
        while self._running.is_set():
            step = len(self.sent)
            self.sent.append(time.monotonic())
            self._run.log_metrics({PROBE_KEY: float(step)}, step=step)
            time.sleep(max(began + (step + 1) * self._interval_s - time.monotonic(), 0))


def _watch(
    tracking_uri: str, probe: Probe, window_end: float, deadline: float, poll_s: float
) -> tuple[dict[int, float], list[float]]:
    """Polls the probe run until every probe sent before ``window_end`` (monotonic) is
    seen, or ``deadline``; returns when each step was first seen and when each poll was.

    The latest value of the probe metric is its highest step: the worker writes a
    partition in order, so every lower step is in MLflow by then too.
    """
    reader, client = RunReader(tracking_uri), MlflowClient(tracking_uri)
    seen: dict[int, float] = {}
    polls: list[float] = []
    mlflow_run_id = None
    while (began := time.monotonic()) < deadline:
        if began >= window_end and len(seen) >= bisect.bisect(probe.sent, window_end):
            break
        if mlflow_run_id is None:
            run = reader.find_run(PROBE_TENANT, probe.run_id)
            mlflow_run_id = run.info.run_id if run else None
        if mlflow_run_id is not None:
            latest = client.get_run(mlflow_run_id).data.metrics.get(PROBE_KEY)
            now = time.monotonic()
            polls.append(now)
            for step in range(len(seen), int(latest) + 1 if latest is not None else 0):
                seen[step] = now
        time.sleep(max(began + poll_s - time.monotonic(), 0))
    return seen, polls


def freshness(
    bootstrap: str,
    store: Store,
    load_points_s: float,
    *,
    duration_s: float,
    trainers: int = 4,
    probe_interval_s: float = 0.05,
    poll_s: float = 0.05,
    warmup_s: float = 5.0,
    folder: Path,
    timeout: float,
) -> dict[str, Any]:
    """Measures freshness under ``load_points_s`` for ``duration_s`` after a warm-up.

    Raises:
        AssertionError: MLflow does not hold exactly the points logged.
    """
    kafka = fresh_topic(bootstrap, "fresh")
    broker = broker_port(bootstrap)
    group = WorkerGroup(worker_env(kafka, store.settings), 1, folder / "logs", broker)
    group.start()
    try:
        group.wait_connected()
        start_at = time.time() + START_MARGIN_S
        load_s = warmup_s + duration_s + 1
        children = spawn_paced(
            bootstrap,
            kafka.topic,
            folder / "spool",
            trainers,
            points_s=load_points_s,
            duration_s=load_s,
            start_at=start_at,
        )
        probe = Probe(kafka, folder / "spool" / PROBE_TENANT, probe_interval_s)
        time.sleep(max(start_at - time.time(), 0))
        probe.start()
        window_start = time.monotonic() + warmup_s
        window_end = window_start + duration_s
        seen, polls = _watch(
            store.settings.tracking_uri, probe, window_end, window_end + timeout, poll_s
        )
        probe.stop()
        results = collect(children, timeout)
        wait_drained(kafka, timeout, group.check_alive)
        use = group.use()[0]
    finally:
        group.stop()
    latencies = [
        (seen.get(step, float("inf")) - sent) * 1000
        for step, sent in enumerate(probe.sent)
        if window_start <= sent < window_end
    ]
    counts = count_points(store.settings.tracking_uri, results)
    require_exact(counts, f"steady load into {store.kind}")
    probe_rows = len(
        RunReader(store.settings.tracking_uri).get_metric_history(
            PROBE_TENANT, probe.run_id, PROBE_KEY
        )
    )
    assert probe_rows == len(probe.sent), f"probe: {probe_rows} rows of {len(probe.sent)}"
    loaded = sum(r["points"] for r in results)
    spans = [r["ended"] - r["began"] for r in results]
    gaps = [b - a for a, b in itertools.pairwise(polls)]
    return {
        "store": store.kind,
        "duration_s": duration_s,
        "load_points_per_s_target": load_points_s,
        "load_points_per_s_offered": loaded / max(spans),
        "probes": len(latencies),
        "probe_interval_ms": probe_interval_s * 1000,
        "poll_interval_ms": statistics.mean(gaps) * 1000 if gaps else None,
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies),
        "worker_peak_rss_mb": use.peak_rss_mb,
        "counts": counts.as_dict(),
    }
