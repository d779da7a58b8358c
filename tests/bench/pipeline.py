"""Benchmark: what a training loop pays per logging call, and how fast, how fresh and how
safely points reach MLflow, each figure beside MLflow's own from the same run.

    python -m tests.bench.pipeline [--quick] [--no-readme] [--help for sizes]

Prints one JSON document and writes its table into README.md between the bench
markers. Every figure is repeated (3 times by default) and given as min / median /
max; every ratio is taken within one repetition. Sections:

- ``single``: the SDK call cost, and one trainer through Kafka and one worker into
  sqlite, beside ``mlflow.log_metrics``, ``log_metric`` per point and ``log_batch``;
- ``drain``: 4 trainers (4 tenants) fill a topic, then 1 and 2 worker processes are
  timed emptying it into sqlite and PostgreSQL, beside ``log_batch`` from 4 processes
  into a fresh store of the same kind;
- ``freshness``: a steady load at half the one-worker capacity measured above; the
  time from a probe's log call until MLflow's client sees it;
- ``burst``: ten times that capacity for a while: nothing lost or doubled, and the
  time to drain;
- ``worker_resources``: the workers' peak RSS and CPU per point (and PostgreSQL's).

Workers run as ``matih-ingest worker`` processes configured through ``MATIH_*``
variables only. Uses the broker at MATIH_KAFKA_BOOTSTRAP_SERVERS (default
127.0.0.1:9092), starting the local one if none answers; starts PostgreSQL from
deploy/postgres on ``--pg-port`` unless one answers there. Stops what it started.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.bench.baseline import log_batch_rate
from tests.bench.burst import burst
from tests.bench.drain import drain, fill
from tests.bench.freshness import freshness
from tests.bench.processes import ROOT
from tests.bench.report import ratios, summarise, write_readme
from tests.bench.services import Services, options
from tests.bench.single import mlflow_call_cost, mlflow_log_metric, sdk_call_cost
from tests.bench.stores import SQLITE
from tests.bench.summary import judge
from tests.bench.table import readme_table


def single(bench: Services, args: argparse.Namespace) -> dict[str, Any]:
    """One repetition of the single-run figures."""
    folder, timeout = bench.folder, args.timeout
    with bench.store(SQLITE) as store:
        mlflow_call = mlflow_call_cost(store, args.mlflow_calls)
    with bench.store(SQLITE) as store:
        per_point = mlflow_log_metric(store, args.per_point)
    filled = fill(bench.bootstrap, 1, args.single_points, folder, timeout)
    with bench.store(SQLITE) as store:
        e2e = drain(filled, store, 1, folder=folder, postgres=None, timeout=timeout)
    with bench.store(SQLITE) as store:
        batch = log_batch_rate(store, 1, args.single_points, timeout)
    e2e["sdk_to_kafka_acked_points_per_s"] = filled.acked_points_per_s
    return {
        "sdk_call_log_metrics_4": sdk_call_cost(bench.bootstrap, folder, args.steps),
        "mlflow_log_metrics_4": mlflow_call,
        "end_to_end_1_trainer_1_worker_sqlite": e2e,
        "mlflow_log_batch_1_process_sqlite": batch,
        "mlflow_log_metric_per_point_sqlite": per_point,
    }


def drains(bench: Services, args: argparse.Namespace) -> dict[str, Any]:
    """One repetition of the drain rates: one filled topic, drained on every store kind."""
    filled = fill(bench.bootstrap, args.trainers, args.points, bench.folder, args.timeout)
    result: dict[str, Any] = {
        "sdk_to_kafka_acked_points_per_s": filled.acked_points_per_s,
        "partitions_with_records": filled.partitions_with_records,
    }
    for kind in args.stores:
        measured: dict[str, Any] = {}
        for workers in (1, 2):
            with bench.store(kind) as store:
                measured[f"workers_{workers}"] = drain(
                    filled,
                    store,
                    workers,
                    folder=bench.folder,
                    postgres=bench.postgres,
                    timeout=args.timeout,
                )
        with bench.store(kind) as store:
            measured["mlflow_log_batch"] = log_batch_rate(
                store, args.trainers, args.points, args.timeout
            )
        result[kind] = measured
    return result


def with_ratios(runs: list[dict[str, Any]], stores: list[str]) -> dict[str, Any]:
    """The drain repetitions summarised, with each ratio taken within its repetition."""
    summary = summarise(runs)
    for kind in stores:
        base = [run[kind]["mlflow_log_batch"] for run in runs]
        for workers in ("workers_1", "workers_2"):
            ours = [run[kind][workers] for run in runs]
            summary[kind][f"ratio_{workers}_vs_log_batch"] = ratios(
                [o["points_per_s"] for o in ours], [b["points_per_s"] for b in base]
            )
            summary[kind][f"ratio_{workers}_vs_log_batch_after_start"] = ratios(
                [o["points_per_s_after_connect"] for o in ours],
                [b["points_per_s_logging_only"] for b in base],
            )
        summary[kind]["two_workers_not_slower_in_every_run"] = all(
            run[kind]["workers_2"]["points_per_s"] >= run[kind]["workers_1"]["points_per_s"]
            for run in runs
        )
    return summary


@contextmanager
def timed(report: dict[str, Any], section: str) -> Iterator[None]:
    """Notes how long a section took, to size runs by."""
    began = time.monotonic()
    yield
    report["section_seconds"][section] = round(time.monotonic() - began, 1)


def measure(bench: Services, args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Runs every section into ``report``; freshness and burst on the capacity of one
    worker (after its start-up) measured by the drains of this run."""
    with timed(report, "single"):
        runs = [single(bench, args) for _ in range(args.repetitions)]
        report["single"] = summarise(runs)
        report["single"]["ratio_end_to_end_vs_log_batch"] = ratios(
            [r["end_to_end_1_trainer_1_worker_sqlite"]["points_per_s"] for r in runs],
            [r["mlflow_log_batch_1_process_sqlite"]["points_per_s"] for r in runs],
        )
    with timed(report, "drain"):
        runs = [drains(bench, args) for _ in range(args.repetitions)]
        report["drain"] = with_ratios(runs, args.stores)
    live = args.live_store if args.live_store in args.stores else args.stores[0]
    capacity = report["drain"][live]["workers_1"]["points_per_s_after_connect"]
    capacity = capacity["median"] if isinstance(capacity, dict) else capacity
    sizes = {"folder": bench.folder, "timeout": args.timeout}
    with timed(report, "freshness"), bench.store(live) as store:
        report["freshness"] = freshness(
            bench.bootstrap,
            store,
            capacity / 2,
            duration_s=args.freshness_s,
            warmup_s=args.warmup_s,
            **sizes,
        )
        report["freshness"]["capacity_points_per_s"] = capacity
    with timed(report, "burst"), bench.store(live) as store:
        report["burst"] = burst(bench.bootstrap, store, capacity, duration_s=args.burst_s, **sizes)


def main() -> None:
    """Runs every section, prints the JSON, writes the README table."""
    args = options().parse_args()
    logging.basicConfig(level=logging.WARNING)
    report: dict[str, Any] = {
        "machine": {"cores": os.cpu_count(), "load_1m_at_start": os.getloadavg()[0]},
        "settings": {
            k: v for k, v in vars(args).items() if k not in {"readme", "quick", "log_dir"}
        },
        "section_seconds": {},
    }
    with tempfile.TemporaryDirectory() as folder, Services(args, Path(folder)) as bench:
        measure(bench, args, report)
    report["targets"], report["worker_resources"] = judge(report, args.stores)
    print(json.dumps(report, indent=2))
    if args.readme:
        write_readme(ROOT / "README.md", readme_table(report, args.stores))
    if not report["burst"]["counts"]["exact"] or report["burst"]["sdk_dropped_points"]:
        sys.exit("the burst lost or doubled points: see burst.counts")


if __name__ == "__main__":
    main()
